"""EpochPlan: everything one pass over the data needs, decided by the DataLoader at ``iter()``.

The loader builds a plan and hands it to the delivery engine; no engine or runner reads or
writes the DataLoader itself. The plan is immutable; only the index iterator inside it is
consumed, by the engine alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from stoker._fetch import BatchFetcher
from stoker.errors import TooManyErrorsError


@dataclass(frozen=True)
class FetchSettings:
    """How a batch is built from indices: the same in the main process and every worker."""

    dataset: Any
    auto_collation: bool
    collate_fn: Callable[[Any], Any]
    batch_transform: Callable[[Any], Any] | None
    on_error: str
    check_indices: bool
    is_iterable: bool
    batch_size: int | None
    drop_last: bool

    def fetcher(self, sample_seed: int) -> BatchFetcher:
        return BatchFetcher(
            self.dataset,
            self.auto_collation,
            self.collate_fn,
            self.batch_transform,
            sample_seed,
            on_error=self.on_error,
            check_indices=self.check_indices,
        )


@dataclass(frozen=True)
class WorkerSettings:
    """Who runs the tasks: how many workers, of which kind, and their policies."""

    num_workers: int
    mode: str  # "inline" (num_workers=0), "thread" or "process"
    prefetch_factor: int
    persistent: bool
    context: Any  # a multiprocessing context (process mode)
    worker_init_fn: Callable[[int], None] | None
    base_seed: int  # torch's base_seed: worker i seeds its global RNGs with base_seed + i
    timeout_s: float
    on_worker_death: str
    max_worker_restarts: int
    pin: bool

    @property
    def max_in_flight(self) -> int:
        """Tasks dispatched but not yet delivered, finished ones in the reorder buffer included."""
        return 1 if self.mode == "inline" else self.prefetch_factor * self.num_workers

    @property
    def runner_count(self) -> int:
        return max(1, self.num_workers)


@dataclass(frozen=True)
class ErrorBudget:
    """How many samples of an epoch on_error="skip" may drop: a count, or a fraction."""

    max_errors: int | float
    samples_per_epoch: int

    def check(self, skipped: list[tuple[int, int, str]]) -> None:
        """Raise TooManyErrorsError if the epoch of the latest skipped sample is over budget."""
        budget = self.max_errors
        if isinstance(budget, float) and budget < 1:
            budget = budget * self.samples_per_epoch
        epoch, index, error = skipped[-1]
        failed = sum(1 for entry in skipped if entry[0] == epoch)
        if failed > budget:
            raise TooManyErrorsError(
                f"{failed} samples failed in epoch {epoch} and were skipped, more than "
                f"max_errors={self.max_errors!r} allows (latest: index {index}: {error}). "
                "Inspect loader.skipped for the list; fix the data or raise max_errors."
            )


@dataclass(frozen=True)
class EpochPlan:
    """One pass: its id, epoch, seed, where indices come from, and how batches are made.

    ``pass_id`` is unique among the passes of one loader, so results of an abandoned pass that
    arrive late are recognised and dropped. ``indices`` yields one task's indices at a time
    (None for an iterable dataset). ``skip_batches``: batches already delivered before a
    resume, replayed and dropped (iterable datasets only).
    """

    pass_id: int
    epoch: int
    sample_seed: int
    indices: Iterator[Any] | None
    skip_batches: int
    fetch: FetchSettings
    workers: WorkerSettings
    budget: ErrorBudget
    skipped: list[tuple[int, int, str]]  # the loader's record, appended to under on_error="skip"
    in_order: bool  # False: deliver batches as they finish
    length: int | None  # len(loader), for len(iterator); None when the dataset has no length
    # An iterable dataset's len() as the user last asked len(loader) (torch's
    # _IterableDataset_len_called): yielding more batches than this warns, as in torch.
    reported_length: int | None = None
