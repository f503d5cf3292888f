"""Training checkpoints: plain tensors, dicts and numbers only, so loading runs no code.

A checkpoint is written with ``torch.save`` and read with ``torch.load(weights_only=True)``,
which refuses anything but tensors and plain containers: a checkpoint from the internet cannot
execute code. It is replaced atomically, so a crash mid-write leaves the previous one intact.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from stoker.cli._common import CommandError
from stoker.models.resnet import CifarResNet

__all__ = ["FORMAT", "load_checkpoint", "load_model", "save_checkpoint"]

FORMAT = "stoker-train-checkpoint"
_VERSION = 1
_MODEL = "resnet20"


def save_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    """Write ``checkpoint`` (with format, version and model name added) to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save({"format": FORMAT, "version": _VERSION, "model": _MODEL, **checkpoint}, partial)
    os.replace(partial, path)


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


def load_model(path: Path, checkpoint: dict[str, Any] | None = None) -> CifarResNet:
    """The ResNet-20 saved in ``path``, in eval mode; a CommandError if its weights do not fit."""
    from stoker.models import resnet20

    checkpoint = load_checkpoint(path) if checkpoint is None else checkpoint
    model = resnet20(int(checkpoint.get("num_classes", 10)))
    try:
        model.load_state_dict(checkpoint["model_state"])
    except (KeyError, RuntimeError, TypeError, AttributeError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise CommandError(
            f"checkpoint {path} says {_MODEL} but its weights do not fit one ({first_line}); it "
            "was written by another model or edited. Train a new one with `stoker train`."
        ) from None
    return model.eval()
