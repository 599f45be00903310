"""KerasTuner search over RETDM's loss weights (and, optionally, a few more knobs).

RETDM's two main hyper-parameters are the weights of its regularisers: ``lam`` (λ, the two-way
metric loss) and ``mu`` (μ, the label reconstruction loss). Both act on a log scale — 0.1 and 1
differ as much as 1 and 10 — so ``RETDMHyperModel`` samples them log-uniformly
(``hp.Float(..., sampling="log")``). On request it also searches ``alpha`` (weight of the
label → image way; 0 is the one-way ablation), the hinge ``margin``, ``num_neighbors`` (K),
``embed_dim`` and the three stage learning rates.

One trial is one run of the three-stage schedule (``training.fit_stages``). ``lam`` and
``mu`` do not exist in stage 1 (BCE only), so a trial is scored on its **last stage**: the
returned ``History`` is that stage's, KerasTuner takes its best epoch for the objective, and
the tuner's best-epoch checkpoint only considers that stage's epochs. The cheap way to
search: train stage 1 once, save it (``model.save_weights("stage1.weights.h5")``), and pass
``stage1_weights=``; every trial then starts from those weights and runs only the metric and
joint stages.

With ``kt.Hyperband``, the epoch budget Hyperband hands out (``epochs`` / ``initial_epoch``)
is spent on the joint stage; a trial that continues an earlier one (its checkpoint is loaded
by the tuner) runs only further joint epochs.

``tuner.get_best_models()`` rebuilds a model from its trial's weights; the hypermodel gives it
the training label sets it recorded (configuration, not weights), so it predicts what its
trial scored. A tuner reloaded in a new process records them with its next trial; before
that, give a returned model its label sets with ``model.prepare_training(train_data)`` (its
first prediction warns otherwise).

With validation data, every ``metrics.evaluate`` metric is added to the scored stage's epoch
logs as ``val_<name>`` (unless Keras already logs it, as ``val_mAP`` and ``val_O-F1``), so any
of them can be the objective: ``retdm_objective("val_C-F1")``,
``retdm_objective("val_one_error")`` (minimised), ...

Example::

    import keras_tuner as kt
    from retdm_keras.tuning import RETDMHyperModel, best_recipe, heatmap, retdm_objective

    hypermodel = RETDMHyperModel(
        num_labels=5, train_data=train, val_data=val,
        model_kwargs={"backbone": "mobilenet_v2", "image_size": 224, "weights": "imagenet"},
        epochs=(4, 2, 4), stage1_weights="stage1.weights.h5",
    )
    tuner = kt.BayesianOptimization(hypermodel, objective=retdm_objective("val_mAP"),
                                    max_trials=20, directory="runs/tune", project_name="scene")
    tuner.search(verbose=0)
    best_recipe(tuner)   # {"hyperparameters": {"lam": ..., "mu": ...}, "model_kwargs": ...}
    heatmap(tuner, "runs/tune/lam_mu.png")
"""

from retdm_keras.tuning.hypermodel import DEFAULT_CHOICES as DEFAULT_CHOICES
from retdm_keras.tuning.hypermodel import LEARNING_RATE_RANGE as LEARNING_RATE_RANGE
from retdm_keras.tuning.hypermodel import RETDMHyperModel, retdm_objective
from retdm_keras.tuning.results import best_recipe, heatmap

__all__ = ["RETDMHyperModel", "best_recipe", "heatmap", "retdm_objective"]
