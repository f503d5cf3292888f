"""Problems the user can fix print one paragraph saying what to run, exit 2, no traceback."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest
import torch

from stoker.cli import main
from stoker.cli._checkpoint import FORMAT
from stoker.models import resnet20


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str], *expected: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1, err  # one paragraph
    for text in expected:
        assert text in err, err
    return err


@pytest.mark.parametrize("command", ["train", "show"])
def test_missing_data_folder_says_to_download(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    _fails([command, "--data", str(missing)], capsys, str(missing), "--download", "stoker demo")


def test_empty_data_folder_says_to_download(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fails(["train", "--data", str(tmp_path)], capsys, "cifar-10-batches-py", "--download")


def test_missing_voc_says_to_download(
    shapes_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    assert (
        main(
            [
                "train",
                "--data",
                str(shapes_data),
                "--out",
                str(checkpoint.parent),
                "--epochs",
                "1",
                "--workers",
                "0",
                "--train-limit",
                "32",
            ]
        )
        == 0
    )
    capsys.readouterr()
    _fails(
        ["eval-voc", "--checkpoint", str(checkpoint), "--voc", str(tmp_path / "novoc")],
        capsys,
        "VOC 2007",
        "--download",
    )


def test_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(
        ["eval-voc", "--checkpoint", str(tmp_path / "no.pt"), "--voc", str(tmp_path)],
        capsys,
        "does not exist",
    )


def test_plain_state_dict_is_not_a_stoker_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "weights.pt"
    torch.save(resnet20().state_dict(), path)
    _fails(
        ["eval-voc", "--checkpoint", str(path), "--voc", str(tmp_path)],
        capsys,
        "not written by `stoker train`",
    )


def test_checkpoint_of_another_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "other.pt"
    torch.save({"format": FORMAT, "version": 1, "model": "resnet56"}, path)
    _fails(
        ["eval-voc", "--checkpoint", str(path), "--voc", str(tmp_path)],
        capsys,
        "'resnet56'",
        "stoker train",
    )


def test_checkpoint_whose_weights_do_not_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "wide.pt"
    weights = {"fc.weight": torch.zeros(3, 3)}
    torch.save({"format": FORMAT, "version": 1, "model": "resnet20", "model_state": weights}, path)
    _fails(["eval-voc", "--checkpoint", str(path), "--voc", str(tmp_path)], capsys, "do not fit")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupted_checkpoint(
    damage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.pt"
    torch.save({"format": FORMAT, "model_state": resnet20().state_dict()}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x00junk" * 100)
    _fails(["train", "--data", str(tmp_path), "--resume", str(path)], capsys, "damaged")


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this must never run",))


def test_checkpoint_that_would_run_code_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "payload": _Payload()}, path, pickle_module=pickle)
    err = _fails(["eval-voc", "--checkpoint", str(path), "--voc", str(tmp_path)], capsys, "damaged")
    assert "this must never run" not in capsys.readouterr().out + err


def _hide_torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every torchvision import raise ImportError, even of modules loaded already."""
    for name in [*sys.modules, "torchvision", "torchvision.transforms.v2"]:
        if name == "torchvision" or name.startswith("torchvision."):
            monkeypatch.setitem(sys.modules, name, None)


def test_bench_without_torchvision_says_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _hide_torchvision(monkeypatch)
    chart = tmp_path / "bench.png"
    _fails(
        ["bench", "--quick", "--out", str(chart)], capsys, "torchvision", "pip install torchvision"
    )


def test_demo_without_torchvision_skips_only_the_benchmark(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _hide_torchvision(monkeypatch)
    assert main(["demo", "--quick", "--out", str(tmp_path), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "skipped: stoker bench compares against torchvision" in out
    assert (tmp_path / "samples.png").is_file() and not (tmp_path / "bench.png").exists()
