"""DataLoader: torch's constructor, stoker's engine, deterministic and resumable batches."""

from __future__ import annotations

import copy
import itertools
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.utils.data
from torch.utils.data.dataloader import _DatasetKind
from typing_extensions import TypeVar

from stoker._copy_on_read import warn_if_copy_on_read
from stoker._transport.bank import SlotBank
from stoker._worker import info
from stoker.collate import default_collate, default_convert
from stoker.loader import _resume
from stoker.loader._engine import Delivery, Runner
from stoker.loader._first_batch import FirstBatchIterator
from stoker.loader._inline import InlineRunner
from stoker.loader._plan import EpochPlan, ErrorBudget, FetchSettings, WorkerSettings
from stoker.loader._pool import ProcessPool
from stoker.loader._progress import Progress
from stoker.loader._threads import ThreadRunner
from stoker.samplers import BatchSampler, RandomSampler, SequentialSampler

__all__ = ["DataLoader"]

# 2: records in_order, the dataset kind, num_workers (streams), a finished epoch, the loader
# generator for the next epoch, and the replay of a sampler without state. Version 1 states
# still load where they meant the same (see load_state_dict).
_STATE_VERSION = 2
_END: Any = object()
# Generic like torch's: annotations such as DataLoader[list[torch.Tensor]] keep working.
# Any by default (PEP 696): a plain DataLoader(...) needs no annotation.
_T_co = TypeVar("_T_co", covariant=True, default=Any)


def _draw_seed(generator: torch.Generator | None) -> int:
    return int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())


def _unless_empty(indices: Iterator[Any]) -> Iterator[Any] | None:
    """``indices`` unchanged, or None when it has nothing left."""
    first = next(indices, _END)
    return None if first is _END else itertools.chain([first], indices)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


