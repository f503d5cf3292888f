"""stoker: PyTorch-style data loading that keeps training jobs fed."""

from stoker import datasets, seeding, transforms
from stoker._collated import CollatedSamples
from stoker._shared_list import SharedList
from stoker._worker.info import WorkerInfo, get_worker_info
from stoker.collate import default_collate, default_convert, numpy_collate, pad_collate
from stoker.dataset import (
    ConcatDataset,
    Dataset,
    FilteredDataset,
    IterableDataset,
    MappedDataset,
    Subset,
    WithSampleContext,
)
from stoker.errors import (
    CollateError,
    CollateKeyError,
    CollateTypeError,
    DatasetError,
    IntegrityError,
    LoaderClosedError,
    LoaderTimeoutError,
    SampleError,
    SharedMemoryError,
    StokerError,
    TooManyErrorsError,
    TransformError,
    UnsafeDataError,
    WorkerDiedError,
    WorkerError,
)
from stoker.loader import DataLoader, DeviceLoader
from stoker.samplers import BatchSampler, DistributedSampler, RandomSampler, SequentialSampler
from stoker.seeding import sample_context, sample_rng

__version__ = "0.1.0"

__all__ = [
    "BatchSampler",
    "CollateError",
    "CollateKeyError",
    "CollateTypeError",
    "CollatedSamples",
    "ConcatDataset",
    "DataLoader",
    "Dataset",
    "DatasetError",
    "DeviceLoader",
    "DistributedSampler",
    "FilteredDataset",
    "IntegrityError",
    "IterableDataset",
    "LoaderClosedError",
    "LoaderTimeoutError",
    "MappedDataset",
    "RandomSampler",
    "SampleError",
    "SequentialSampler",
    "SharedList",
    "SharedMemoryError",
    "StokerError",
    "Subset",
    "TooManyErrorsError",
    "TransformError",
    "UnsafeDataError",
    "WithSampleContext",
    "WorkerDiedError",
    "WorkerError",
    "WorkerInfo",
    "__version__",
    "datasets",
    "default_collate",
    "default_convert",
    "get_worker_info",
    "numpy_collate",
    "pad_collate",
    "sample_context",
    "sample_rng",
    "seeding",
    "transforms",
]
