"""Extract untrusted tar archives, refusing any member that could write outside the target."""

from __future__ import annotations

import gzip
import lzma
import posixpath
import tarfile
import zlib
from pathlib import Path

from stoker.errors import DatasetError, UnsafeDataError

__all__ = ["safe_extract"]


def _refusal(archive: Path, member: tarfile.TarInfo, why: str) -> UnsafeDataError:
    return UnsafeDataError(
        f"{archive}: member {member.name!r} {why}; refused, nothing was extracted. "
        "The archive is not the official one: delete it and download again from the official URL"
    )


def _escapes(path: str) -> bool:
    """Whether a relative POSIX path, once normalised, leaves the folder it is relative to."""
    normal = posixpath.normpath(path)
    return normal == ".." or normal.startswith("../")


def _check_member(archive: Path, member: tarfile.TarInfo) -> None:
    name = member.name
    drive = len(name) > 2 and name[0].isalpha() and name[1] == ":" and name[2] in "/\\"
    if name.startswith(("/", "\\")) or drive:
        raise _refusal(archive, member, "has an absolute path")
    if ".." in name.replace("\\", "/").split("/"):
        raise _refusal(archive, member, "has a '..' path component")
    if member.isdev():
        raise _refusal(archive, member, "is a device file or FIFO")
    if member.issym():
        target = member.linkname
        if target.startswith("/") or _escapes(posixpath.join(posixpath.dirname(name), target)):
            raise _refusal(archive, member, f"is a symlink to {target!r}, outside the archive")
    elif member.islnk():
        target = member.linkname
        if target.startswith("/") or _escapes(target):
            raise _refusal(archive, member, f"is a hard link to {target!r}, outside the archive")
    elif not (member.isfile() or member.isdir()):
        raise _refusal(archive, member, f"has an unsupported type {member.type!r}")


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract ``archive`` (any compression tarfile reads) into the existing folder ``dest``.

    Every member is checked before anything is written (no absolute paths, no ``..``, no links
    leaving ``dest``, no device files); extraction then goes through tarfile's ``"data"`` filter
    as a second line of defence. Raises :class:`UnsafeDataError` naming the archive and member.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(archive, member)
            try:
                tar.extractall(dest, members=members, filter="data")
            except tarfile.FilterError as exc:
                refused = getattr(exc, "tarinfo", None)
                raise UnsafeDataError(
                    f"{archive}: member {getattr(refused, 'name', '?')!r} refused by tarfile's "
                    f"data filter ({exc}); delete the archive and download it again"
                ) from exc
    except UnsafeDataError:
        raise
    # What a truncated or garbled tar/gzip/bz2/xz stream raises; other OSErrors (disk full,
    # permissions) are not about the archive and propagate unchanged.
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as exc:
        raise DatasetError(
            f"{archive}: cannot be read as a tar archive ({type(exc).__name__}: {exc}); "
            "it is truncated or corrupt, delete it and download again"
        ) from exc
