"""A JSON result cached next to the data, valid while a fingerprint of its inputs holds."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["files_fingerprint", "read_cache", "write_cache", "write_json"]

_FORMAT_VERSION = 1


def files_fingerprint(paths: Iterable[Path]) -> str:
    """A hash of each file's name, size and mtime: changes when any of them is touched."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            stat = path.stat()
            digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            digest.update(f"{path.name}\0missing\n".encode())
    return digest.hexdigest()


def read_cache(path: Path, fingerprint: str) -> Any | None:
    """The cached value, or None when absent, unreadable or made for another fingerprint.

    The value is whatever JSON the file holds (anyone who can write the dataset folder can
    write it): validate its shape strictly before using it, and treat anything else as a miss.
    """
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("version") != _FORMAT_VERSION:
        return None
    if stored.get("fingerprint") != fingerprint:
        return None
    return stored.get("value")


def write_cache(path: Path, fingerprint: str, value: Any) -> bool:
    """Store ``value`` for ``fingerprint``; False if the folder is not writable.

    A read-only dataset folder is normal (a shared mount), so failing to cache is not an error:
    the result is just recomputed next time.
    """
    stored = {"version": _FORMAT_VERSION, "fingerprint": fingerprint, "value": value}
    return write_json(path, stored)


def write_json(path: Path, value: Any) -> bool:
    """Write ``value`` as JSON atomically (readers never see half a file); False on OSError."""
    payload = json.dumps(value, indent=1)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "w") as file:
            file.write(payload)
        os.replace(tmp, path)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False
