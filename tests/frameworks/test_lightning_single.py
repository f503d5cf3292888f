"""Lightning on one CPU device, in this process: epochs, validation and checkpoint resume.

A stoker loader in ``Trainer.fit`` must deliver, in Lightning's epoch ``e``, exactly stoker's
epoch ``e`` (shuffle order and each sample's ``sample_rng`` noise) — the same batches as the
loader gives in a plain loop — and Lightning's checkpoints, which store the loader's
``state_dict`` (Lightning calls it on loaders that have one), must resume mid-epoch exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import stoker

L = pytest.importorskip("lightning")

pytestmark = [
    # Lightning's advice for real jobs (more workers, a bigger logging interval...)
    pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning"),
    pytest.mark.filterwarnings("ignore:.*Checkpoint directory.*exists:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated:FutureWarning"),  # torch 2.14
    pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`:UserWarning"),
]

N, BATCH, SEED = 20, 4, 3  # 5 batches an epoch
Batch = tuple[int, list[int], list[int]]  # (epoch, indices, noise)


class Noisy(stoker.Dataset):  # type: ignore[misc]
    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> tuple[int, int]:
        return int(i), int(stoker.sample_rng().integers(2**31))


def _loader(**options: Any) -> stoker.DataLoader:
    return stoker.DataLoader(Noisy(), batch_size=BATCH, seed=SEED, **options)


class Recorder(L.LightningModule):  # type: ignore[misc, name-defined]
    def __init__(self, workers: int = 0) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.workers = workers
        self.seen: list[Batch] = []
        self.validated: list[Batch] = []

    def train_dataloader(self) -> stoker.DataLoader:
        return _loader(shuffle=True, num_workers=self.workers)

    def val_dataloader(self) -> stoker.DataLoader:
        return _loader(shuffle=False)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        index, noise = batch
        self.seen.append((self.current_epoch, index.tolist(), noise.tolist()))
        return self.layer(index.float()[:, None]).mean() * 0.0

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        index, noise = batch
        self.validated.append((self.current_epoch, index.tolist(), noise.tolist()))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _trainer(epochs: int = 2, callbacks: list[Any] | None = None, **options: Any) -> Any:
    return L.Trainer(
        accelerator="cpu", devices=1, max_epochs=epochs, logger=False,
        enable_checkpointing=bool(callbacks), callbacks=callbacks or [],
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        **options,
    )  # fmt: skip


def _plain_loop(epochs: int, **options: Any) -> list[Batch]:
    loader = _loader(**options)
    return [(e, i.tolist(), x.tolist()) for e in range(epochs) for i, x in loader]


def _assert_same(got: list[Batch], expected: list[Batch], what: str) -> None:
    for k, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a == b, f"{what}: batch {k} differs"


def test_fit_epochs_are_stoker_epochs_and_validate_runs(tmp_path: Path) -> None:
    module = Recorder()
    _trainer(3, default_root_dir=tmp_path).fit(module)
    _assert_same(module.seen, _plain_loop(3, shuffle=True), "fit")
    assert [e for e, _, _ in module.seen] == [e for e in range(3) for _ in range(N // BATCH)]
    epoch_orders = {tuple(i for _, b, _ in module.seen[k : k + 5] for i in b) for k in (0, 5, 10)}
    assert len(epoch_orders) == 3, "epochs repeated an order"
    # Validation after each epoch: the whole set in order, each pass the val loader's next epoch
    # (its sample_rng noise follows that epoch, as in a plain loop)
    passes = [(e, i, x) for e, i, x in _plain_loop(3, shuffle=False)]
    _assert_same(module.validated, passes, "validation in fit")
    # trainer.validate asks for a new val loader: its epoch 0
    module.validated.clear()
    _trainer(default_root_dir=tmp_path).validate(module)
    _assert_same(module.validated, passes[: N // BATCH], "trainer.validate")


def _checkpointed_fit(tmp_path: Path, workers: int) -> Recorder:
    """An uninterrupted 2-epoch fit that checkpoints after every step and at each epoch's end."""
    steps = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=tmp_path / "steps", filename="{step}", every_n_train_steps=1, save_top_k=-1
    )
    epochs = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=tmp_path / "epochs", filename="{epoch}", every_n_epochs=1, save_top_k=-1,
        save_on_train_epoch_end=True,
    )  # fmt: skip
    whole = Recorder(workers)
    _trainer(2, [steps, epochs], limit_val_batches=0).fit(whole)
    _assert_same(whole.seen, _plain_loop(2, shuffle=True), "uninterrupted fit")
    return whole


def _resume(tmp_path: Path, name: str, workers: int) -> list[Batch]:
    resumed = Recorder(workers)
    _trainer(2, limit_val_batches=0).fit(resumed, ckpt_path=tmp_path / f"{name}.ckpt")
    return resumed.seen


@pytest.mark.parametrize("workers", [0, 2])
def test_checkpoints_resume_mid_epoch(tmp_path: Path, workers: int) -> None:
    """Lightning stores the loader's state_dict in the checkpoint and loads it on resume."""
    whole = _checkpointed_fit(tmp_path, workers)
    for name, done in (("steps/step=2", 2), ("steps/step=7", 7)):  # in epoch 0, in epoch 1
        _assert_same(_resume(tmp_path, name, workers), whole.seen[done:], f"resumed from {name}")


@pytest.mark.parametrize("name", ["steps/step=5", "epochs/epoch=0"])
def test_checkpoint_at_an_epochs_end_resumes_with_the_next_epoch(tmp_path: Path, name: str) -> None:
    whole = _checkpointed_fit(tmp_path, 0)
    _assert_same(_resume(tmp_path, name, 0), whole.seen[5:], f"resumed from {name}")
