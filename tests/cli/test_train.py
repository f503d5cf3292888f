"""`stoker train` learns, and a stopped-then-resumed run ends with the very same weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stoker.cli import main
from stoker.cli._checkpoint import load_checkpoint

_SMALL = ["--workers", "0", "--device", "cpu", "--batch-size", "32", "--seed", "3"]


def _train(data: Path, out: Path, *extra: str) -> int:
    return main(["train", "--data", str(data), "--out", str(out), *_SMALL, *extra])


def test_loss_falls_over_two_epochs(shapes_data: Path, tmp_path: Path) -> None:
    assert _train(shapes_data, tmp_path, "--epochs", "2") == 0
    history = load_checkpoint(tmp_path / "checkpoint.pt")["history"]
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert all(0 <= row["data_wait"] <= 1 for row in history)


@pytest.mark.parametrize("stop_after", [8, 12], ids=["after-epoch-1", "mid-epoch-2"])
def test_stopped_and_resumed_run_equals_uninterrupted_run(
    shapes_data: Path, tmp_path: Path, stop_after: int
) -> None:
    """Invariant: resume restores model, optimizer, schedule and the loader's next batch."""
    common = ["--epochs", "2", "--train-limit", "256", "--test-limit", "32", "--deterministic"]
    assert _train(shapes_data, tmp_path / "whole", *common) == 0
    # 256 images / batch 32 = 8 batches per epoch: stop at the epoch boundary or inside epoch 2.
    stopped = _train(shapes_data, tmp_path / "parts", *common, "--max-batches", str(stop_after))
    assert stopped == 130
    part = tmp_path / "parts" / "checkpoint.pt"
    assert load_checkpoint(part)["epoch"] == 1
    assert (
        main(
            [
                "train",
                "--data",
                str(shapes_data),
                "--out",
                str(tmp_path / "parts"),
                "--resume",
                str(part),
                "--workers",
                "0",
                "--device",
                "cpu",
                "--deterministic",
            ]
        )
        == 0
    )
    whole = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    resumed = load_checkpoint(part)
    assert whole["model_state"].keys() == resumed["model_state"].keys()
    for name, tensor in whole["model_state"].items():
        assert torch.equal(tensor, resumed["model_state"][name]), name
    assert whole["history"][-1]["test_accuracy"] == resumed["history"][-1]["test_accuracy"]


def test_resume_refuses_a_different_batch_size(
    shapes_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train(shapes_data, tmp_path, "--epochs", "1", "--max-batches", "1") == 130
    code = main(
        [
            "train",
            "--data",
            str(shapes_data),
            "--resume",
            str(tmp_path / "checkpoint.pt"),
            "--batch-size",
            "64",
        ]
    )
    assert code == 2
    assert "--batch-size 64 differs from the 32" in capsys.readouterr().err


def test_augmenting_on_the_device_equals_augmenting_in_workers(
    shapes_data: Path, tmp_path: Path
) -> None:
    """Invariant: moving the augmentation after the copy changes where it runs, not what it does."""
    common = ["--epochs", "1", "--train-limit", "128", "--test-limit", "32", "--deterministic"]
    assert _train(shapes_data, tmp_path / "workers", *common, "--augment-on", "workers") == 0
    assert _train(shapes_data, tmp_path / "device", *common, "--augment-on", "device") == 0
    in_workers = load_checkpoint(tmp_path / "workers" / "checkpoint.pt")["model_state"]
    on_device = load_checkpoint(tmp_path / "device" / "checkpoint.pt")["model_state"]
    for name, tensor in in_workers.items():
        assert torch.equal(tensor, on_device[name]), name
