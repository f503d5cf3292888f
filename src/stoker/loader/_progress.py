"""Progress: where the current epoch stands, shared by a DataLoader and its live iterator.

The loader keeps this record, not the iterator, so that dropping an iterator (``break``) frees
its workers at once while ``loader.state_dict()`` still knows how far the epoch got.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Progress:
    """The epoch being iterated, the seed its samples derive from, batches handed out."""

    epoch: int
    sample_seed: int
    batches_yielded: int
