"""StokerError and its family: every error stoker raises on purpose is one of these."""

from __future__ import annotations


class StokerError(Exception):
    """Root of every error stoker raises on purpose."""


class SampleError(StokerError):
    """A sample could not be loaded, transformed or collated; names the dataset index."""


class CollateError(StokerError, ValueError):
    """Samples of one batch could not be combined (mismatched shapes, types or keys)."""


class WorkerError(StokerError, RuntimeError):
    """A worker process failed as a process: it died, hung or could not start."""


class WorkerDiedError(WorkerError):
    """A worker exited unexpectedly and the restart policy did not allow recovery."""


class LoaderTimeoutError(WorkerError):
    """No batch arrived within `timeout` seconds; names the worker and the batch it holds."""


class LoaderClosedError(StokerError, RuntimeError):
    """An iterator was used after its loader (or the iterator itself) was closed."""


class SharedMemoryError(StokerError, RuntimeError):
    """Shared memory for the batch transport could not be set up (e.g. /dev/shm too small)."""


class TooManyErrorsError(StokerError, RuntimeError):
    """More samples failed under on_error="skip" than `max_errors` allows."""


class TransformError(StokerError, ValueError, TypeError):
    """A transform got input it cannot handle; names the transform, what it expected and got.

    Both a ValueError and a TypeError, as torchvision raises either depending on the case.
    """


class DatasetError(StokerError):
    """A dataset on disk is missing, corrupt or in an unexpected format; names the file."""


class IntegrityError(DatasetError):
    """A downloaded file's checksum does not match the expected one."""


class UnsafeDataError(DatasetError):
    """Untrusted input (archive, pickle, XML) tried something that is refused."""
