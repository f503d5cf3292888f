"""Stage 1 of a batch's path: which dataset indices, in which order, with resumable state."""

from stoker.samplers.batch import BatchSampler
from stoker.samplers.distributed import DistributedSampler
from stoker.samplers.random import RandomSampler
from stoker.samplers.sequential import SequentialSampler
from stoker.samplers.state import StatefulSampler, epoch_seed

__all__ = [
    "BatchSampler",
    "DistributedSampler",
    "RandomSampler",
    "SequentialSampler",
    "StatefulSampler",
    "epoch_seed",
]
