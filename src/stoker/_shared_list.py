"""SharedList: a read-only list in flat buffers, which forked workers read without copying it.

A Python list of two million paths is two million objects, each with a reference count that
every read writes; after ``fork`` each write copies the page it lands on, so every worker ends
up with a private copy of the whole list (torch issue #13246). A ``SharedList`` holds the same
items column by column — per field one numpy array of numbers, or one bytes blob plus a numpy
array of offsets —
and builds a fresh Python object on each read: the parent's pages are only ever read.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, SupportsIndex, overload

import numpy as np
import numpy.typing as npt

__all__ = ["SharedList"]

_SCALARS: tuple[type, ...] = (str, bytes, int, float, bool)
_INT_DTYPES = (np.int8, np.int16, np.int32, np.int64)
_ITER_CHUNK = 65_536
"""Items decoded per step when iterating: big enough that numpy's per-call cost vanishes."""

# str items go through UTF-8 with surrogatepass, so strings holding lone surrogates (the
# undecodable bytes of file names, as os.fsdecode gives them) come back exactly.
_ENCODING, _ERRORS = "utf-8", "surrogatepass"


def _type_name(value: object) -> str:
    kind = type(value)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"


def _unsupported(index: int, field: int | None, value: object) -> TypeError:
    where = f"item {index}" if field is None else f"item {index}, field {field},"
    return TypeError(
        f"SharedList cannot hold {where} a {_type_name(value)} ({reprlib.repr(value)}): items "
        "must be str, bytes, int, float or bool, or tuples of them. Convert it first (a Path "
        "with str(), a numpy scalar with .item(), a list with tuple()), or keep such data in a "
        "numpy array"
    )


def _signature(item: object) -> str:
    if type(item) is tuple:
        return "(" + ", ".join(_type_name(v) for v in item) + ")"
    return _type_name(item)


def _mismatch(first: object, index: int, item: object) -> TypeError:
    return TypeError(
        f"SharedList needs every item to have the types of item 0, {_signature(first)}, but "
        f"item {index} is {_signature(item)} ({reprlib.repr(item)}); convert the items to one "
        "type (e.g. every label to int, every path to str)"
    )


