"""One rank of `stoker train` under torchrun, with test hooks set by environment variables.

``STOKER_TEST_TRACE=DIR``: the training indices this rank fetched are written, at exit, to
``DIR/rank{RANK}-restart{N}.json``. ``STOKER_TEST_DIE=R:S``: rank R ends itself with
``os._exit`` at its S-th optimizer step — as a SIGKILL would, no cleanup — in the job's first
attempt only (a torchrun restart runs clean). ``STOKER_TEST_RANK0_LAST=DIR``: in a restarted
attempt, rank 0 joins the process group only once every other rank has begun to (each says so
with a file in DIR), and 2 s later, as a rank on a slow machine would: the others then meet the
failed attempt's keys in torchrun's store, which it keeps across restarts, before rank 0 has
written its own. (The old code's failure depended on more than this order: with it, with rank 0
3 s late at start, and with no order imposed, it failed or hung in 3 runs of 7.)
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from stoker.cli import _distributed, main
from stoker.datasets import CIFAR10

_DIED_EXIT = 17

rank = int(os.environ["RANK"])
restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
trace: list[int] = []
fetch = CIFAR10.__getitems__


def _traced(self: CIFAR10, indices: Sequence[int]) -> Sequence[Any]:
    if self.train:
        trace.extend(int(i) for i in indices)
    return fetch(self, indices)


def _write_trace() -> None:
    folder = Path(os.environ["STOKER_TEST_TRACE"])
    (folder / f"rank{rank}-restart{restart}.json").write_text(json.dumps(trace))


if "STOKER_TEST_TRACE" in os.environ:
    CIFAR10.__getitems__ = _traced  # type: ignore[method-assign]
    atexit.register(_write_trace)

if os.environ.get("STOKER_TEST_DIE") and restart == 0:
    die_rank, die_step = map(int, os.environ["STOKER_TEST_DIE"].split(":"))
    if die_rank == rank:
        step = torch.optim.SGD.step
        steps = [0]

        def _dying_step(self: Any, *args: Any, **kwargs: Any) -> Any:
            steps[0] += 1
            if steps[0] == die_step:
                os._exit(_DIED_EXIT)
            return step(self, *args, **kwargs)

        torch.optim.SGD.step = _dying_step  # type: ignore[method-assign]

if os.environ.get("STOKER_TEST_RANK0_LAST") and restart > 0:
    folder = Path(os.environ["STOKER_TEST_RANK0_LAST"])
    join = _distributed.join

    def _rank0_last(*args: Any, **kwargs: Any) -> Any:
        if rank == 0:
            others = [folder / f"rank{r}-restart{restart}.joining"
                      for r in range(1, int(os.environ["WORLD_SIZE"]))]  # fmt: skip
            deadline = time.monotonic() + 60
            while not all(path.exists() for path in others) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(2.0)
        else:
            (folder / f"rank{rank}-restart{restart}.joining").touch()
        return join(*args, **kwargs)

    _distributed.join = _rank0_last

sys.exit(main(sys.argv[1:]))
