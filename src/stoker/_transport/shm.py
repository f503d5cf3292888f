"""Shared-memory slots: files in /dev/shm that a worker writes batches into and the loader maps.

Ownership: a worker *creates* its slots (it is the first to know how big a batch is) and tells
the loader the name in the batch's message. The loader maps the slot and *unlinks the name at
once*: both processes keep their mappings, so the memory lives exactly as long as someone maps
it, and nothing is left in /dev/shm even if either process is later SIGKILLed. The only window
where a name exists is between creation and the loader's first map; names carry the loader's pid
and a per-pool token so that leftovers from that window are swept by :func:`unlink_leftovers`
(at shutdown) or, when the loader itself was killed, by the next loader
(:func:`stoker._transport.ring.sweep_orphans`).
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import secrets
from pathlib import Path

from stoker.errors import SharedMemoryError

_SHM_DIR = Path("/dev/shm")
_NAME_PREFIX = "stoker-"
_ALIGN_BYTES = 64  # cache-line alignment for every array in a slot
_SLOT_GRANULE_BYTES = 64 * 1024  # slot capacities are rounded up to this, so sizes repeat
# Map slots with their page tables filled in one call: a fresh 3 MiB slot otherwise costs 768
# minor page faults in the worker and 768 more in the loader, on every new slot.
_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)


def available() -> bool:
    """True where slots can be made (Linux with a writable /dev/shm)."""
    return _SHM_DIR.is_dir() and os.access(_SHM_DIR, os.W_OK)


def new_pool_token() -> str:
    """A name prefix unique to one worker pool of this process."""
    return f"{_NAME_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-"


def aligned(nbytes: int) -> int:
    return -(-nbytes // _ALIGN_BYTES) * _ALIGN_BYTES


def slot_capacity(nbytes: int) -> int:
    return max(_SLOT_GRANULE_BYTES, -(-nbytes // _SLOT_GRANULE_BYTES) * _SLOT_GRANULE_BYTES)


def free_bytes() -> int:
    stats = os.statvfs(_SHM_DIR)
    return stats.f_bavail * stats.f_frsize


def _too_small(needed: int, what: str) -> SharedMemoryError:
    free_mib = free_bytes() / 2**20
    return SharedMemoryError(
        f"/dev/shm has {free_mib:.0f} MiB free, but {what} needs {needed / 2**20:.0f} MiB of "
        "shared memory for batches in flight. Raise it (Docker: `docker run --shm-size=2g`, "
        "Kubernetes: an emptyDir with medium: Memory on /dev/shm), or lower num_workers, "
        "prefetch_factor or batch_size."
    )


def check_room(needed: int, what: str) -> None:
    """Fail now, with advice, if /dev/shm cannot hold ``needed`` more bytes."""
    if free_bytes() < needed:
        raise _too_small(needed, what)


def create(name: str, capacity: int) -> mmap.mmap:
    """Create slot ``name`` with ``capacity`` bytes reserved up front, and map it.

    The bytes are reserved with posix_fallocate, so a full /dev/shm fails here with a clear
    error rather than with a SIGBUS at some later write.
    """
    fd = os.open(_SHM_DIR / name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        try:
            os.posix_fallocate(fd, 0, capacity)
        except OSError as error:
            os.unlink(_SHM_DIR / name)
            if error.errno in (errno.ENOSPC, errno.ENOMEM):
                raise _too_small(capacity, f"a batch slot of {capacity} bytes") from error
            raise
        return mmap.mmap(fd, capacity, flags=_MAP_FLAGS)
    finally:
        os.close(fd)


def open_and_unlink(name: str, capacity: int) -> mmap.mmap:
    """Map a slot a worker created, then remove its name (the mapping keeps the memory)."""
    path = _SHM_DIR / name
    fd = os.open(path, os.O_RDWR)
    try:
        return mmap.mmap(fd, capacity, flags=_MAP_FLAGS)
    finally:
        os.close(fd)
        unlink(name)


def unlink(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_SHM_DIR / name)


def list_names() -> list[str]:
    """Every stoker slot name in /dev/shm, of any process."""
    try:
        return [entry.name for entry in _SHM_DIR.glob(f"{_NAME_PREFIX}*")]
    except OSError:
        return []


def unlink_leftovers(prefix: str) -> list[str]:
    """Remove every slot name starting with ``prefix``; returns what was removed."""
    removed = [name for name in list_names() if name.startswith(prefix)]
    for name in removed:
        unlink(name)
    return removed
