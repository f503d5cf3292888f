"""Progress: where the current epoch stands, shared by a DataLoader and its live iterator.

The loader keeps this record, not the iterator, so that dropping an iterator (``break``) frees
its workers at once while ``loader.state_dict()`` still knows how far the epoch got.
"""

from __future__ import annotations

from dataclasses import dataclass


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
