"""Progress: where the current epoch stands, shared by a DataLoader and its live iterator.

The loader keeps this record, not the iterator, so that dropping an iterator (``break``) frees
its workers at once while ``loader.state_dict()`` still knows how far the epoch got.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Progress:
    """The epoch being iterated, the seed its samples derive from, how far delivery got.

    ``batches_yielded`` counts batches handed to the user; ``positions_done`` counts the
    index source's positions (sampler batches, or stream batches) consumed in order: delivered,
    raised to the user, or dropped whole under on_error="skip". A resume continues after
    ``positions_done``.
    """

    epoch: int
    sample_seed: int
    batches_yielded: int
    positions_done: int = 0
    started: bool = False  # a first batch was asked for: the epoch is under way
    finished: bool = False  # the iterator reached its StopIteration: nothing is left
    in_order: bool = True  # delivered batches are a prefix of the epoch (a position means one)
    # Replaying a sampler without a state (stoker.loader._resume): what its order was drawn
    # from at the epoch's start, and the digest of the indices consumed so far.
    epoch_start: list[dict[str, Any]] | None = None
    order_digest: str | None = None
    generator_next: str | None = None  # the loader generator's state for the next epoch
    resume: dict[str, Any] | None = None  # the loaded state this pass resumed, if any
    nothing_left: bool = False  # resumed after the epoch's last batch: an empty rest
    # Each chain sampler's (epoch, set_epoch calls) when this pass drew its order
    # (stoker.loader._resume.epoch_marks): the epoch the pass's order is of.
    drawn_marks: list[tuple[int | None, int | None]] = field(default_factory=list)
    # A fresh pass's: each chain generator and its state before the order was drawn, so that a
    # pass planned again before its first batch (FirstBatchIterator) draws the same stream.
    generators_at_start: list[tuple[Any, Any]] = field(default_factory=list)
    # A stream's: each worker's fingerprint chain (stoker._fetch) of the batches consumed.
    stream_digests: dict[int, str] = field(default_factory=dict)
