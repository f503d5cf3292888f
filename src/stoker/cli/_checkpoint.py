"""Training checkpoints: plain tensors, dicts and numbers only, so loading runs no code.

A checkpoint is written with ``torch.save`` and read with ``torch.load(weights_only=True)``,
which refuses anything but tensors and plain containers: a checkpoint from the internet cannot
execute code. It is replaced atomically, so a crash mid-write leaves the previous one intact.
"""

from __future__ import annotations

import os
import pickle
import reprlib
import tempfile
import zipfile
from collections.abc import Collection
from pathlib import Path
from typing import Any, TypeGuard

import torch

from stoker.cli._common import CommandError
from stoker.models.resnet import CifarResNet

__all__ = [
    "FORMAT",
    "MAX_CLASSES",
    "check_settings",
    "check_training_state",
    "checkpoint_classes",
    "load_checkpoint",
    "load_model",
    "malformed",
    "save_checkpoint",
]

FORMAT = "stoker-train-checkpoint"
_VERSION = 1
_MODEL = "resnet20"
# Far above any classification dataset stoker reads, far below a last layer that would exhaust
# memory (num_classes * 64 weights are allocated before any weight is checked).
MAX_CLASSES = 100_000
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, 40, 40

# The training-state fields a resume reads, and the type each must have.
_STATE_FIELDS: dict[str, type] = {
    "optimizer": dict,
    "scheduler": dict,
    "loader": dict,
    "rng": dict,
    "history": list,
}


