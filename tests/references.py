"""Independent numpy references used by several test files."""

import numpy as np


def reference_one_way(d0, dk, mask, margin, hinge_reduction="mean"):
    """Loop-by-loop numpy version of -log softmax + hinge over the real neighbours
    (hinge averaged over them, or summed with ``hinge_reduction="sum"``)."""
    out = np.zeros(len(d0))
    for i in range(len(d0)):
        real = [k for k in range(dk.shape[1]) if mask[i, k] > 0]
        # Shift by the smallest distance for a stable exp; the ratio is unchanged.
        shift = min([d0[i]] + [dk[i, k] for k in real])
        numerator = np.exp(-(d0[i] - shift))
        denominator = numerator + sum(np.exp(-(dk[i, k] - shift)) for k in real)
        hinge = sum(max(0.0, margin + d0[i] - dk[i, k]) for k in real)
        if hinge_reduction == "mean" and real:
            hinge /= len(real)
        # -log(e^{-d0} / den) written as (d0 - shift) + log(den) so it cannot underflow
        out[i] = (d0[i] - shift) + np.log(denominator) + hinge
    return out


def reference_two_way(
    u, v, nbr_label, nbr_image, mask, margin, alpha, distance, hinge_reduction="mean"
):
    def dist(a, b):
        sq = np.sum((a - b) ** 2, axis=-1)
        return sq if distance == "sqeuclidean" else np.sqrt(sq)

    d0 = dist(u, v)
    dk = dist(u[:, None, :], nbr_label)
    dk_prime = dist(v[:, None, :], nbr_image)
    return reference_one_way(d0, dk, mask, margin, hinge_reduction) + alpha * reference_one_way(
        d0, dk_prime, mask, margin, hinge_reduction
    )
