"""Training on several devices and machines: strategies by name and the multi-worker stage
loop. They live in :mod:`retdm_keras.training.distributed`; this module keeps the old import
path (``from retdm_keras.distributed import fit_stages_multiworker, make_strategy``)."""

from retdm_keras.training.distributed import (
    STRATEGIES,
    distribute_by_data,
    fit_stages_multiworker,
    is_chief,
    make_strategy,
)

__all__ = [
    "STRATEGIES",
    "distribute_by_data",
    "fit_stages_multiworker",
    "is_chief",
    "make_strategy",
]
