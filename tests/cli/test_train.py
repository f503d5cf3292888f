"""`stoker train` learns, and a stopped-then-resumed run ends with the very same weights."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from stoker.cli import main, train
from stoker.cli._checkpoint import load_checkpoint
from tests.cli.conftest import torch_switches

_SMALL = ["--workers", "0", "--device", "cpu", "--batch-size", "32", "--seed", "3"]
# 128 images / batch 16 = 8 batches an epoch; the loss falls over two epochs for every seed
# tried (0-3), by 0.9-2.2.
_WHOLE = ["--workers", "0", "--device", "cpu", "--batch-size", "16", "--seed", "3", "--epochs",
          "2", "--train-limit", "128", "--test-limit", "32", "--deterministic"]  # fmt: skip


def _train(data: Path, out: Path, *extra: str) -> int:
    return main(["train", "--data", str(data), "--out", str(out), *_SMALL, *extra])


@pytest.fixture(scope="module")
def whole_run(shapes_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The checkpoint of an uninterrupted two-epoch run: the run that learns, and the one each
    stopped-and-resumed run must end equal to."""
    out = tmp_path_factory.mktemp("whole")
    with torch_switches():
        assert main(["train", "--data", str(shapes_data), "--out", str(out), *_WHOLE]) == 0
    return load_checkpoint(out / "checkpoint.pt")


def test_loss_falls_over_two_epochs(whole_run: dict[str, Any]) -> None:
    history = whole_run["history"]
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert all(0 <= row["data_wait"] <= 1 for row in history)


@pytest.mark.parametrize("stop_after", [8, 12], ids=["after-epoch-1", "mid-epoch-2"])
def test_stopped_and_resumed_run_equals_uninterrupted_run(
    shapes_data: Path, tmp_path: Path, stop_after: int, whole_run: dict[str, Any]
) -> None:
    """Invariant: resume restores model, optimizer, schedule and the loader's next batch."""
    # Stop at the epoch boundary or inside epoch 2.
    argv = ["train", "--data", str(shapes_data), "--out", str(tmp_path / "parts"), *_WHOLE]
    stopped = main([*argv, "--max-batches", str(stop_after)])
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
    resumed = load_checkpoint(part)
    assert whole_run["model_state"].keys() == resumed["model_state"].keys()
    for name, tensor in whole_run["model_state"].items():
        assert torch.equal(tensor, resumed["model_state"][name]), name
    assert whole_run["history"][-1]["test_accuracy"] == resumed["history"][-1]["test_accuracy"]


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
    common = ["--epochs", "1", "--train-limit", "64", "--test-limit", "32", "--deterministic"]
    assert _train(shapes_data, tmp_path / "workers", *common, "--augment-on", "workers") == 0
    assert _train(shapes_data, tmp_path / "device", *common, "--augment-on", "device") == 0
    in_workers = load_checkpoint(tmp_path / "workers" / "checkpoint.pt")["model_state"]
    on_device = load_checkpoint(tmp_path / "device" / "checkpoint.pt")["model_state"]
    for name, tensor in in_workers.items():
        assert torch.equal(tensor, on_device[name]), name


class _SlowLoader:
    """Three batches, each handed out after ``delay_s`` of (sleeping) data loading."""

    def __init__(self, delay_s: float):
        self.delay_s = delay_s

    def __len__(self) -> int:
        return 3

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _ in range(3):
            time.sleep(self.delay_s)
            yield torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])


class _Bar:
    """Records the progress line's fields instead of drawing them (tqdm's interface)."""

    disable = False

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, fields: str = "", refresh: bool = True) -> None:
        self.lines.append(fields)


def test_the_progress_line_shows_the_share_of_step_time_spent_waiting_for_data() -> None:
    """Time blocked in next(loader) counts as data wait, and the line shows wait / step time."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    stats, bar = train._EpochStats(), _Bar()
    loader: Any = _SlowLoader(delay_s=0.05)
    finished = train._train_epoch(
        model,
        loader,
        optimizer,
        torch.device("cpu"),
        stats,
        bar,
        train._StopRequest(),  # type: ignore[arg-type]
    )
    assert finished and stats.batches == 3 and len(bar.lines) == 3
    assert stats.wait_s >= 3 * 0.05  # the sleeps, at least
    assert stats.wait_s <= stats.step_s
    assert stats.data_wait == stats.wait_s / stats.step_s
    assert f"data wait {stats.data_wait:.0%}" in bar.lines[-1]


def test_speed_options_set_the_layout_and_the_autocast_precision() -> None:
    images = torch.rand(2, 3, 8, 8)
    assert train._Speed().inputs(images) is images
    fast = train._Speed(bf16=True, channels_last=True)
    assert fast.inputs(images).is_contiguous(memory_format=torch.channels_last)
    with fast.autocast(torch.device("cpu")):
        assert nn.Linear(4, 4)(torch.rand(2, 4)).dtype == torch.bfloat16
    with train._Speed().autocast(torch.device("cpu")):
        assert nn.Linear(4, 4)(torch.rand(2, 4)).dtype == torch.float32


def test_bf16_and_channels_last_train_on_the_cpu_too(
    shapes_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The options parse and take effect: bf16 arithmetic gives other weights than float32."""
    # One step of 32 images: bf16 arithmetic moves the weights elsewhere already
    common = ["--epochs", "1", "--train-limit", "32", "--test-limit", "32", "--deterministic"]
    assert _train(shapes_data, tmp_path / "fast", *common, "--bf16", "--channels-last") == 0
    assert "bf16 autocast, channels-last" in capsys.readouterr().out
    assert _train(shapes_data, tmp_path / "plain", *common) == 0
    fast = load_checkpoint(tmp_path / "fast" / "checkpoint.pt")["model_state"]
    plain = load_checkpoint(tmp_path / "plain" / "checkpoint.pt")["model_state"]
    weights = [name for name, tensor in plain.items() if tensor.is_floating_point()]
    assert all(fast[name].dtype == torch.float32 for name in weights)
    assert any(not torch.equal(fast[name], plain[name]) for name in weights)
