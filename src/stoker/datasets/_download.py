"""Download an archive, verify its MD5, extract it safely, and only then move it into place."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TextIO

from stoker.datasets._archive import safe_extract
from stoker.errors import DatasetError, IntegrityError

__all__ = ["download_and_extract", "file_md5"]

_CHUNK_BYTES = 1 << 20
# Long enough for a slow mirror to answer, short enough that a dead one fails within a minute.
_SOCKET_TIMEOUT_S = 60.0
# Redrawing the bar more often than this only costs terminal bandwidth.
_PROGRESS_INTERVAL_S = 0.2
_SCHEMES = ("http", "https", "file")


def file_md5(path: Path) -> str:
    """The hex MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class _Progress:
    """A one-line progress bar on stderr; knows the total only when the server says it."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None):
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self._last_draw = 0.0

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        now = time.monotonic()
        if now - self._last_draw >= _PROGRESS_INTERVAL_S:
            self._last_draw = now
            self._draw()

    def _draw(self, end: str = "") -> None:
        mib = self.done / 2**20
        if self.total:
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 30)
            line = f"{self.label}: [{bar:<30}] {share:4.0%} {mib:.1f}/{self.total / 2**20:.1f} MiB"
        else:
            line = f"{self.label}: {mib:.1f} MiB"
        self.stream.write(f"\r{line}{end}")
        self.stream.flush()

    def close(self) -> None:
        self._draw(end="\n")


def _fetch(url: str, dest: Path) -> None:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in _SCHEMES:
        raise ValueError(f"download url must use one of {_SCHEMES}, got {url!r}")
    try:
        with (
            urllib.request.urlopen(url, timeout=_SOCKET_TIMEOUT_S) as response,
            open(dest, "wb") as out,
        ):
            length = response.headers.get("Content-Length")
            progress = _Progress(f"downloading {dest.name}", int(length) if length else None)
            while chunk := response.read(_CHUNK_BYTES):
                out.write(chunk)
                progress.advance(len(chunk))
            progress.close()
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise DatasetError(
            f"could not download {url} ({type(exc).__name__}: {exc}); check the network or the "
            "url, or fetch the archive by hand and extract it into the dataset root"
        ) from exc


def _move_into_place(src: Path, dest: Path) -> None:
    """Move the tree ``src`` into ``dest``, merging into folders that already exist there."""
    for entry in sorted(src.iterdir()):
        target = dest / entry.name
        if entry.is_dir() and not entry.is_symlink() and target.is_dir():
            _move_into_place(entry, target)
        elif target.is_dir() and not target.is_symlink():
            raise DatasetError(
                f"{target} is a folder but the archive has a file there; move it away and retry"
            )
        else:
            os.replace(entry, target)


def download_and_extract(url: str, root: Path, filename: str, md5: str | None) -> None:
    """Fetch ``url`` into a staging folder inside ``root``, check ``md5``, extract, move in.

    Nothing appears in ``root`` unless the download completed, its checksum matched and every
    archive member passed the safety checks; the staging folder is removed either way.
    ``md5=None`` skips the checksum (only sensible for a url you control).
    """
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".stoker-download-", dir=root))
    try:
        archive = staging / filename
        _fetch(url, archive)
        if md5 is not None:
            got = file_md5(archive)
            if got != md5.lower():
                raise IntegrityError(
                    f"{filename} downloaded from {url} has MD5 {got}, expected {md5}; the "
                    "download is corrupt or the file changed upstream. Nothing was extracted; "
                    "retry the download, and if it persists check the url and md5"
                )
        extracted = staging / "extracted"
        extracted.mkdir()
        safe_extract(archive, extracted)
        _move_into_place(extracted, root)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
