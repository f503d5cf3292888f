"""One rank of a torchrun job running Lightning's DDP (gloo, CPU) over several loaders.

Run by tests/frameworks/test_lightning_ddp.py as
``torchrun --nproc_per_node=2 _lightning_rank.py OUT CASE [CASE ...]``. Each CASE is
``name:loader:sampler:workers[:step]``: loader ``torch`` or ``stoker``; sampler ``auto``
(shuffle=True, Lightning injects its DistributedSampler) or ``dist`` (the user passes the
loader's own DistributedSampler: torch's for torch, stoker's for stoker); workers the
``num_workers``. Every case is one ``Trainer.fit`` of EPOCHS epochs, in this one process
group; the module's ``training_step`` records the dataset indices (the dataset returns its
index) each rank sees in each epoch. Rank 0 writes ``OUT/CASE_NAME.json``: {"ranks": {rank:
{epoch: [[indices] per batch]}}, and the types of the loader and samplers Lightning trained
with}. With ``step``, the fit saves a checkpoint after every step, and a second fit resumes
from the one after ``step`` steps: its indices are under "resumed".
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
import torch.utils.data

import stoker

N = int(os.environ.get("STOKER_TEST_N", "22"))
EPOCHS = 2
BATCH = 4
SEED = 5  # the stoker loader's seed; Lightning's DistributedSampler seeds with PL_GLOBAL_SEED


class Indices(stoker.Dataset):  # type: ignore[misc]
    """``dataset[i]`` is ``i``."""

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> int:
        return int(i)


class Recorder(L.LightningModule):
    def __init__(self, make_loader: object) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.make_loader = make_loader
        self.seen: dict[int, list[list[int]]] = {}

    def train_dataloader(self) -> object:
        return self.make_loader()  # type: ignore[operator]

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        self.seen.setdefault(self.current_epoch, []).append([int(i) for i in batch])
        return self.layer(batch.float()[:, None]).sum() * 0.0

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def make_loader(kind: str, sampler: str, workers: int) -> object:
    data = Indices()
    extra: dict[str, object] = {"num_workers": workers}
    if workers:
        extra["persistent_workers"] = False
    if kind == "torch":
        if sampler == "dist":
            shard = torch.utils.data.DistributedSampler(data, shuffle=True, seed=SEED)
            return torch.utils.data.DataLoader(data, batch_size=BATCH, sampler=shard, **extra)
        return torch.utils.data.DataLoader(data, batch_size=BATCH, shuffle=True, **extra)
    if sampler == "dist":
        shard = stoker.DistributedSampler(data, shuffle=True, seed=SEED)
        return stoker.DataLoader(data, batch_size=BATCH, sampler=shard, seed=SEED, **extra)
    stoker_only = {"on_error": "skip", "max_errors": 3, "batch_transform": unchanged}
    if not workers:
        stoker_only["worker_mode"] = "thread"  # kept, though unused without workers
    return stoker.DataLoader(
        data, batch_size=BATCH, shuffle=True, seed=SEED, **extra, **stoker_only
    )


def unchanged(batch: torch.Tensor) -> torch.Tensor:
    """A batch_transform, to see it survive Lightning's re-creation of the loader."""
    return batch


def fit(module: Recorder, checkpoints: Path | None = None, resume: Path | None = None) -> L.Trainer:
    callbacks = []
    if checkpoints is not None:
        callbacks.append(
            L.pytorch.callbacks.ModelCheckpoint(
                dirpath=checkpoints, filename="{step}", every_n_train_steps=1, save_top_k=-1
            )
        )
    trainer = L.Trainer(
        accelerator="cpu",
        strategy="ddp",
        devices=2,
        max_epochs=EPOCHS,
        logger=False,
        callbacks=callbacks,
        enable_checkpointing=bool(callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, ckpt_path=resume)
    return trainer


def gather(seen: dict[int, list[list[int]]]) -> dict[int, object]:
    everyone: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, seen)
    return dict(enumerate(everyone))


def run_case(out: Path, case: str) -> None:
    name, kind, sampler, workers, *step = case.split(":")
    module = Recorder(lambda: make_loader(kind, sampler, int(workers)))
    checkpoints = out / f"{name}-checkpoints" if step else None
    trainer = fit(module, checkpoints)
    loader = trainer.train_dataloader
    inner = getattr(loader.batch_sampler, "sampler", None)
    facts = {
        name: f"{type(obj).__module__}.{type(obj).__qualname__}"
        for name, obj in (
            ("loader", loader),
            ("sampler", loader.sampler),
            ("batch_sampler_sampler", inner),
        )
    }
    if isinstance(loader, stoker.DataLoader):
        transform = loader.batch_transform
        facts["stoker"] = [loader.seed, loader.on_error, loader.max_errors, loader.worker_mode,
                           getattr(transform, "__name__", None)]  # fmt: skip
    result: dict[str, object] = {"ranks": gather(module.seen), **facts}
    if step:
        assert checkpoints is not None
        resumed = Recorder(lambda: make_loader(kind, sampler, int(workers)))
        fit(resumed, resume=checkpoints / f"step={step[0]}.ckpt")
        result["resumed"] = gather(resumed.seen)
    if dist.get_rank() == 0:
        (out / f"{name}.json").write_text(json.dumps(result))


def main() -> None:
    warnings.filterwarnings("ignore")  # Lightning's advice (few workers, small batches...)
    out = Path(sys.argv[1])
    for case in sys.argv[2:]:
        run_case(out, case)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
