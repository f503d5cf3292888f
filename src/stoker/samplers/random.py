"""RandomSampler: a new seeded permutation (or draw with replacement) every epoch."""

from __future__ import annotations

import base64
from collections.abc import Sized
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.utils.data

from stoker.samplers.state import StatefulSampler, epoch_seed

_REPLACEMENT_CHUNK = 32  # torch draws with replacement 32 at a time; same chunks, same stream


def _draw_seed() -> int:
    return int(torch.empty((), dtype=torch.int64).random_().item())


class RandomSampler(StatefulSampler, torch.utils.data.RandomSampler):
    """Random order over ``data_source``; each ``iter()`` is a new epoch with a new order.

    Two ways to seed it:

    * ``seed=`` (or nothing: a seed is then drawn once from torch's global RNG): epoch ``e``'s
      order is a pure function of ``(seed, e)``, so the state is three integers;
    * ``generator=``, a ``torch.Generator``: torch's behaviour — orders continue the generator's
      stream — and the same orders as ``torch.utils.data.RandomSampler`` with that generator.
      The state then holds the generator's state at the start of the epoch.

    A ``torch.utils.data.RandomSampler`` subclass: frameworks that look for torch's shuffling
    sampler (Lightning, when it injects its ``DistributedSampler``) treat it as one.
    """

    generator: torch.Generator | None

    def __init__(
        self,
        data_source: Sized,
        replacement: bool = False,
        num_samples: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ):
        super().__init__()
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement must be a bool, got {replacement!r}")
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples <= 0):
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        if generator is not None and seed is not None:
            raise ValueError("pass either generator= or seed= to RandomSampler, not both")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        self.seed = _draw_seed() if generator is None and seed is None else seed
        self._generator_state_at_epoch: torch.Tensor | None = None
        self._pending_generator_state: torch.Tensor | None = None

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __len__(self) -> int:
        return self.num_samples

    def _epoch_generator(self, epoch: int) -> torch.Generator:
        if self.generator is not None:
            if self._pending_generator_state is not None:
                self.generator.set_state(self._pending_generator_state)
                self._pending_generator_state = None
            self._generator_state_at_epoch = self.generator.get_state()
            return self.generator
        assert self.seed is not None
        generator = torch.Generator()
        generator.manual_seed(epoch_seed(self.seed, epoch))
        return generator

    def _epoch_indices(self, epoch: int) -> npt.NDArray[np.int64]:
        # Drawn in the same calls as torch's sampler, so a shared generator gives torch's order.
        n = len(self.data_source)
        generator = self._epoch_generator(epoch)
        if self.replacement:
            chunks = [
                torch.randint(n, (_REPLACEMENT_CHUNK,), dtype=torch.int64, generator=generator)
                for _ in range(self.num_samples // _REPLACEMENT_CHUNK)
            ]
            chunks.append(
                torch.randint(
                    n,
                    (self.num_samples % _REPLACEMENT_CHUNK,),
                    dtype=torch.int64,
                    generator=generator,
                )
            )
            return torch.cat(chunks).numpy()
        order = [torch.randperm(n, generator=generator) for _ in range(self.num_samples // n)]
        order.append(torch.randperm(n, generator=generator)[: self.num_samples % n])
        return torch.cat(order).numpy()

    def _extra_state(self, epoch: int) -> dict[str, Any]:
        if self.generator is None:
            return {"seed": self.seed}
        state = self._generator_state_at_epoch
        if state is None:
            state = self.generator.get_state()
        return {"generator_state": base64.b64encode(state.numpy().tobytes()).decode("ascii")}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if "seed" in state:
            self.seed = int(state["seed"])
            return
        if self.generator is None:
            raise ValueError(
                "this RandomSampler state was saved with a torch.Generator; "
                "construct the sampler with generator= to load it"
            )
        raw = base64.b64decode(state["generator_state"])
        self._pending_generator_state = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
