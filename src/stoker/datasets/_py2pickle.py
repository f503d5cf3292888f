"""Write pickles the way Python 2's cPickle wrote the official CIFAR batches (protocol 2)."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["Py2Str", "dumps_py2"]


class Py2Str(bytes):
    """A Python 2 ``str``: loads as ``str`` under ``encoding="latin1"``, ``bytes`` under "bytes".

    Python 3's pickler cannot emit the old STRING opcodes, which is why the official CIFAR files
    need ``encoding=`` to load at all; writing them lets generated files behave exactly alike.
    """


_PROTO_2 = b"\x80\x02"
_STOP = b"."
_MARK = b"("
_EMPTY_DICT = b"}"
_EMPTY_LIST = b"]"
_SETITEMS = b"u"
_APPENDS = b"e"
_TUPLE = b"t"
_REDUCE = b"R"
_BUILD = b"b"
_NONE = b"N"
_NEWTRUE = b"\x88"
_NEWFALSE = b"\x89"
_BININT = b"J"
_SHORT_BINSTRING = b"U"
_BINSTRING = b"T"
_GLOBAL = b"c"


def _global(module: str, name: str) -> bytes:
    return _GLOBAL + module.encode() + b"\n" + name.encode() + b"\n"


def _string(raw: bytes) -> bytes:
    if len(raw) < 256:
        return _SHORT_BINSTRING + bytes([len(raw)]) + raw
    return _BINSTRING + struct.pack("<i", len(raw)) + raw


def _tuple(items: Sequence[Any]) -> bytes:
    return _MARK + b"".join(_emit(item) for item in items) + _TUPLE


def _array(array: np.ndarray) -> bytes:
    if array.dtype != np.uint8:
        raise TypeError(f"only uint8 arrays are written, got {array.dtype}")
    array = np.ascontiguousarray(array)
    # numpy's own reduce of a uint8 array under Python 2, spelled out opcode by opcode.
    dtype = (
        _global("numpy", "dtype")
        + _tuple([Py2Str(b"u1"), 0, 1])
        + _REDUCE
        + _tuple([3, Py2Str(b"|"), None, None, None, -1, -1, 0])
        + _BUILD
    )
    return (
        _global("numpy.core.multiarray", "_reconstruct")
        + _MARK
        + _global("numpy", "ndarray")
        + _tuple([0])
        + _string(b"b")
        + _TUPLE
        + _REDUCE
        + _MARK
        + _emit(1)
        + _tuple(list(array.shape))
        + dtype
        + _NEWFALSE
        + _string(array.tobytes())
        + _TUPLE
        + _BUILD
    )


def _emit(value: Any) -> bytes:
    if value is None:
        return _NONE
    if value is True or value is False:
        return _NEWTRUE if value else _NEWFALSE
    if isinstance(value, int | np.integer):
        return _BININT + struct.pack("<i", int(value))
    if isinstance(value, Py2Str):
        return _string(bytes(value))
    if isinstance(value, str):
        return _string(value.encode("latin1"))
    if isinstance(value, np.ndarray):
        return _array(value)
    if isinstance(value, tuple):
        return _tuple(value)
    if isinstance(value, list):
        return _EMPTY_LIST + _MARK + b"".join(_emit(v) for v in value) + _APPENDS
    if isinstance(value, Mapping):
        body = b"".join(_emit(k) + _emit(v) for k, v in value.items())
        return _EMPTY_DICT + _MARK + body + _SETITEMS
    raise TypeError(f"cannot write {type(value).__name__} as a Python 2 pickle")


def dumps_py2(value: Any) -> bytes:
    """``value`` (dicts, lists, tuples, ints, str/bytes as py2 strings, uint8 arrays) pickled."""
    return _PROTO_2 + _emit(value) + _STOP
