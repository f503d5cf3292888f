"""Every subcommand has --help; demo and bench run end to end and draw PNGs that are not blank."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stoker.cli import bench, main

COMMANDS = ["train", "eval-voc", "show", "bench", "demo"]
_MIN_PNG_BYTES = 5_000


def _assert_picture(path: Path) -> None:
    """A PNG with real content: not tiny, and its pixels vary (a blank figure does not)."""
    assert path.stat().st_size > _MIN_PNG_BYTES, path
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    assert min(pixels.shape[:2]) >= 200, pixels.shape
    assert pixels.std() > 20, f"{path} looks blank (pixel std {pixels.std():.1f})"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: stoker {command}" in capsys.readouterr().out


def test_python_dash_m_stoker_lists_the_subcommands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stoker", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert command in result.stdout


def test_demo_quick_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--quick", "--out", str(tmp_path), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    for name in ("samples.png", "voc_samples.png", "bench.png"):
        _assert_picture(tmp_path / name)
        assert str(tmp_path / name) in out
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    assert "VOC accuracy" in out and "test accuracy" in out


def test_bench_quick_prints_the_table_and_writes_the_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # --quick's 4,096 samples a run are for a stable rate; this checks the table and the chart,
    # and 1,024 (still one generated epoch a run, at batch 16 and 256) took a quarter the time.
    monkeypatch.setattr(bench, "_QUICK_SAMPLES", 1_024)
    chart = tmp_path / "bench.png"
    assert main(["bench", "--quick", "--out", str(chart)]) == 0
    out = capsys.readouterr().out
    assert "torch+torchvision" in out and "stoker" in out and "ratio" in out
    assert len([line for line in out.splitlines() if line.rstrip().endswith("x")]) == 2
    _assert_picture(chart)


def test_show_voc_and_eval_voc_print_per_class_table(
    shapes_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = tmp_path / "voc.png"
    assert (
        main(
            [
                "show",
                "--data",
                str(shapes_data),
                "--source",
                "voc",
                "--out",
                str(grid),
                "--rows",
                "2",
                "--cols",
                "4",
            ]
        )
        == 0
    )
    _assert_picture(grid)
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                str(shapes_data),
                "--out",
                str(run),
                "--epochs",
                "1",
                "--workers",
                "0",
                "--train-limit",
                "64",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(["eval-voc", "--checkpoint", str(run / "checkpoint.pt"), "--voc", str(shapes_data)])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["class", "images", "correct", "accuracy"]
    assert lines[-1].split()[0] == "all"
    assert "frog" not in "\n".join(lines)  # not a VOC class: the generator never writes one
