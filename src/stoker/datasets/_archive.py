"""Extract untrusted tar archives, refusing any member that could write outside the target."""

from __future__ import annotations

import gzip
import lzma
import shutil
import tarfile
import zlib
from pathlib import Path

from stoker.errors import DatasetError, UnsafeDataError

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_MEMBERS", "safe_extract"]

# Generous bounds on what one archive may unpack to: the largest archive stoker fetches (VOC2007
# trainval + test) is about 0.9 GB in 30k members. They stop a small archive from filling the
# disk (a .tar.gz of zeros compresses about 1000:1) or the inode table.
DEFAULT_MAX_BYTES = 4 * 2**30
DEFAULT_MAX_MEMBERS = 100_000


def _refusal(archive: Path, member: tarfile.TarInfo, why: str) -> UnsafeDataError:
    return UnsafeDataError(
        f"{archive}: member {member.name!r} {why}; refused, nothing was extracted. "
        "The archive is not the official one: delete it and download again from the official URL"
    )


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB"


def _short(text: str, limit: int = 60) -> str:
    """``text`` quoted, cut to ``limit`` characters: link targets can be kilobytes long."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _check_member(archive: Path, member: tarfile.TarInfo) -> None:
    """Refuse a member that is not a plain file or folder with a relative, downward path."""
    name = member.name
    drive = len(name) > 2 and name[0].isalpha() and name[1] == ":" and name[2] in "/\\"
    if name.startswith(("/", "\\")) or drive:
        raise _refusal(archive, member, "has an absolute path")
    if ".." in name.replace("\\", "/").split("/"):
        raise _refusal(archive, member, "has a '..' path component")
    if member.isdev():
        raise _refusal(archive, member, "is a device file or FIFO")
    # Every link is refused, not only those whose target reads as outside: a chain of links
    # through long names can stay inside as text yet resolve outside on disk (CVE-2025-4517
    # slips past tarfile's own "data" filter before Python 3.11.13). Dataset archives hold none.
    if member.issym():
        raise _refusal(archive, member, f"is a symlink (to {_short(member.linkname)})")
    if member.islnk():
        raise _refusal(archive, member, f"is a hard link (to {_short(member.linkname)})")
    if not (member.isfile() or member.isdir()):
        raise _refusal(archive, member, f"has an unsupported type {member.type!r}")
    # A negative size makes the tarfile of Python 3.11.7 re-read the same header forever
    # (CVE-2025-8194); refusing it here stops that loop at its first turn.
    if member.size < 0:
        raise _refusal(archive, member, f"declares a negative size ({member.size})")


def _checked_members(
    archive: Path, tar: tarfile.TarFile, max_bytes: int, max_members: int
) -> tuple[list[tarfile.TarInfo], int]:
    """Every member of ``tar``, each checked, and their total size; refused past the limits.

    Members are read one at a time so that an archive of endless headers is refused at
    ``max_members`` instead of being listed whole first.
    """
    members: list[tarfile.TarInfo] = []
    total = 0
    for member in tar:
        _check_member(archive, member)
        members.append(member)
        total += member.size if member.isfile() else 0
        if len(members) > max_members:
            raise _refusal(
                archive, member, f"is past the limit of {max_members:,} members (max_members)"
            )
        if total > max_bytes:
            raise _refusal(
                archive,
                member,
                f"brings the size to extract past {_gib(max_bytes)} (max_bytes), so the "
                "archive looks like a decompression bomb",
            )
    return members, total


def _check_free_space(archive: Path, dest: Path, needed: int) -> None:
    """Fail before writing anything when ``dest`` cannot hold the archive's declared contents."""
    free = shutil.disk_usage(dest).free
    if needed > free:
        raise DatasetError(
            f"{archive}: extracting needs {_gib(needed)} but {dest} has only {_gib(free)} free; "
            "nothing was extracted. Free some space or choose a dataset root on a larger disk"
        )


def safe_extract(
    archive: Path,
    dest: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> None:
    """Extract ``archive`` (any compression tarfile reads) into the existing folder ``dest``.

    Every member is checked before anything is written: only plain files and folders, no
    absolute paths, no ``..``, no links of any kind, at most ``max_members`` members and
    ``max_bytes`` of file contents, and no more than ``dest``'s free space. Extraction then
    goes through tarfile's ``"data"`` filter as a second line of defence. Raises
    :class:`UnsafeDataError` naming the archive and member, or :class:`DatasetError` for an
    unreadable archive or a full disk.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members, total = _checked_members(archive, tar, max_bytes, max_members)
            _check_free_space(archive, dest, total)
            try:
                tar.extractall(dest, members=members, filter="data")
            except tarfile.FilterError as exc:
                refused = getattr(exc, "tarinfo", None)
                raise UnsafeDataError(
                    f"{archive}: member {getattr(refused, 'name', '?')!r} refused by tarfile's "
                    f"data filter ({exc}); delete the archive and download it again"
                ) from exc
    except DatasetError:
        raise
    # What a truncated or garbled tar/gzip/bz2/xz stream raises; other OSErrors (disk full,
    # permissions) are not about the archive and propagate unchanged.
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as exc:
        raise DatasetError(
            f"{archive}: cannot be read as a tar archive ({type(exc).__name__}: {exc}); "
            "it is truncated or corrupt, delete it and download again"
        ) from exc
