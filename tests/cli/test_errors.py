"""Problems the user can fix print one paragraph saying what to run, exit 2, no traceback."""

from __future__ import annotations

import copy
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from stoker.cli import main
from stoker.cli._checkpoint import FORMAT, load_checkpoint, save_checkpoint
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


@pytest.mark.parametrize("num_classes", ["ten", 10**9, -3, 0, True, 2.5])
def test_checkpoint_with_a_bad_num_classes(
    num_classes: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "classes.pt"
    save_checkpoint(path, {"num_classes": num_classes, "model_state": resnet20().state_dict()})
    _fails(
        ["eval-voc", "--checkpoint", str(path), "--voc", str(tmp_path)],
        capsys,
        str(path),
        f"num_classes is {num_classes!r}",
    )


_RESUME = ["--workers", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def resumable(shapes_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The contents of a real mid-epoch checkpoint, to damage one field at a time."""
    out = tmp_path_factory.mktemp("resumable")
    argv = ["train", "--data", str(shapes_data), "--out", str(out), *_RESUME, "--epochs", "1"]
    limits = ["--batch-size", "16", "--train-limit", "64", "--test-limit", "16"]
    assert main([*argv, *limits, "--max-batches", "1"]) == 130
    return load_checkpoint(out / "checkpoint.pt")


def _set(path: tuple[str, ...], value: object) -> Callable[[dict[str, Any]], None]:
    """An edit of a checkpoint: put ``value`` at ``path`` (a missing field for _DELETE)."""

    def edit(checkpoint: dict[str, Any]) -> None:
        *parents, last = path
        for name in parents:
            checkpoint = checkpoint[name]
        if value is _DELETE:
            del checkpoint[last]
        else:
            checkpoint[last] = value

    return edit


_DELETE = object()


@pytest.mark.parametrize(
    ("edit", "cause"),
    [
        (_set(("num_classes",), "ten"), "num_classes is 'ten'"),
        (_set(("num_classes",), 10**9), "num_classes is 1000000000"),
        (_set(("num_classes",), -3), "num_classes is -3"),
        (_set(("settings",), "fast"), "'settings' is 'fast', not a dict"),
        (_set(("settings", "evil"), 1), "unknown names ['evil']"),
        (_set(("settings", "batch_size"), 0), "setting 'batch_size' is 0"),
        (_set(("optimizer",), _DELETE), "'optimizer' is None, not a dict"),
        (_set(("optimizer", "param_groups"), "x"), "lacks a 'state' dict or a 'param_groups'"),
        (_set(("optimizer", "param_groups", 0, "lr"), "fast"), "parameter group is"),
        (_set(("optimizer", "param_groups", 0, "momentum"), "x"), "hyperparameter 'momentum'"),
        (_set(("optimizer", "param_groups", 0, "params"), [0]), "does not fit this run"),
        (_set(("scheduler",), [1, 2]), "'scheduler' is [1, 2], not a dict"),
        (_set(("scheduler", "optimizer"), None), "scheduler state holds unknown names"),
        (_set(("scheduler", "T_max"), "many"), "scheduler 'T_max' is 'many'"),
        (_set(("scheduler", "base_lrs"), ["fast"]), "scheduler 'base_lrs' is ['fast']"),
        (_set(("loader",), _DELETE), "'loader' is None, not a dict"),
        (_set(("loader", "epoch"), "one"), "loader 'epoch' is 'one'"),
        (_set(("loader", "sample_seed"), None), "loader 'sample_seed' is None"),
        (_set(("loader", "batches_yielded"), 2**64), "loader 'batches_yielded' is 1844"),
        (_set(("loader", "version"), 99), "does not fit this run"),
        (_set(("rng", "torch"), torch.zeros(3)), "torch RNG state is"),
        (_set(("rng", "torch"), torch.zeros(3, dtype=torch.uint8)), "does not fit this run"),
        (_set(("history",), {"epoch": 1}), "'history' is {'epoch': 1}, not a list"),
        (_set(("partial",), {"seen": "all"}), "mid-epoch statistics"),
        (_set(("partial",), {"evil": 1}), "mid-epoch statistics"),
    ],
)
def test_resume_from_a_malformed_checkpoint(
    edit: Callable[[dict[str, Any]], None],
    cause: str,
    resumable: dict[str, Any],
    shapes_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint = copy.deepcopy(resumable)
    edit(checkpoint)
    path = tmp_path / "edited.pt"
    torch.save(checkpoint, path)
    argv = ["train", "--data", str(shapes_data), "--out", str(tmp_path), "--resume", str(path)]
    _fails([*argv, *_RESUME], capsys, f"checkpoint {path} is malformed", cause)


def test_resume_with_data_of_another_class_count(
    resumable: dict[str, Any],
    shapes_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "five.pt"
    torch.save({**resumable, "num_classes": 5, "model_state": resnet20(5).state_dict()}, path)
    argv = ["train", "--data", str(shapes_data), "--out", str(tmp_path), "--resume", str(path)]
    _fails([*argv, *_RESUME], capsys, str(path), "trained on 5 classes but this data has 10")


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
