"""`stoker train` and `stoker bench` draw tqdm bars on a terminal and nothing in logs."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import tqdm.auto

from stoker.cli import bench, main, train


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, as tqdm's ``disable=None`` asks."""

    def isatty(self) -> bool:
        return True


_TINY = ["--workers", "0", "--device", "cpu", "--batch-size", "32", "--epochs", "1"]
_LIMITS = ["--train-limit", "96", "--test-limit", "32"]


def _train(data: Path, out: Path) -> int:
    return main(["train", "--data", str(data), "--out", str(out), *_TINY, *_LIMITS])


def test_train_draws_a_tqdm_bar_with_rate_loss_and_data_wait_on_a_terminal(
    shapes_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert _train(shapes_data, tmp_path) == 0
    drawn = terminal.getvalue()
    # 96 images, batch 32: three batches (tqdm redraws at most every 0.1 s, so which counts
    # show depends on speed; the total always does)
    assert "epoch 1/1" in drawn and "/3 [" in drawn
    assert "samples/s" in drawn and "loss" in drawn and "data wait" in drawn
    assert train.tqdm is tqdm.auto.tqdm


def test_train_off_a_terminal_prints_only_the_epoch_line(
    shapes_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train(shapes_data, tmp_path) == 0
    out, err = capsys.readouterr()
    assert "\r" not in out + err and "data wait 0%" not in err
    assert "epoch 1/1  train loss" in out


def test_bench_draws_one_step_per_timed_run_on_a_terminal(
    shapes_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    results = bench.measure(shapes_data, 64, settings=[(16, 0)])
    assert [(r.batch_size, r.workers) for r in results] == [(16, 0)]
    drawn = terminal.getvalue()
    assert "timing" in drawn and "/2 [" in drawn
    assert "torch, batch 16" in drawn and "stoker, batch 16" in drawn
    assert bench.tqdm is tqdm.auto.tqdm


def test_the_hand_written_bar_is_gone() -> None:
    with pytest.raises(ModuleNotFoundError):
        __import__("stoker._progress")
