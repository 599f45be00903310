"""Zero-shot multi-label classification with the SDL head.

Ben-Cohen, Zamir, Ben-Baruch, Friedman & Zelnik-Manor, "Semantic Diversity Learning for
Zero-Shot Multi-label Classification", ICCV 2021 (official code: ``Alibaba-MIIL/ZS_SDL``).

Why it works
------------
A label is a point ``w_j`` in a word-vector space (GloVe, ``d = 300``), so a label never seen
in training can still be scored: it only needs its word vector. One image vector cannot lie
close to several semantically distant labels at once ("dog" and "frisbee"), so SDL predicts
``M`` *principal vectors* per image and lets every label pick the one that fits it best.

The model (``SDLHead``, ``SDL``)
--------------------------------
With ``φ(x)`` the image features ``(F,)`` and ``W`` a bias-free ``(d·M) × F`` matrix::

    A(x) = reshape(W φ(x), (d, M)),   a_m = A[:, m]            (principal vectors)
    s_j(x) = max_m <a_m, w_j>,        ||w_j|| = 1                (score of label j)

The loss (``sdl_loss``)
-----------------------
For image ``i`` with positive seen labels ``P_i`` and negatives ``N_i`` (all other seen
labels)::

    ω_i      = 1 + Σ_d Var_{p ∈ P_i}(w_p[d])                     (ω_i = 1 when |P_i| = 1)
    L_rank,i = ω_i · (1/|P_i|) · Σ_{p ∈ P_i} Σ_{n ∈ N_i} log(1 + exp(s_n − s_p))
    L_reg,i  = Σ_d Var_m(A_i[d, m])
    L_i      = (1 − λ)·L_rank,i + λ·L_reg,i                       (λ = 0.3; λ = None: L_rank,i)
    L        = mean of L_i over the images with |P_i| ≥ 1

``ω_i`` up-weights images whose labels are semantically diverse — the images that need
several different principal vectors; ``L_reg`` penalises the spread of the ``M`` principal
vectors in every dimension and so balances the diversity the ranking term rewards.
``log(1 + exp(·))`` is computed as ``softplus`` (no overflow for large score gaps).

What follows the paper / official code, and what is our choice
--------------------------------------------------------------
As the official code (``SDL_loss.py``, ``factory.py``): the bias-free linear head on pooled
features, the dimension-major ``(d, M)`` layout of ``A`` (``view(B, d, M)``), the max over
principal vectors, the pair loss normalised by ``|P_i|`` only, ``M = 7``, ``λ = 0.3``, and
**unbiased** variances (divisor ``n − 1``, ``torch.var``'s default) in both ``ω_i`` and
``L_reg`` — we keep the unbiased form so that ``λ = 0.3`` weighs the same quantity as there
(the biased ``L_reg`` with ``M = 7`` would be 6/7 of it). The official ``L_reg`` is the L1
norm of the per-dimension variances, i.e. their sum.

Our choices:

* The official code returns ``2·((1 − λ)·L_rank + λ·L_reg)`` when ``λ`` is set; we drop the
  constant 2 (same minimiser; with Adam only the relative size of epsilon changes).
* Images with no positive seen label are skipped (the official code divides 0 by 0, NaN);
  an image whose labels are all positive has an empty pair sum, 0 (the official code falls
  back to ``log(1 + exp(−s_p))``); with ``M = 1``, ``L_reg = 0`` (unbiased variance of one
  value is undefined).
* Label vectors are L2-normalised inside the head and the loss (the official code assumes
  unit vectors in its files).
* ``φ(x)``: ``backbone="identity"`` feeds precomputed pooled features straight to the head
  (the official formulation on frozen features). With an image backbone, ``SDL`` reuses
  RETDM's ``ImageEmbedder``, whose output includes a linear projection to ``embed_dim``.

Evaluation (``evaluate_zero_shot``, ``evaluate_zsl_gzsl``)
----------------------------------------------------------
ZSL ranks only the unseen labels, GZSL ranks seen + unseen; images with no positive among
the ranked labels are dropped (as the official ``calc_F1``/``mAP``). ``P@K = hits/(K·N)``,
``R@K = hits/#positives``, ``F1@K`` their harmonic mean. ``mAP`` is **label-wise** — for
each ranked label, the AP of ranking the images by its score, averaged over labels — as in
the official ``mAP`` (a loop over classes). The official code counts a label with no
positive image as AP 0; we skip such labels (``retdm_keras.metrics`` convention) and report
how many labels were averaged. Ties use sklearn's AP convention (the official code breaks
them by sort order; the two agree without ties).

Baseline (``conse_scores``)
---------------------------
ConSE (Norouzi et al., ICLR 2014): a classifier of the seen labels gives probabilities
``p``; label ``j`` scores ``Σ_{s ∈ top-T} p_s·cos(w_s, w_j) / Σ_{s ∈ top-T} p_s``.

Example::

    from retdm_keras.zero_shot import SDL, load_label_vectors, evaluate_zsl_gzsl
    lv = load_label_vectors("coco80_glove300.json")
    model = SDL(lv.vectors[lv.seen], backbone="identity", input_dim=1280)
    model.compile("adam")
    model.fit(train_features, y_train[:, lv.seen], epochs=50)
    report = evaluate_zsl_gzsl(y_val, model.score(val_features, lv.vectors), lv.seen, lv.unseen)
"""

from retdm_keras.zero_shot.evaluation import conse_scores, evaluate_zero_shot, evaluate_zsl_gzsl
from retdm_keras.zero_shot.head import SDLHead, label_scores, sdl_loss, sdl_loss_terms
from retdm_keras.zero_shot.label_vectors import (
    LabelVectors,
    embed_label_names,
    load_label_vectors,
    normalize_rows,
)
from retdm_keras.zero_shot.model import SDL

__all__ = [
    "SDL",
    "LabelVectors",
    "SDLHead",
    "conse_scores",
    "embed_label_names",
    "evaluate_zero_shot",
    "evaluate_zsl_gzsl",
    "label_scores",
    "load_label_vectors",
    "normalize_rows",
    "sdl_loss",
    "sdl_loss_terms",
]