class _Column:
    """One field of every item: numbers in one array, or text as offsets into one blob."""

    __slots__ = ("_blob", "_get", "_offsets", "_values", "kind")

    def __init__(
        self,
        kind: type,
        values: npt.NDArray[Any] | None = None,
        offsets: npt.NDArray[Any] | None = None,
        blob: bytes | None = None,
    ):
        self.kind = kind
        self._values, self._offsets, self._blob = values, offsets, blob
        for array in (values, offsets):
            if array is not None:
                array.flags.writeable = False
        # A memoryview indexes to a plain Python int/float/bool faster than numpy does (37 vs
        # 130 ns for int(array[i]) here), and decoding a slice of the bytes blob beats decoding
        # a memoryview slice (360 vs 510 ns per 50-byte path). Neither writes to shared pages:
        # only the headers of the one memoryview and the one bytes object are touched.
        if values is not None:
            self._get: Any = memoryview(values).__getitem__  # type: ignore[arg-type]
        else:
            starts, data = memoryview(offsets), blob  # type: ignore[arg-type]
            if kind is str:
                self._get = lambda i: data[starts[i] : starts[i + 1]].decode(_ENCODING, _ERRORS)  # type: ignore[index]
            else:
                self._get = lambda i: data[starts[i] : starts[i + 1]]  # type: ignore[index]

    @classmethod
    def build(cls, kind: type, column: Sequence[Any]) -> _Column:
        """The column holding ``column``, whose items are all of type ``kind``."""
        if kind is str or kind is bytes:
            joined = "".join(column) if kind is str else None
            if joined is not None and joined.isascii():  # one encode, lengths from len()
                blob_bytes, lengths = joined.encode("ascii"), map(len, column)
            else:
                encoded = (
                    column if kind is bytes else [s.encode(_ENCODING, _ERRORS) for s in column]
                )
                blob_bytes, lengths = b"".join(encoded), map(len, encoded)
            offsets = np.zeros(len(column) + 1, dtype=np.int64)
            np.cumsum(np.fromiter(lengths, np.int64, len(column)), out=offsets[1:])
            offset_type = np.uint32 if len(blob_bytes) < 2**32 else np.uint64
            return cls(kind, offsets=offsets.astype(offset_type), blob=blob_bytes)
        if kind is int:
            return cls(kind, values=_smallest_ints(column))
        return cls(kind, values=np.fromiter(column, bool if kind is bool else np.float64))

    def get(self, index: int) -> Any:
        return self._get(index)

    def chunk(self, start: int, stop: int) -> list[Any]:
        """Items ``start:stop`` decoded at once."""
        if self._values is not None:
            return self._values[start:stop].tolist()  # type: ignore[no-any-return]
        return [self._get(i) for i in range(start, stop)]

    def take(self, positions: npt.NDArray[np.int64]) -> _Column:
        """A new column of the items at ``positions`` (valid, non-negative)."""
        if self._values is not None:
            return _Column(self.kind, values=self._values[positions])
        starts = self._offsets.astype(np.int64)  # type: ignore[union-attr]
        lengths = starts[positions + 1] - starts[positions]
        offsets = np.zeros(len(positions) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        gather = np.repeat(starts[positions] - offsets[:-1], lengths) + np.arange(offsets[-1])
        blob = np.frombuffer(self._blob, dtype=np.uint8)[gather].tobytes()  # type: ignore[arg-type]
        return _Column(self.kind, offsets=offsets.astype(self._offsets.dtype), blob=blob)  # type: ignore[union-attr]

    def arrays(self) -> tuple[Any, ...]:
        if self._values is not None:
            return (self._values,)
        return (self._offsets, self._blob)  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        return sum(len(a) if isinstance(a, bytes) else a.nbytes for a in self.arrays())

    def same_as(self, other: _Column) -> bool:
        if self.kind is not other.kind:
            return False
        if self._values is not None:
            return bool(np.array_equal(self._values, other._values))  # type: ignore[arg-type]
        same_offsets = np.array_equal(self._offsets, other._offsets)  # type: ignore[arg-type]
        return bool(self._blob == other._blob and same_offsets)


def _smallest_ints(column: Sequence[int]) -> npt.NDArray[np.signedinteger[Any]]:
    """``column`` in the narrowest signed dtype holding all of it; OverflowError beyond int64."""
    try:
        values = np.fromiter(column, np.int64, len(column))
    except OverflowError:
        index = next(i for i, v in enumerate(column) if not -(2**63) <= v < 2**63)
        raise OverflowError(
            f"SharedList item {index} is {column[index]}, outside int64 (±2**63), the widest "
            "integer it stores; keep such numbers as str, or in a Python list"
        ) from None
    if not len(values):
        return values
    low, high = int(values.min()), int(values.max())
    dtype = next(t for t in _INT_DTYPES if np.iinfo(t).min <= low and high <= np.iinfo(t).max)
    return values.astype(dtype)


def _columns_of(items: Sequence[Any]) -> tuple[bool, list[_Column]]:
    """Whether items are tuples, and their fields as columns; TypeError at the first bad item."""
    first = items[0]
    if type(first) is not tuple:
        if type(first) not in _SCALARS:
            raise _unsupported(0, None, first)
        kind = type(first)
        if set(map(type, items)) != {kind}:
            index = next(i for i, item in enumerate(items) if type(item) is not kind)
            if type(items[index]) not in _SCALARS and type(items[index]) is not tuple:
                raise _unsupported(index, None, items[index])
            raise _mismatch(first, index, items[index])
        return False, [_Column.build(kind, items)]
    width = len(first)
    if set(map(type, items)) != {tuple} or set(map(len, items)) != {width}:
        index = next(
            i for i, item in enumerate(items) if type(item) is not tuple or len(item) != width
        )
        if type(items[index]) not in _SCALARS and type(items[index]) is not tuple:
            raise _unsupported(index, None, items[index])
        raise _mismatch(first, index, items[index])
    fields = list(zip(*items)) if width else []
    columns = []
    for field, column in enumerate(fields):
        kind = type(column[0])
        if kind not in _SCALARS:
            raise _unsupported(0, field, column[0])
        if set(map(type, column)) != {kind}:
            index = next(i for i, value in enumerate(column) if type(value) is not kind)
            if type(column[index]) not in _SCALARS:
                raise _unsupported(index, field, column[index])
            raise _mismatch(first, index, items[index])
        columns.append(_Column.build(kind, column))
    return True, columns


def _rebuild(
    length: int, tuples: bool, kinds: tuple[type, ...], arrays: tuple[Any, ...]
) -> SharedList:
    columns, arrays_left = [], list(arrays)
    for kind in kinds:
        if kind is str or kind is bytes:
            offsets, blob = arrays_left.pop(0), arrays_left.pop(0)
            columns.append(_Column(kind, offsets=offsets, blob=blob))
        else:
            columns.append(_Column(kind, values=arrays_left.pop(0)))
    return SharedList._from_columns(length, tuples, columns)


class SharedList(Sequence[Any]):
    """A read-only list of str, bytes, int, float, bool — or tuples of them — in numpy buffers.

    Use it for a dataset's per-sample metadata (file paths, ``(path, label)`` pairs, labels):
    reading an item touches no Python object shared with the parent process, so forked
    workers keep sharing its pages instead of each copying it. It behaves as the list it was
    built from — ``len``, indexing, slicing (a new ``SharedList``), iteration, ``in``,
    ``index``, and ``==`` with that list — and pickles as its raw buffers (for ``spawn``
    workers). Every item must have the types of the first: all ``str``, or all
    ``(str, int)``, ...; anything else raises a ``TypeError`` naming the first bad item.
    Items come back as new objects of the stored types (a float NaN is a NaN, not the same
    object, so it compares unequal as NaN always does).
    """

    __slots__ = ("_columns", "_getters", "_length", "_tuples")

    _length: int
    _tuples: bool
    _columns: list[_Column]

    def __init__(self, items: Iterable[Any] = ()):
        if isinstance(items, SharedList):
            self._set(items._length, items._tuples, items._columns)
            return
        items = items if isinstance(items, Sequence) and not isinstance(items, str) else list(items)
        if not items:
            self._set(0, False, [])
            return
        tuples, columns = _columns_of(items)
        self._set(len(items), tuples, columns)

    @classmethod
    def _from_columns(cls, length: int, tuples: bool, columns: list[_Column]) -> SharedList:
        new = cls.__new__(cls)
        new._set(length, tuples, columns)
        return new

    def _set(self, length: int, tuples: bool, columns: list[_Column]) -> None:
        self._length, self._tuples, self._columns = length, tuples, columns
        self._getters = [column.get for column in columns]

    @property
    def nbytes(self) -> int:
        """Bytes held in the buffers: what the list costs to keep, and to pickle."""
        return sum(column.nbytes for column in self._columns)

    @property
    def field_types(self) -> tuple[type, ...]:
        """The type of each tuple field, or ``(type,)`` for plain items; ``()`` when empty."""
        return tuple(column.kind for column in self._columns)

    def __len__(self) -> int:
        return self._length

    def _item(self, i: int) -> Any:
        if self._tuples:
            return tuple([get(i) for get in self._getters])
        return self._getters[0](i)

    @overload
    def __getitem__(self, index: SupportsIndex) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> SharedList: ...
    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._length)
            return self._take(np.arange(start, stop, step, dtype=np.int64))
        try:
            i = index.__index__()
        except AttributeError:
            raise TypeError(
                f"SharedList indices must be integers or slices, not {_type_name(index)}"
            ) from None
        if i < 0:
            i += self._length
        if not 0 <= i < self._length:
            raise IndexError(f"SharedList index {index} is out of range for length {self._length}")
        return self._item(i)

    def take(self, positions: Sequence[int]) -> list[Any]:
        """The items at ``positions`` (negative ones count from the end), gathered at once."""
        where = np.asarray(positions, dtype=np.int64).reshape(-1)
        bad = (where < -self._length) | (where >= self._length)
        if bad.any():
            index = int(where[np.argmax(bad)])
            raise IndexError(f"SharedList index {index} is out of range for length {self._length}")
        where = np.where(where < 0, where + self._length, where)
        if not len(where):
            return []
        if self._tuples or self._columns[0]._values is None:
            return [self._item(int(i)) for i in where]
        return self._columns[0]._values[where].tolist()  # type: ignore[index, no-any-return]

    def _take(self, positions: npt.NDArray[np.int64]) -> SharedList:
        columns = [column.take(positions) for column in self._columns]
        return SharedList._from_columns(len(positions), self._tuples, columns)

    def __iter__(self) -> Iterator[Any]:
        if self._tuples and not self._columns:  # items are (), which have no fields to zip
            yield from ((),) * self._length
            return
        for start in range(0, self._length, _ITER_CHUNK):
            stop = min(start + _ITER_CHUNK, self._length)
            chunks = [column.chunk(start, stop) for column in self._columns]
            yield from zip(*chunks) if self._tuples else chunks[0]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SharedList):
            if len(other) != self._length:
                return False
            if self._tuples == other._tuples and len(self._columns) == len(other._columns):
                pairs = zip(self._columns, other._columns, strict=True)
                if all(mine.kind is theirs.kind for mine, theirs in pairs):
                    return all(
                        m.same_as(t) for m, t in zip(self._columns, other._columns, strict=True)
                    )
            return all(a == b for a, b in zip(self, other, strict=True))  # 1 == 1.0, as in lists
        if isinstance(other, list):
            return len(other) == self._length and all(
                a == b for a, b in zip(self, other, strict=True)
            )
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a list, so unhashable like one

    def __reduce__(self) -> tuple[Any, ...]:
        arrays = tuple(array for column in self._columns for array in column.arrays())
        return (_rebuild, (self._length, self._tuples, self.field_types, arrays))

    def __repr__(self) -> str:
        kinds = ", ".join(t.__name__ for t in self.field_types)
        shape = f"({kinds})" if self._tuples else kinds or "nothing"
        head = ", ".join(repr(self._item(i)) for i in range(min(3, self._length)))
        more = ", ..." if self._length > 3 else ""
        return (
            f"SharedList({self._length:,} items of {shape}, {self.nbytes:,} bytes: [{head}{more}])"
        )
