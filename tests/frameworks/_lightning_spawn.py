"""Lightning's ``strategy="ddp_spawn"`` on 2 CPU ranks (gloo) over a stoker or a torch loader.

Run by tests/frameworks/test_lightning_ddp.py as ``python _lightning_spawn.py OUT KIND WORKERS``.
Lightning pickles the module into 2 spawned processes, re-creates the loader there with its
DistributedSampler, and each rank writes ``OUT/rank{r}.json``: {epoch: [[indices] per batch]},
and the types of the loader and sampler it trained with.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import lightning as L
import torch
import torch.utils.data

import stoker

N, EPOCHS, BATCH, SEED = 22, 2, 4, 5


class Indices(stoker.Dataset):  # type: ignore[misc]
    """``dataset[i]`` is ``i``."""

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> int:
        return int(i)


class Recorder(L.LightningModule):
    def __init__(self, out: str, kind: str, workers: int) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.out, self.kind, self.workers = out, kind, workers
        self.seen: dict[int, list[list[int]]] = {}

    def train_dataloader(self) -> object:
        extra: dict[str, object] = {"num_workers": self.workers}
        if self.kind == "torch":
            return torch.utils.data.DataLoader(Indices(), batch_size=BATCH, shuffle=True, **extra)
        return stoker.DataLoader(Indices(), batch_size=BATCH, shuffle=True, seed=SEED, **extra)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        self.seen.setdefault(self.current_epoch, []).append([int(i) for i in batch])
        return self.layer(batch.float()[:, None]).sum() * 0.0

    def on_train_end(self) -> None:
        loader = self.trainer.train_dataloader
        sampler = getattr(loader.batch_sampler, "sampler", None) or loader.sampler
        facts = {
            "loader": f"{type(loader).__module__}.{type(loader).__qualname__}",
            "sampler": f"{type(sampler).__module__}.{type(sampler).__qualname__}",
            "seen": self.seen,
        }
        (Path(self.out) / f"rank{self.global_rank}.json").write_text(json.dumps(facts))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def main() -> None:
    warnings.filterwarnings("ignore")  # Lightning's advice (few workers, small batches...)
    out, kind, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    trainer = L.Trainer(
        accelerator="cpu", strategy="ddp_spawn", devices=2, max_epochs=EPOCHS, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(Recorder(out, kind, workers))


if __name__ == "__main__":
    main()
