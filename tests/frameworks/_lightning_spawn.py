"""Lightning's ``strategy="ddp_spawn"`` on 2 CPU ranks (gloo) over a stoker or a torch loader.

Run by tests/frameworks/test_lightning_ddp.py as ``python _lightning_spawn.py OUT KIND WORKERS``.
Lightning pickles the module into 2 spawned processes, re-creates the loader there with its
DistributedSampler, and each rank writes ``OUT/rank{r}.json``: {epoch: [[indices] per batch]},
and the types of the loader and sampler it trained with.
"""

from __future__ import annotations

import functools
import json
import sys
import warnings
from pathlib import Path

import lightning as L

from tests.frameworks._lightning_rank import EPOCHS, Recorder, make_loader


class SpawnRecorder(Recorder):
    """The torchrun job's recorder; each spawned rank writes what it saw when the fit ends."""

    def __init__(self, out: str, kind: str, workers: int) -> None:
        # a module-level function with its arguments: Lightning pickles the module into the ranks
        super().__init__(functools.partial(make_loader, kind, "auto", workers))
        self.out = out

    def on_train_end(self) -> None:
        loader = self.trainer.train_dataloader
        sampler = getattr(loader.batch_sampler, "sampler", None) or loader.sampler
        facts = {
            "loader": f"{type(loader).__module__}.{type(loader).__qualname__}",
            "sampler": f"{type(sampler).__module__}.{type(sampler).__qualname__}",
            "seen": self.seen,
        }
        (Path(self.out) / f"rank{self.global_rank}.json").write_text(json.dumps(facts))


def main() -> None:
    warnings.filterwarnings("ignore")  # Lightning's advice (few workers, small batches...)
    out, kind, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    trainer = L.Trainer(
        accelerator="cpu", strategy="ddp_spawn", devices=2, max_epochs=EPOCHS, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(SpawnRecorder(out, kind, workers))


if __name__ == "__main__":
    main()