class DataLoader(torch.utils.data.DataLoader[_T_co]):
    """Batches from a dataset, with torch's ``DataLoader`` arguments and stoker's guarantees.

    A ``torch.utils.data.DataLoader`` subclass: frameworks that check for torch's loader
    (Lightning's sampler injection, Accelerate's ``prepare``) recognise it, and one that re-creates
    it from its attributes with a new sampler gets a stoker loader back, on stoker's engine.

    Every argument of ``torch.utils.data.DataLoader`` is accepted with the same meaning. stoker
    adds:

    * ``seed``: the root of all randomness — the shuffle order of each epoch and every sample's
      augmentation (``stoker.seeding``) derive from (seed, epoch, index), so batches are the
      same for any ``num_workers`` and after a resume. Without ``seed`` one is drawn from
      ``generator`` (torch's behaviour, same shuffle orders as torch) or torch's global RNG.
      Worker processes seed ``random``, ``numpy`` and ``torch`` by torch's rule (worker ``i``:
      ``base_seed + i``, before ``worker_init_fn``); ``base_seed`` is drawn as torch draws it,
      at ``iter()`` from ``generator`` or torch's global RNG, or, with ``seed``, derived from
      (seed, epoch).
    * ``batch_transform``: applied to each collated batch, in the worker.
    * ``worker_mode="thread"``: workers are threads, not processes — for in-memory datasets
      whose loading releases the GIL (numpy, torch, batched transforms); nothing is forked,
      pickled or copied between processes.
    * ``state_dict()`` / ``load_state_dict()``: resume mid-epoch with the exact next batch.
    """

    # Wider than torch's annotations: any dataset object; no sampler for a stream.
    dataset: Any
    sampler: Any
    batch_sampler: Any

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Iterable[Any] | None = None,
        batch_sampler: Iterable[list[int]] | None = None,
        num_workers: int = 0,
        collate_fn: Callable[[Any], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context: Any = None,
        generator: torch.Generator | None = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        pin_memory_device: str = "",
        in_order: bool = True,
        seed: int | None = None,
        batch_transform: Callable[[Any], Any] | None = None,
        on_error: str = "raise",
        max_errors: int | float = 0.01,
        on_worker_death: str = "restart",
        max_worker_restarts: int = 3,
        worker_mode: str = "process",
    ):
        # torch's checks, in torch's order and with torch's messages first (code and tests
        # match on them), then what to do about it; stoker's own checks follow.
        _require(
            not (isinstance(num_workers, int) and num_workers < 0),
            "num_workers option should be non-negative; use num_workers=0 to disable "
            f"multiprocessing. (got num_workers={num_workers!r})",
        )
        _require(
            isinstance(num_workers, int),
            f"num_workers option should be a non-negative integer, got {num_workers!r}",
        )
        _require(
            timeout >= 0,
            f"timeout option should be non-negative (got timeout={timeout!r}); 0 waits forever",
        )
        if num_workers == 0:
            _require(
                prefetch_factor is None,
                "prefetch_factor option could only be specified in multiprocessing.let "
                "num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to "
                f"None. (got prefetch_factor={prefetch_factor!r} with num_workers=0)",
            )
        else:
            prefetch_factor = 2 if prefetch_factor is None else prefetch_factor
            _require(
                not (isinstance(prefetch_factor, int) and prefetch_factor < 0),
                f"prefetch_factor option should be non-negative, got {prefetch_factor!r}",
            )
            # torch accepts 0 and then sends no task at all: every epoch is silently empty.
            _require(
                isinstance(prefetch_factor, int) and prefetch_factor > 0,
                f"prefetch_factor should be a positive integer when num_workers > 0 (batches "
                f"each worker loads ahead), got {prefetch_factor!r}",
            )
        _require(
            not (persistent_workers and num_workers == 0),
            "persistent_workers option needs num_workers > 0: with num_workers=0 there are "
            "no workers to keep; set num_workers > 0 or persistent_workers=False",
        )
        self.num_workers = num_workers
        self.multiprocessing_context = multiprocessing_context  # torch's validating setter
        self._is_iterable = isinstance(dataset, torch.utils.data.IterableDataset)
        if self._is_iterable:
            _require(
                shuffle in (False, None),
                "DataLoader with IterableDataset: expected unspecified shuffle option, but got "
                f"shuffle={shuffle}; the dataset's __iter__ decides the order: shuffle there",
            )
            _require(
                sampler is None,
                "DataLoader with IterableDataset: expected unspecified sampler option, but got "
                f"sampler={sampler}; the dataset's __iter__ decides what is loaded",
            )
            _require(
                batch_sampler is None,
                "DataLoader with IterableDataset: expected unspecified batch_sampler option, "
                f"but got batch_sampler={batch_sampler}; use batch_size= and drop_last=",
            )
        else:
            shuffle = bool(shuffle)
        _require(
            sampler is None or not shuffle,
            "sampler option is mutually exclusive with shuffle: the sampler decides the order; "
            "pass a shuffling sampler, or shuffle=True without a sampler",
        )
        if batch_sampler is not None:
            _require(
                batch_size == 1 and not shuffle and sampler is None and not drop_last,
                "batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                "and drop_last: the batch sampler decides all of them (got "
                f"batch_size={batch_size!r}, shuffle={shuffle!r}, sampler={sampler!r}, "
                f"drop_last={drop_last!r})",
            )
            batch_size, drop_last = None, False
        elif batch_size is None:
            _require(
                not drop_last,
                "batch_size=None option disables auto-batching and is mutually exclusive with "
                "drop_last; pass a batch_size to drop the last incomplete batch",
            )
        else:  # torch's BatchSampler checks these when the loader makes one
            _require(
                isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size > 0,
                "batch_size should be a positive integer value, but got "
                f"batch_size={batch_size}; use batch_size=None to disable auto-batching",
            )
            _require(
                isinstance(drop_last, bool),
                f"drop_last should be a boolean value, but got drop_last={drop_last}",
            )
        _require(
            seed is None or isinstance(seed, int),
            f"seed must be an integer or None, got {seed!r}",
        )
        _require(
            on_error in ("raise", "skip"),
            f"on_error must be 'raise' or 'skip', got {on_error!r}",
        )
        _require(
            isinstance(max_errors, int | float) and max_errors >= 0,
            f"max_errors must be a count (int >= 0) or a fraction of the epoch (float in "
            f"[0, 1)), got {max_errors!r}",
        )
        _require(
            worker_mode in ("process", "thread"),
            f"worker_mode must be 'process' or 'thread', got {worker_mode!r}",
        )
        _require(
            worker_mode == "process" or not isinstance(dataset, torch.utils.data.IterableDataset),
            "worker_mode='thread' needs a map-style dataset: an IterableDataset's stream cannot "
            "be shared between threads; use worker_mode='process'",
        )
        _require(
            on_worker_death in ("restart", "raise"),
            f"on_worker_death must be 'restart' or 'raise', got {on_worker_death!r}",
        )
        _require(
            isinstance(max_worker_restarts, int) and max_worker_restarts >= 0,
            f"max_worker_restarts must be an integer >= 0, got {max_worker_restarts!r}",
        )

        self.dataset = dataset
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.generator = generator
        self.persistent_workers = persistent_workers
        self.in_order = in_order
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.batch_transform = batch_transform
        self.on_error = on_error
        self.max_errors = max_errors
        self.on_worker_death = on_worker_death
        self.max_worker_restarts = max_worker_restarts
        self.worker_mode = worker_mode
        self.skipped: list[tuple[int, int, str]] = []
        """Samples dropped under on_error="skip": (epoch, dataset index, repr of the error)."""

        # One seed for the loader's lifetime when given or drawn from the global RNG; with a
        # generator and no seed, a new one per epoch drawn from it, in torch's order.
        self._seed_given = seed is not None
        self._seed_per_epoch = seed is None and generator is not None
        self.seed = seed if seed is not None else (0 if generator is not None else _draw_seed(None))

        # Samplers the loader makes follow the loader's epoch; a sampler the user passed keeps
        # the epoch the user gives it (sampler.set_epoch or loader.set_epoch), as in torch.
        self._owns_sampler = sampler is None and batch_sampler is None
        if self._is_iterable:
            sampler = None
        elif sampler is None:
            if shuffle:
                sampler = (
                    RandomSampler(dataset, generator=generator)
                    if self._seed_per_epoch
                    else RandomSampler(dataset, seed=self.seed)
                )
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None and sampler is not None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self._collates = batch_sampler is not None or (self._is_iterable and batch_size is not None)
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn

        self._epoch = 0
        self._epochs_set = 0  # loader.set_epoch calls: how a re-plan sees one after iter()
        self._epoch_seed = self.seed
        self._resume: dict[str, Any] | None = None
        self._progress: Progress | None = None
        self._runner: Runner | None = None  # the persistent workers, when persistent_workers
        self._slot_bank: SlotBank | None = None  # without them: slots for the next epoch's workers
        self._pass_count = 0  # passes begun: each iter() is a new pass with a new id
        self._active: weakref.ref[Delivery] | None = None  # the latest pass's iterator
        # The latest iter()'s iterator, whose first next() may plan its pass again
        self._unsettled: weakref.ref[FirstBatchIterator] | None = None
        # What torch's own DataLoader methods read, so they keep working on a stoker loader.
        self._dataset_kind = _DatasetKind.Iterable if self._is_iterable else _DatasetKind.Map
        self._iterator = None
        self._IterableDataset_len_called = None  # set by len(loader), as in torch
        self.__initialized = True  # torch's guard: batch_size, sampler, ... are fixed from now
        self._copy_on_read_checked = False  # warned (or not) about lists workers would copy
        if worker_mode == "process":
            self.check_worker_number_rationality()  # torch warns here and again at iter()
        if pin_memory and pin_memory_device:  # torch's warning (torch gives it at each iter())
            warnings.warn(
                "pin_memory_device is deprecated, the current accelerator will be used as the "
                f"device,ignore pin_memory_device='{pin_memory_device}'.",
                UserWarning,
                stacklevel=2,
            )

    # -- iteration -----------------------------------------------------------------------------

    @property
    def _auto_collation(self) -> bool:  # torch's property, which stoker extends to streams
        return self._collates

    @property
    def _index_sampler(self) -> Any:
        return (
            self.batch_sampler if self._auto_collation and not self._is_iterable else self.sampler
        )

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter()`` epoch ``epoch`` (shuffle order and augmentation follow)."""
        _require(epoch >= 0, f"epoch must be >= 0, got {epoch}")
        self._epoch = int(epoch)
        self._epochs_set += 1  # a call, even of the epoch the loader would run next anyway
        sampler = self._index_sampler
        if sampler is not None and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]  # stoker's iterator
        starts_workers = self.persistent_workers and not self._has_live_workers()
        delivery = self._start_pass()
        if delivery.progress.resume is not None and not delivery.progress.nothing_left:
            return FirstBatchIterator(delivery, None)  # the resumed epoch's rest: state wins
        planned = (
            self._epoch,
            self._epochs_set,
            _resume.epoch_marks(self._index_sampler),
            starts_workers,
        )
        iterator = FirstBatchIterator(delivery, lambda old: self._replanned(old, *planned))
        self._unsettled = weakref.ref(iterator)
        return iterator

    def _replanned(
        self,
        planned: Delivery,
        next_epoch: int,
        epochs_set: int,
        marks: list[_resume.EpochMark],
        started_workers: bool = False,
    ) -> Delivery | None:
        """The pass to run instead of ``planned`` (before its first batch), or None to keep it
        (``planned`` itself: nothing was set since iter(), keep it for now).

        torch draws the order at the first next(): an epoch set between iter() and then —
        ``loader.set_epoch(n)``, or ``sampler.set_epoch(n)`` as Lightning calls it — is the
        epoch this iterator runs. ``next_epoch`` and ``marks`` are the loader's and the
        samplers' epochs just after iter(), ``epochs_set`` its count of set_epoch calls then;
        ``started_workers``: that iter() started the persistent workers.
        """
        progress = planned.progress
        if progress is not self._progress:
            return None  # a newer iter() took over; the planned pass reports it
        if planned.ended:
            return None  # closed (loader.close()): its next() says so
        sampler = self._index_sampler
        now = _resume.epoch_marks(sampler)
        loader_set = self._epochs_set != epochs_set
        if not loader_set and now == marks:
            return planned  # nothing was set since iter(): no decision yet
        epoch = progress.epoch
        target = epoch
        if loader_set:  # loader.set_epoch(n), n + 1 == the epoch planned included
            target = self._epoch
        else:
            # sampler.set_epoch(n): the loader's epoch follows the sampler's when the loader
            # sets it (its own sampler) or when the two agreed as the pass drew its order, so
            # that every sample's sample_rng is epoch n's, as if n had been set before iter().
            drawn, moved = _resume.first_epoch(progress.drawn_marks), _resume.first_epoch(now)
            if moved is not None and (self._owns_sampler or drawn == epoch):
                target = moved
        values = [e for e, _ in now]
        if target == epoch and values in (
            [e for e, _ in marks],
            [e for e, _ in progress.drawn_marks],
        ):
            # The epoch set is the one this pass drew: keep it, the sampler standing after it.
            self._epoch = next_epoch
            _resume.set_chain_epochs(sampler, marks)
            return None
        planned.close()
        for generator, state in progress.generators_at_start:
            generator.set_state(state)  # the planned pass's draw undone: torch draws once
        if loader_set and self._owns_sampler and sampler is not None:
            sampler.set_epoch(target)  # the loader's epoch wins over its own sampler's, as
            # at iter() (_start_pass)
        if started_workers and self._seed_given and target != epoch and self._runner is not None:
            # The persistent workers this pass started were seeded (torch, numpy, random) for
            # its epoch, from (seed, epoch): they start again, seeded for the epoch run.
            runner, self._runner = self._runner, None
            runner.close()
        return self._fresh_pass(target)

    def _start_pass(self) -> Delivery:
        resume, self._resume = self._resume, None
        previous = self._progress
        unstarted = previous is not None and not previous.started
        if resume is None and unstarted and previous is not None and previous.resume is not None:
            # A resumed pass that was never iterated (a framework checking the loader): the
            # position it was to resume from still stands, and this pass resumes it instead.
            resume = previous.resume
        if resume is not None:
            resumed = self._resumed_pass(resume)
            if resumed is not None:
                return resumed
            # The saved epoch was complete: the state's epoch has been replayed to its end (the
            # samplers and generators stand where they stood after it); go on with the next.
        elif unstarted and previous is not None and previous.epoch + 1 == self._epoch:
            # The last iter() was never iterated (a framework checking the loader): it did not
            # use up its epoch, which this pass takes over.
            return self._fresh_pass(previous.epoch)
        epoch = self._epoch
        if self._seed_per_epoch:
            # torch's draw of base_seed at iter(), so the generator then shuffles as torch's
            # non-persistent loader does. Made every epoch with persistent workers too (torch's
            # persistent iterator draws once): batches must not depend on persistent_workers,
            # or a resume into another configuration would not be exact (docs: differs).
            self._epoch_seed = _draw_seed(self.generator)
        sampler = self._index_sampler
        if self._owns_sampler and sampler is not None:
            sampler.set_epoch(epoch)
        return self._fresh_pass(epoch)

    def _fresh_pass(self, epoch: int) -> Delivery:
        """A pass over ``epoch`` from its first batch, recording what a resume will need."""
        sampler = self._index_sampler
        progress = Progress(epoch, self._epoch_seed, 0, in_order=self._delivers_in_order)
        progress.drawn_marks = _resume.epoch_marks(sampler)
        progress.generators_at_start = _resume.generator_states(sampler)
        if sampler is not None and not _resume.resumes_itself(sampler):
            progress.epoch_start = _resume.epoch_start(sampler)  # before iter() draws the order
            progress.order_digest = ""
        progress.generator_next = self._generator_next()
        return self._pass(epoch, self._index_iterator(), progress=progress)

    @property
    def _delivers_in_order(self) -> bool:
        return self.in_order or self.num_workers == 0

    def _index_iterator(self) -> Iterator[Any] | None:
        return None if self._is_iterable else iter(self._index_sampler)

    def _generator_next(self) -> str | None:
        """The loader generator's state for the next epoch's seed draw, when a state needs it.

        Taken after this epoch's draw; nothing else draws from it during the epoch, except a
        sampler sharing it, whose own state restores the generator.
        """
        generator = self.generator
        if not self._seed_per_epoch or generator is None:
            return None
        sampler = self._index_sampler
        parts = _resume.chain(sampler) if sampler is not None else []
        if any(getattr(part, "generator", None) is generator for part in parts):
            return None
        return _resume.encode_generator(generator)

    def _resumed_pass(self, resume: dict[str, Any]) -> Delivery | None:
        """A pass that continues ``resume``'s epoch; None if that epoch had nothing left."""
        epoch, skip = int(resume["epoch"]), int(resume["batches_yielded"])
        self._epoch_seed = int(resume["sample_seed"])
        sampler = self._index_sampler
        indices: Iterator[Any] | None = None
        drawn: list[_resume.EpochMark] = []
        replay = resume.get("replay")
        digest: str | None = None
        if self._is_iterable:
            pass  # the stream is replayed by the engine and its first `skip` batches dropped
        elif resume.get("sampler") is not None:
            sampler.load_state_dict(resume["sampler"])
            drawn = _resume.epoch_marks(sampler)
            indices = iter(sampler)
        else:
            assert replay is not None  # load_state_dict refused any other state
            _resume.restore_epoch_start(sampler, replay["epoch_start"])
            drawn = _resume.epoch_marks(sampler)
            saved_rank = _resume.as_saved_rank(sampler, replay["epoch_start"])
            if saved_rank is not None:  # the state is another rank's: check its order
                self._replay(iter(saved_rank), skip, epoch, replay["digest"])
                _resume.restore_epoch_start(sampler, replay["epoch_start"])
                indices = iter(sampler)
                digest = self._replay(indices, skip, epoch, None)
            else:
                indices = iter(sampler)
                digest = self._replay(indices, skip, epoch, replay["digest"])
        encoded = resume.get("generator")
        if encoded is not None and self.generator is not None:
            _resume.decode_generator(self.generator, encoded)
        if resume.get("epoch_done"):
            for _ in indices or ():  # a sampler resumed at its end yields nothing; a replayed
                pass  # one was walked through: either now stands after the epoch
            self._epoch = epoch + 1
            self._progress = None
            return None
        progress = Progress(
            epoch, self._epoch_seed, skip, positions_done=skip, in_order=self._delivers_in_order
        )
        progress.drawn_marks = drawn
        if indices is not None:
            # A state taken after an epoch's last batch, before its StopIteration (Lightning's
            # checkpoint of an epoch's last step) resumes an empty rest; the epoch set before
            # its first next() may replace it (FirstBatchIterator), as for a fresh pass.
            rest = _unless_empty(indices)
            progress.nothing_left, indices = rest is None, rest or iter(())
        if replay is not None:  # this rank's record: its digest is of this rank's batches
            progress.epoch_start = _resume.as_own_rank(sampler, replay["epoch_start"])
        progress.order_digest = digest
        progress.generator_next = encoded
        progress.resume = resume
        saved = resume.get("stream_digests") or {}
        progress.stream_digests = {int(worker): str(chain) for worker, chain in saved.items()}
        replay_stream = skip if self._is_iterable else 0
        return self._pass(epoch, indices, progress=progress, replay=replay_stream)

    def _replay(self, indices: Iterator[Any], skip: int, epoch: int, saved: str | None) -> str:
        """Walk past the ``skip`` batches the saved run consumed; refuse another order.

        ``saved`` None: the order was checked on the saved rank's copy of the sampler.
        """
        digest = ""
        for done in range(skip):
            batch = next(indices, _END)
            if batch is _END:
                raise ValueError(
                    f"cannot resume epoch {epoch} exactly: the loader state says {skip} batches "
                    f"were consumed, but the sampler {_resume.describe(self._index_sampler)} "
                    f"yields only {done} this epoch; build the loader as the saved run did"
                )
            digest = _resume.chain_digest(digest, batch)
        if saved is not None and digest != saved:
            raise ValueError(
                f"cannot resume epoch {epoch} exactly: the sampler "
                f"{_resume.describe(self._index_sampler)} has no state_dict(), and replaying "
                f"its epoch gave other indices for the first {skip} batches than the saved run "
                "consumed (it draws its order from something the loader state does not hold, "
                "or the dataset or sampler changed); the rest would lose and repeat samples. "
                "Give the sampler state_dict()/load_state_dict() or a seeded generator=, or "
                "use stoker's samplers (stoker.RandomSampler(seed=...), shuffle=True with seed=)"
            )
        return digest

    def _pass(
        self,
        epoch: int,
        indices: Iterator[Any] | None,
        progress: Progress,
        replay: int = 0,
    ) -> Delivery:
        """Start the pass over ``epoch`` that ``progress`` records, from ``indices``."""
        self._epoch = epoch + 1
        self._progress = progress
        self._pass_count += 1
        plan = EpochPlan(
            pass_id=self._pass_count,
            epoch=epoch,
            sample_seed=self._epoch_seed,
            indices=indices,
            skip_batches=replay,
            fetch=self._fetch_settings(),
            workers=self._worker_settings(self._workers_base_seed(epoch)),
            budget=ErrorBudget(self.max_errors, self._samples_per_epoch()),
            skipped=self.skipped,
            in_order=self.in_order,
            length=self._length_or_none(),
            reported_length=self._IterableDataset_len_called if self._is_iterable else None,
        )
        if self.num_workers > 0 and self.worker_mode == "process":
            self.check_worker_number_rationality()  # torch's warning about too many workers
            if not self._copy_on_read_checked:
                self._copy_on_read_checked = True
                warn_if_copy_on_read(self.dataset)
        runner, owned = self._runner_for(plan)
        iterator = Delivery(
            plan, runner, progress, owns_runner=owned, keepalive=None if owned else self
        )
        self._active = weakref.ref(iterator)
        return iterator

    def _get_iterator(self) -> Any:  # torch's hook: stoker's engine, never torch's iterators
        return iter(self)

    def _runner_for(self, plan: EpochPlan) -> tuple[Runner, bool]:
        """The runner for this pass, and whether the pass owns it (else the loader keeps it)."""
        mode = plan.workers.mode
        if mode == "inline":
            return InlineRunner(plan), True
        if self._has_live_workers():
            assert self._runner is not None
            return self._runner, False
        runner: Runner
        if mode == "thread":
            runner = ThreadRunner(plan)
        else:
            if self._slot_bank is None and ProcessPool.can_bank(plan.workers):
                self._slot_bank = SlotBank(per_worker=ProcessPool.slots_per_worker(plan.workers))
            runner = ProcessPool(plan, None if self.persistent_workers else self._slot_bank)
        if self.persistent_workers:
            self._runner = runner
            return runner, False
        return runner, True

    def _fetch_settings(self) -> FetchSettings:
        return FetchSettings(
            dataset=self.dataset,
            auto_collation=self._auto_collation,
            collate_fn=self.collate_fn,
            batch_transform=self.batch_transform,
            on_error=self.on_error,
            check_indices=not self._owns_sampler,
            is_iterable=self._is_iterable,
            batch_size=self.batch_size,
            drop_last=self.drop_last,
        )

    def _workers_base_seed(self, epoch: int) -> int:
        """torch's ``base_seed`` for this pass's workers (worker i seeds with base_seed + i).

        With ``seed=``: derived from (seed, epoch), the same in every run and after a resume.
        Otherwise torch's draw: from ``generator`` (the draw this pass already made, the one
        torch makes) or from torch's global RNG, once per ``iter()`` that starts workers, so
        ``torch.manual_seed`` gives workers the seeds torch's loader would give them.
        """
        if self._seed_given:
            return info.pass_base_seed(self.seed, epoch)
        if self._seed_per_epoch:
            return self._epoch_seed
        if self._has_live_workers():
            return 0  # unused: persistent workers were seeded when they started
        return _draw_seed(None)

    def _has_live_workers(self) -> bool:
        """Persistent workers that the next pass reuses (torch's iterator ``_reset``)."""
        return self._runner is not None and not self._runner.closed

    def _worker_settings(self, base_seed: int) -> WorkerSettings:
        return WorkerSettings(
            num_workers=self.num_workers,
            mode="inline" if self.num_workers == 0 else self.worker_mode,
            prefetch_factor=self.prefetch_factor or 1,
            persistent=self.persistent_workers,
            context=self.multiprocessing_context,
            worker_init_fn=self.worker_init_fn,
            base_seed=base_seed,
            timeout_s=self.timeout,
            on_worker_death=self.on_worker_death,
            max_worker_restarts=self.max_worker_restarts,
            pin=self.pin_memory,
        )

    def _length_or_none(self) -> int | None:
        try:
            return self._length()
        except TypeError:
            return None

    def _samples_per_epoch(self) -> int:
        try:
            return len(self.dataset)
        except TypeError:
            return 0

    def close(self) -> None:
        """Stop the workers — the persistent ones and the live iterator's (also done when the
        loader is collected). An iterator used after this raises LoaderClosedError."""
        runner, self._runner = self._runner, None
        self._slot_bank = None
        active = self._active() if self._active is not None else None
        if active is not None:
            active.close()
        if runner is not None:
            runner.close()

    def __del__(self) -> None:
        runner = getattr(self, "_runner", None)
        if runner is not None:
            runner.close()

    def __len__(self) -> int:
        if self._is_iterable:
            # torch's NOTE [ IterableDataset and __len__ ]: once len() was asked, an iterator
            # warns when the stream yields more than the dataset's reported length.
            self._IterableDataset_len_called = len(self.dataset)  # type: ignore[assignment]
        return self._length()

    def _length(self) -> int:
        if self._is_iterable:
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self._index_sampler)

    # -- resumption ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Where iteration stands: enough to continue with the exact next batch. JSON-safe.

        Taken between batches; it holds counters, seeds and generator states, never sample
        data. After ``load_state_dict`` and before the first batch it is the loaded state.
        """
        if self._resume is not None:
            return copy.deepcopy(self._resume)
        unsettled = self._unsettled() if self._unsettled is not None else None
        if unsettled is not None:
            unsettled.settle()  # an epoch set after iter(): the state is of the pass it runs
        progress = self._progress
        base = {
            "version": _STATE_VERSION,
            "dataset": "iterable" if self._is_iterable else "map",
            "num_workers": self.num_workers,
        }
        if progress is None:
            return {
                **base,
                "epoch": self._epoch,
                "batches_yielded": 0,
                "sample_seed": self._epoch_seed,
                "sampler": None,
                "fresh": True,
                "epoch_done": False,
                "in_order": True,
                "replay": None,
                "generator": self._generator_next(),
            }
        yielded = progress.positions_done  # delivered, raised or skipped whole: all consumed
        sampler_state = None
        sampler = self._index_sampler
        if progress.epoch_start is None and sampler is not None:
            sampler_state = sampler.state_dict()
            if "batches" in sampler_state:
                sampler_state["batches"] = yielded
            else:
                sampler_state["position"] = yielded
        replay = None
        if progress.epoch_start is not None:
            replay = {"epoch_start": progress.epoch_start, "digest": progress.order_digest}
        return {
            **base,
            "epoch": progress.epoch,
            "batches_yielded": yielded,
            "sample_seed": progress.sample_seed,
            "sampler": sampler_state,
            "fresh": False,
            # A completed epoch: the next iter() after loading runs epoch + 1 in full.
            "epoch_done": progress.finished,
            # False: batches came as they finished (in_order=False), not as a prefix of the
            # epoch, so only a state at the start or end of an epoch resumes.
            "in_order": progress.in_order,
            "replay": replay,
            "generator": progress.generator_next,
            "stream_digests": {str(k): v for k, v in sorted(progress.stream_digests.items())},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next ``iter()`` continue exactly where ``state`` was taken.

        A state that this loader cannot continue exactly is refused here with a ValueError
        that says why and what to change; docs/troubleshooting.md lists the cases.
        """
        version = state.get("version")
        if version not in (1, _STATE_VERSION):
            raise ValueError(
                f"unsupported DataLoader state version {version!r}; this stoker writes version "
                f"{_STATE_VERSION} and reads versions 1 and {_STATE_VERSION}"
            )
        if self.num_workers and not self.in_order:
            raise ValueError(
                "load_state_dict needs in_order=True: with in_order=False the "
                "batches delivered are not a prefix of the epoch"
            )
        if state.get("fresh"):
            self._epoch = int(state["epoch"])
            self._epoch_seed = int(state["sample_seed"])
            encoded = state.get("generator")
            if encoded is not None and self._seed_per_epoch and self.generator is not None:
                _resume.decode_generator(self.generator, encoded)
            self._resume = None
            self._progress = None
            return
        self._check_resumable(state, version)
        self._resume = copy.deepcopy(dict(state))
        self._progress = None

    def _check_resumable(self, state: dict[str, Any], version: int) -> None:
        """Refuse a mid-epoch state this loader would continue with lost or repeated samples."""
        kind = "iterable" if self._is_iterable else "map"
        saved_kind = state.get("dataset", "iterable" if state.get("sampler") is None else "map")
        if version == 2 and saved_kind != kind:
            raise ValueError(
                f"this loader state was saved from a loader whose dataset is {saved_kind}-style, "
                f"and this loader's dataset ({type(self.dataset).__name__}) is {kind}-style; "
                "load it into a loader built like the saved one"
            )
        yielded = int(state["batches_yielded"])
        batches = f"{yielded} batch" + ("" if yielded == 1 else "es")
        if state.get("epoch_done") or yielded == 0:
            mid_epoch = False
        else:
            mid_epoch = True
        if mid_epoch and state.get("in_order") is False:
            raise ValueError(
                f"this loader state was saved mid-epoch (epoch {state['epoch']}, after "
                f"{batches}) by a loader with in_order=False and "
                f"num_workers={state.get('num_workers')}: its batches came as workers finished "
                "them, not as a prefix of the epoch, so no position continues it without lost "
                "or repeated samples. Save states from a loader with in_order=True (or at the "
                "end of an epoch)"
            )
        if self._is_iterable:
            if version == 1 and yielded:
                raise ValueError(
                    "this IterableDataset loader state is version 1, which did not record "
                    "num_workers: a stream's batches depend on how it is sharded over workers, "
                    "so it cannot be checked to resume exactly. Start the epoch over (set_epoch)"
                )
            saved_workers = int(state.get("num_workers", self.num_workers))
            if mid_epoch and saved_workers != self.num_workers:
                raise ValueError(
                    f"this loader state was saved mid-epoch from an IterableDataset loader with "
                    f"num_workers={saved_workers}, and this loader has "
                    f"num_workers={self.num_workers}: a stream is sharded per worker "
                    "(get_worker_info), so the batches consumed under one worker count are not "
                    "a prefix of the stream under another. Resume with "
                    f"num_workers={saved_workers}; another count resumes only a state taken at "
                    "the start or end of an epoch"
                )
            return
        sampler = self._index_sampler
        if _resume.resumes_itself(sampler):
            if state.get("sampler") is None:
                raise ValueError(
                    f"this loader state was saved with a sampler that has no state_dict() (it "
                    f"records a replay instead), and this loader's sampler "
                    f"{_resume.describe(sampler)} keeps its own state; build the loader with the "
                    "sampler the saved run had"
                )
            return
        if state.get("replay") is None:
            raise ValueError(
                f"this loader's sampler {_resume.describe(sampler)} has no state_dict(), and "
                + (
                    "this version 1 state holds no replay record to resume it with"
                    if version == 1
                    else "this state was saved with a sampler that resumes itself"
                )
                + "; build the loader with the sampler the saved run had, or start the epoch "
                "over (set_epoch)"
            )
        why = _resume.refusal(sampler)
        if mid_epoch and why is not None:
            raise ValueError(f"cannot resume epoch {state['epoch']} after {batches} exactly: {why}")

    def __repr__(self) -> str:
        return (
            f"DataLoader(dataset={type(self.dataset).__name__}, batch_size={self.batch_size}, "
            f"num_workers={self.num_workers}, seed={self.seed})"
        )
