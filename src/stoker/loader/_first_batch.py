"""The iterator ``iter(loader)`` returns: its pass, planned again if the epoch moved before use.

torch's ``num_workers=0`` loader reads the sampler's order at the first ``next()``, not at
``iter()``, and frameworks rely on that: Lightning calls ``iter()`` on a loader, then
``sampler.set_epoch(e)``, then takes batches (when it resumes from a checkpoint taken at an
epoch's end, that ``e`` is the next epoch). stoker plans a pass — its order, its seeds, its
first tasks to the workers — at ``iter()``, so that workers are busy before the first
``next()``. This iterator keeps that head start and torch's meaning both: at its first
``next()`` it asks its loader whether the epoch moved since ``iter()``; if so the planned pass
is dropped, before any batch of it was seen, and the one the epoch now names takes its place.

Invariant: a replacement happens only before this iterator's first batch, at most once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from stoker.loader._engine import Delivery

# The loader's check, given the planned pass: the pass that replaces it, None to keep it, or
# the planned pass itself when nothing was set since iter() (a later check may still replace).
Replan = Callable[[Delivery], "Delivery | None"]


class FirstBatchIterator(Iterator[Any]):
    """Yields ``delivery``'s batches; before the first, lets ``replan`` swap the pass once."""

    def __init__(self, delivery: Delivery, replan: Replan | None) -> None:
        self._delivery = delivery
        self._replan = replan

    def __iter__(self) -> FirstBatchIterator:
        return self

    def __next__(self) -> Any:
        self.settle(final=True)
        return next(self._delivery)

    def settle(self, final: bool = False) -> None:
        """Let the pass be planned again now, as the first ``next()`` does (``final``).

        The loader's ``state_dict()`` calls it: a state taken between ``iter()`` and the first
        ``next()`` is of the pass that ``next()`` would run. Where nothing was set since
        ``iter()``, the first ``next()`` still checks again.
        """
        if self._replan is not None:
            replan, self._replan = self._replan, None
            replacement = replan(self._delivery)
            if replacement is self._delivery:
                if not final:
                    self._replan = replan
            elif replacement is not None:
                self._delivery = replacement

    def __len__(self) -> int:
        return len(self._delivery)

    def close(self) -> None:
        """Stop this iterator's workers now (also done on exhaustion and garbage collection)."""
        self._replan = None
        self._delivery.close()

    def __getattr__(self, name: str) -> Any:
        # torch's private iterator attributes that user code reads (``_workers``) and the
        # engine's own, as on the pass itself
        delivery = self.__dict__.get("_delivery")
        if delivery is None:
            raise AttributeError(name)
        return getattr(delivery, name)
