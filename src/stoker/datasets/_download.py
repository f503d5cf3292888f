"""Download an archive, verify its MD5, extract it safely, and only then move it into place."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from stoker.datasets._archive import DEFAULT_MAX_BYTES, DEFAULT_MAX_MEMBERS, safe_extract
from stoker.errors import DatasetError, IntegrityError

__all__ = ["download_and_extract", "file_md5"]

_CHUNK_BYTES = 1 << 20
# Long enough for a slow mirror to answer, short enough that a dead one fails within a minute.
_SOCKET_TIMEOUT_S = 60.0
_SCHEMES = ("http", "https", "file")

_log = logging.getLogger("stoker")


def file_md5(path: Path) -> str:
    """The hex MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB"


def _content_length(value: str | None) -> int | None:
    """The size a ``Content-Length`` header declares, or None when absent or not a size.

    It only drives the progress bar, so a garbled header (``12abc``, ``-5``) from a broken
    mirror means "size unknown", not a failed download.
    """
    try:
        size = int(value) if value is not None else -1
    except ValueError:
        return None
    return size if size >= 0 else None


def _fetch(url: str, dest: Path) -> None:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in _SCHEMES:
        raise ValueError(f"download url must use one of {_SCHEMES}, got {url!r}")
    try:
        with (
            urllib.request.urlopen(url, timeout=_SOCKET_TIMEOUT_S) as response,
            open(dest, "wb") as out,
        ):
            total = _content_length(response.headers.get("Content-Length"))
            # disable=None: a bar on a terminal (a widget in a notebook), nothing in logs.
            with tqdm(
                total=total,
                desc=f"downloading {dest.name}",
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                disable=None,
            ) as bar:
                while chunk := response.read(_CHUNK_BYTES):
                    out.write(chunk)
                    bar.update(len(chunk))
            _log.info("downloaded %s from %s: %s", dest.name, url, _mib(out.tell()))
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


def download_and_extract(
    url: str,
    root: Path,
    filename: str,
    md5: str | None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> None:
    """Fetch ``url`` into a staging folder inside ``root``, check ``md5``, extract, move in.

    Nothing appears in ``root`` unless the download completed, its checksum matched and every
    archive member passed the safety checks (see :func:`safe_extract`, which ``max_bytes`` and
    ``max_members`` are passed to); the staging folder is removed either way. ``md5=None``
    skips the checksum (only sensible for a url you control) and logs a warning saying so.
    """
    if md5 is None:
        _log.warning(
            "%s: no md5 given, so %s is extracted unverified: only stoker's archive safety "
            "checks stand between it and the disk. Pass md5= to check it, or use a url you "
            "control",
            url,
            filename,
        )
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
        safe_extract(archive, extracted, max_bytes=max_bytes, max_members=max_members)
        _move_into_place(extracted, root)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