def save_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    """Write ``checkpoint`` (with format, version and model name added) to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temporary name no other writer uses (another job, or a rank that should not write), in
    # the same folder so that os.replace is a rename within one file system.
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    partial = Path(name)
    try:
        os.fchmod(handle, 0o666 & ~_umask())  # mkstemp's 0600 would hide it from the group
        with os.fdopen(handle, "wb") as file:
            torch.save({"format": FORMAT, "version": _VERSION, "model": _MODEL, **checkpoint}, file)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read and check a checkpoint written by ``stoker train``, or raise a CommandError."""
    if not path.is_file():
        raise CommandError(
            f"checkpoint {path} does not exist. Pass the checkpoint.pt that `stoker train "
            "--out DIR` wrote into DIR."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
    ) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise CommandError(
            f"checkpoint {path} is damaged or not a torch checkpoint ({first_line}). It may have "
            "been cut short while copying, or refused because it holds more than tensors and "
            "plain data. Use another copy, or train again with `stoker train`."
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CommandError(
            f"checkpoint {path} was not written by `stoker train` (no '{FORMAT}' marker), so "
            "its model and training state are unknown. Pass a checkpoint.pt from `stoker "
            "train --out DIR`."
        )
    if checkpoint.get("model") != _MODEL or checkpoint.get("version") != _VERSION:
        raise CommandError(
            f"checkpoint {path} holds model {checkpoint.get('model')!r} (format version "
            f"{checkpoint.get('version')!r}); this stoker reads {_MODEL!r} version {_VERSION}. "
            "Train a new one with `stoker train`."
        )
    return checkpoint


def malformed(path: Path, what: str) -> CommandError:
    """The error for a checkpoint that loads but holds a field stoker cannot use."""
    return CommandError(
        f"checkpoint {path} is malformed: {what}. It was edited, damaged or written by another "
        "program; use another copy, or train again with `stoker train`."
    )


def _short(value: Any) -> str:
    """A short repr of ``value`` for quoting untrusted values in a one-paragraph message.

    reprlib bounds depth as well as length: a plain repr of a deeply nested list from a
    hostile file would recurse until RecursionError.
    """
    return _REPR.repr(value)


def _is_int(value: Any) -> TypeGuard[int]:
    """Whether ``value`` is a plain int; bool is an int to Python but never a count here."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def checkpoint_classes(path: Path, checkpoint: dict[str, Any]) -> int:
    """The checkpoint's ``num_classes``, checked before it sizes the model's last layer."""
    value = checkpoint.get("num_classes", 10)
    if not _is_int(value) or not 1 <= value <= MAX_CLASSES:
        raise malformed(
            path, f"num_classes is {_short(value)}, not a whole number from 1 to {MAX_CLASSES:,}"
        )
    return int(value)


def load_model(path: Path, checkpoint: dict[str, Any] | None = None) -> CifarResNet:
    """The ResNet-20 saved in ``path``, in eval mode; a CommandError if its weights do not fit."""
    from stoker.models import resnet20

    checkpoint = load_checkpoint(path) if checkpoint is None else checkpoint
    model = resnet20(checkpoint_classes(path, checkpoint))
    try:
        model.load_state_dict(checkpoint["model_state"])
    except (KeyError, RuntimeError, TypeError, AttributeError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise CommandError(
            f"checkpoint {path} says {_MODEL} but its weights do not fit one ({first_line}); it "
            "was written by another model or edited. Train a new one with `stoker train`."
        ) from None
    return model.eval()


def _check_int64(path: Path, where: str, state: dict[str, Any], name: str) -> None:
    """Refuse a loader counter or seed that is not an int64 >= 0, the range the loader draws.

    A larger one would fail only when the next epoch starts, far from the file.
    """
    value = state.get(name)
    if not _is_int(value) or not 0 <= value < 2**63:
        raise malformed(path, f"{where} {name!r} is {_short(value)}, not a whole number >= 0")


def _setting_ok(name: str, value: Any) -> bool:
    """seed: any whole number; batch_size, epochs: >= 1; the rest (limits): >= 1 or None."""
    if name == "seed":
        return _is_int(value)
    if value is None:
        return name not in ("batch_size", "epochs")
    return _is_int(value) and value >= 1


def check_settings(path: Path, checkpoint: dict[str, Any], names: Collection[str]) -> None:
    """Refuse, naming the file, saved run settings that are not ``names`` with sound values."""
    settings = checkpoint.get("settings")
    if not isinstance(settings, dict):
        raise malformed(path, f"its 'settings' is {_short(settings)}, not a dict")
    unknown = sorted(str(name) for name in set(settings) - set(names))
    if unknown:
        raise malformed(path, f"its settings hold unknown names {_short(unknown)}")
    for name, value in settings.items():
        if not _setting_ok(name, value):
            raise malformed(path, f"setting {name!r} is {_short(value)}")


def _is_hyperparameter(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float))


def _check_optimizer(path: Path, optimizer: dict[str, Any]) -> None:
    groups = optimizer.get("param_groups")
    if not isinstance(optimizer.get("state"), dict) or not isinstance(groups, list):
        raise malformed(path, "its optimizer state lacks a 'state' dict or a 'param_groups' list")
    for group in groups:
        if not isinstance(group, dict) or not _is_number(group.get("lr")):
            raise malformed(path, f"an optimizer parameter group is {_short(group)}")
        # A hyperparameter of the wrong type would fail only at the first optimizer step, far
        # from the file that caused it.
        for name, value in group.items():
            if name != "params" and not _is_hyperparameter(value):
                raise malformed(path, f"optimizer hyperparameter {name!r} is {_short(value)}")


def _like(value: Any, model: Any) -> bool:
    """Whether ``value`` has the kind of ``model``, a value a fresh scheduler holds.

    Any number for a number, as many numbers for a list of numbers (the per-group learning
    rates), else the same type.
    """
    if _is_number(model):
        return _is_number(value)
    if isinstance(model, list) and all(_is_number(item) for item in model):
        return (
            isinstance(value, list)
            and len(value) == len(model)
            and all(_is_number(item) for item in value)
        )
    return type(value) is type(model)


def _check_scheduler(path: Path, saved: dict[str, Any], fresh: dict[str, Any]) -> None:
    # An LR scheduler's load_state_dict copies every entry into its attributes, so a foreign
    # name could replace any of them (its optimizer, say): only the names it writes are allowed.
    unknown = sorted(str(name) for name in set(saved) - set(fresh))
    if unknown:
        raise malformed(path, f"its scheduler state holds unknown names {_short(unknown)}")
    for name, value in saved.items():
        if not _like(value, fresh[name]):
            raise malformed(path, f"scheduler {name!r} is {_short(value)}")


def _check_loader(path: Path, loader: dict[str, Any]) -> None:
    for name in ("epoch", "batches_yielded", "sample_seed"):
        _check_int64(path, "loader", loader, name)
    if not isinstance(loader.get("sampler"), dict | None):
        raise malformed(path, f"loader 'sampler' is {_short(loader.get('sampler'))}")


def check_training_state(
    path: Path,
    checkpoint: dict[str, Any],
    stat_names: Collection[str],
    fresh_scheduler: dict[str, Any],
) -> None:
    """Refuse, naming the file, a checkpoint whose training state a resume could not use.

    ``torch.load(weights_only=True)`` only guarantees plain data: an edited or foreign file
    could hold anything in these fields, and the KeyError or TypeError that would surface from
    deep in torch (or epochs later) says nothing about the file. ``stat_names`` are the keys
    the mid-epoch statistics may have; ``fresh_scheduler`` is the state of a newly built
    scheduler, the model the saved one must follow.
    """
    for name, kind in _STATE_FIELDS.items():
        if not isinstance(checkpoint.get(name), kind):
            raise malformed(
                path, f"its {name!r} is {_short(checkpoint.get(name))}, not a {kind.__name__}"
            )
    _check_optimizer(path, checkpoint["optimizer"])
    _check_scheduler(path, checkpoint["scheduler"], fresh_scheduler)
    _check_loader(path, checkpoint["loader"])
    rng = checkpoint["rng"].get("torch")
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 or rng.dim() != 1:
        raise malformed(path, f"its torch RNG state is {_short(rng)}, not a 1-d uint8 tensor")
    partial = checkpoint.get("partial")
    if partial is not None and not (
        isinstance(partial, dict)
        and set(partial) <= set(stat_names)
        and all(_is_number(value) for value in partial.values())
    ):
        raise malformed(path, f"its mid-epoch statistics are {_short(partial)}")
