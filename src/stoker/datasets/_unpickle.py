"""Load untrusted pickles (the CIFAR batches) as data, never letting them drive numpy.

Three layers, each enough to stop what the others might miss:

1. :func:`~stoker.datasets._pickle_scan.scan` checks the opcode stream before anything is
   built (admitted opcodes only, bounded nesting, size and opcode count).
2. The unpickler resolves the few globals a CIFAR file names to stand-ins defined here, never
   to numpy's own ``dtype``, ``ndarray``, ``_reconstruct`` or ``scalar``: those accept states
   (an object dtype with its flags cleared, an array over a foreign buffer with zero strides)
   that make numpy read raw file bytes as pointers or allocate far more than the file holds.
   The stand-ins accept exactly the states numpy writes for plain numeric arrays, and build
   each array themselves from bytes of the right length.
3. The stand-ins count every byte they allocate against a budget of twice the file's size.

The result has the stand-ins replaced by the real arrays, dtypes and scalars.
"""

from __future__ import annotations

import io
import math
import pickle
import reprlib
from pathlib import Path
from typing import Any, Literal

import numpy as np

from stoker.datasets._pickle_scan import MAX_DEPTH, scan
from stoker.errors import DatasetError, StokerError, UnsafeDataError

__all__ = ["MAX_FILE_BYTES", "brief", "load_pickle"]

# The largest official file (CIFAR-100 train) is ~155 MB; a Python 3 re-save of it under
# protocol 2 writes the pixels as UTF-8 text, ~1.5 times that.
MAX_FILE_BYTES = 512 * 2**20

# The dtypes numpy pickles for bool, integer and float arrays: (kind, size in bytes).
_NUMERIC_CODES = frozenset({"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"})
# How Python 3 names latin-1 when it pickles bytes (_codecs.encode(text, "latin1")), and the
# other spellings that codec goes by.
_LATIN1_NAMES = frozenset({"latin1", "latin_1", "iso_8859_1", "iso8859_1", "l1"})


class _BriefRepr(reprlib.Repr):
    """reprlib's shortened repr, also for bytes (which reprlib would repr in full first)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring = self.maxother = 40
        self.maxlist = self.maxdict = 4
        self.maxtuple = 8  # a dtype's state, whole

    def repr_bytes(self, value: bytes, level: int) -> str:
        shown = repr(value[: self.maxstring])
        return shown if len(value) <= self.maxstring else shown + "..."


_BRIEF = _BriefRepr()


def brief(value: object) -> str:
    """A repr of at most a few dozen characters, for untrusted values in error messages."""
    return _BRIEF.repr(value)


class _Context:
    """What every stand-in of one load shares: the file's path and the allocation budget."""

    __slots__ = ("budget", "path")

    def __init__(self, path: Path, file_bytes: int):
        self.path = path
        # Each byte of a real file's arrays and strings appears in it once, and is copied at
        # most twice (text → bytes → array), so twice the size bounds what an honest file
        # needs; a pickle reusing one memoized buffer for many arrays would exceed it.
        self.budget = 2 * file_bytes

    def refuse(self, what: str) -> UnsafeDataError:
        return UnsafeDataError(
            f"{self.path}: {what}; refused. Do not use this file; download it again from its "
            "official source"
        )

    def damaged(self, what: str) -> DatasetError:
        return DatasetError(
            f"{self.path}: {what}; the file is damaged, delete it and download the dataset again"
        )

    def charge(self, nbytes: int) -> None:
        self.budget -= nbytes
        if self.budget < 0:
            raise self.refuse(
                "the pickle builds more array and string data than twice the file's size, as "
                "only a pickle reusing one buffer to exhaust memory does"
            )

    def as_bytes(self, raw: object, what: str) -> bytes:
        """``raw`` as bytes: Python 2 strings arrive as latin-1 ``str`` (charged), bytes as is."""
        if isinstance(raw, bytes):
            return raw
        if isinstance(raw, str):
            self.charge(len(raw))
            try:
                return raw.encode("latin-1")
            except UnicodeEncodeError:
                raise self.damaged(f"{what} holds text that is not latin-1") from None
        raise self.damaged(f"{what} is a {type(raw).__name__}, expected bytes")


class _StandIn:
    """Base of every object the unpickler can reach: BUILD on it is refused, it has no __dict__.

    Without ``__setstate__`` and ``__slots__``, BUILD would set arbitrary attributes on it
    (its methods included) and the next call would run them.
    """

    __slots__ = ("_ctx",)
    _name = "a stand-in"

    def __init__(self, ctx: _Context):
        self._ctx = ctx

    def __setstate__(self, state: object) -> None:
        raise self._ctx.refuse(f"the pickle sets the state of {self._name}")


class _NdarraySentinel(_StandIn):
    """What ``numpy.ndarray`` resolves to: a marker for ``_reconstruct``, not the class."""

    __slots__ = ()
    _name = "numpy.ndarray"

    def __call__(self, *args: object) -> object:
        raise self._ctx.refuse(
            "the pickle calls numpy.ndarray(...) directly, which can alias memory and repeat "
            "one buffer endlessly; real files rebuild arrays through _reconstruct"
        )


class _DtypeProxy(_StandIn):
    """A plain numeric numpy dtype, named and built from the states numpy pickles for it."""

    __slots__ = ("_built", "dtype")
    _name = "a numpy.dtype"

    def __init__(self, ctx: _Context, code: str):
        super().__init__(ctx)
        self.dtype = np.dtype(code)
        self._built = False

    def __setstate__(self, state: object) -> None:
        """Accept only ``(3, byteorder, None, None, None, -1, -1, 0)``, numpy's own state."""
        if self._built:
            raise self._ctx.refuse(f"the pickle sets the state of dtype {self.dtype} twice")
        self._built = True
        order = state[1] if isinstance(state, tuple) and len(state) == 8 else None
        orders = ("|",) if self.dtype.itemsize == 1 else ("<", ">")
        standard = (3, order, None, None, None, -1, -1, 0)
        if order not in orders or not _same(state, standard):
            raise self._ctx.refuse(
                f"dtype {self.dtype} has the state {brief(state)}, not numpy's "
                f"(3, {'|' if len(orders) == 1 else '< or >'}, None, None, None, -1, -1, 0)"
            )
        if order != "|":
            self.dtype = self.dtype.newbyteorder("<" if order == "<" else ">")


class _DtypeFactory(_StandIn):
    """What ``numpy.dtype`` resolves to: ``dtype(code, False, True)`` for numeric codes only."""

    __slots__ = ()
    _name = "numpy.dtype"

    def __call__(self, *args: object) -> _DtypeProxy:
        code = args[0] if len(args) == 3 else None
        if not isinstance(code, str) or code not in _NUMERIC_CODES:
            raise self._ctx.refuse(
                f"the pickle asks for numpy.dtype{brief(args)}; only bool, integer and "
                "float dtypes are admitted (object, void, string and structured ones let a "
                "pickle make numpy misread the file's bytes)"
            )
        if not (_same(args[1], 0) and _same(args[2], 1)):
            raise self._ctx.refuse(f"numpy.dtype{brief(args)} is not how numpy pickles")
        return _DtypeProxy(self._ctx, code)


class _ArrayProxy(_StandIn):
    """An array as ``_reconstruct`` starts it; BUILD with numpy's state fills in ``array``."""

    __slots__ = ("array",)
    _name = "a numpy array"

    def __init__(self, ctx: _Context):
        super().__init__(ctx)
        self.array: np.ndarray | None = None

    def __setstate__(self, state: object) -> None:
        """``(1, shape, dtype, is_fortran, rawdata)``, rawdata exactly the array's bytes."""
        if self.array is not None:
            raise self._ctx.refuse("the pickle sets the state of one numpy array twice")
        if not isinstance(state, tuple) or len(state) != 5 or not _same(state[0], 1):
            raise self._ctx.refuse(
                f"a numpy array has the state {brief(state)}, expected numpy's "
                "(1, shape, dtype, is_fortran, rawdata)"
            )
        _, shape, dtype, is_fortran, raw = state
        shape = self._shape(shape)
        if not isinstance(dtype, _DtypeProxy) or not isinstance(is_fortran, bool):
            raise self._ctx.refuse(
                f"a numpy array's dtype is {brief(dtype)} and is_fortran "
                f"{brief(is_fortran)}, expected a numpy.dtype and a bool"
            )
        self.array = self._build(shape, dtype.dtype, is_fortran, raw)

    def _shape(self, shape: object) -> tuple[int, ...]:
        if not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape):
            raise self._ctx.damaged(
                f"a numpy array's shape is {brief(shape)}, expected non-negative ints"
            )
        return shape

    def _build(self, shape: tuple[int, ...], dtype: np.dtype, fortran: bool, raw: object) -> Any:
        needed = math.prod(shape) * dtype.itemsize
        if not isinstance(raw, str | bytes) or len(raw) != needed:
            got = f"{len(raw)} bytes" if isinstance(raw, str | bytes) else type(raw).__name__
            raise self._ctx.damaged(
                f"a {dtype} array of shape {shape} needs {needed} bytes of data, the pickle "
                f"gives {got}"
            )
        data = self._ctx.as_bytes(raw, "an array's data")
        self._ctx.charge(needed)
        order: Literal["C", "F"] = "F" if fortran else "C"
        view = np.frombuffer(data, dtype=dtype).reshape(shape, order=order)
        # A copy, so the array is writable and owns its memory rather than the pickle's bytes;
        # in native byte order, as numpy's own unpickling swaps big-endian data on load.
        return view.astype(dtype.newbyteorder("="), order=order)

    def result(self) -> np.ndarray:
        if self.array is None:
            raise self._ctx.damaged("a numpy array was started but never given its data")
        return self.array


class _ReconstructFactory(_StandIn):
    """What ``_reconstruct`` resolves to: ``_reconstruct(ndarray, (0,), b'b')`` and no other."""

    __slots__ = ()
    _name = "numpy's _reconstruct"

    def __call__(self, *args: object) -> _ArrayProxy:
        if (
            len(args) != 3
            or not isinstance(args[0], _NdarraySentinel)
            or not _same(args[1], (0,))
            or args[2] not in ("b", b"b")
        ):
            raise self._ctx.refuse(
                f"the pickle calls _reconstruct{brief(args)}; only numpy's own "
                "_reconstruct(numpy.ndarray, (0,), b'b') is admitted"
            )
        return _ArrayProxy(self._ctx)


class _ScalarProxy(_StandIn):
    """A numpy scalar, kept wrapped until the load is done."""

    __slots__ = ("value",)
    _name = "a numpy scalar"

    def __init__(self, ctx: _Context, value: np.generic):
        super().__init__(ctx)
        self.value = value


class _ScalarFactory(_StandIn):
    """What numpy's ``scalar`` resolves to: ``scalar(dtype, rawbytes)`` for numeric dtypes."""

    __slots__ = ()
    _name = "numpy's scalar"

    def __call__(self, *args: object) -> _ScalarProxy:
        dtype = args[0] if len(args) == 2 else None
        if not isinstance(dtype, _DtypeProxy):
            raise self._ctx.refuse(
                f"the pickle calls numpy's scalar{brief(args)}; only scalar(dtype, "
                "bytes) with a numeric numpy.dtype is admitted"
            )
        raw = args[1]
        size = dtype.dtype.itemsize
        if not isinstance(raw, str | bytes) or len(raw) != size:
            raise self._ctx.damaged(
                f"a {dtype.dtype} scalar needs {size} bytes, the pickle gives {brief(raw)}"
            )
        data = self._ctx.as_bytes(raw, "a scalar's data")
        self._ctx.charge(size)
        return _ScalarProxy(self._ctx, np.frombuffer(data, dtype=dtype.dtype)[0])


class _EncodeFactory(_StandIn):
    """What ``_codecs.encode`` resolves to: ``encode(text, "latin1")``, how Python 3 pickles
    bytes under protocol 2. Other codecs are refused: the name picks which ``encodings``
    module gets imported, and some (punycode) take quadratic time."""

    __slots__ = ()
    _name = "_codecs.encode"

    def __call__(self, *args: object) -> bytes:
        text, codec = args if len(args) == 2 else (None, None)
        if not isinstance(text, str) or not isinstance(codec, str) or not _is_latin1(codec):
            raise self._ctx.refuse(
                f"the pickle calls _codecs.encode{brief(args)}; only encode(text, "
                "'latin1'), as Python pickles bytes, is admitted"
            )
        self._ctx.charge(len(text))
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            raise self._ctx.damaged(
                "a pickled bytes object holds text that is not latin-1"
            ) from None


class _BytesFactory(_StandIn):
    """What ``bytes`` resolves to: ``bytes()`` only, how Python 3 pickles ``b""`` under
    protocol 2 (e.g. the data of an empty array)."""

    __slots__ = ()
    _name = "bytes"

    def __call__(self, *args: object) -> bytes:
        if args:
            raise self._ctx.refuse(
                f"the pickle calls bytes{brief(args)}; only bytes(), as Python pickles "
                "b'', is admitted"
            )
        return b""


def _is_latin1(codec: str) -> bool:
    return codec.lower().replace("-", "_") in _LATIN1_NAMES


def _same(value: object, expected: object) -> bool:
    """``value == expected`` with matching types all the way down (so True is not 1, 1.0 not 1).

    numpy writes ``dtype(code, 0, 1)`` under Python 2 and ``dtype(code, False, True)`` under
    Python 3, so bool and int are interchangeable only where the expected value is an int 0/1
    and the value a bool.
    """
    if isinstance(expected, tuple):
        return (
            isinstance(value, tuple)
            and len(value) == len(expected)
            and all(_same(v, e) for v, e in zip(value, expected))
        )
    if type(expected) is int and type(value) is bool:
        return expected in (0, 1) and value == expected
    return type(value) is type(expected) and value == expected


def _stand_ins(ctx: _Context) -> dict[tuple[str, str], _StandIn]:
    """The globals a CIFAR pickle names, each resolved to a fresh stand-in for this load."""
    table: dict[tuple[str, str], _StandIn] = {
        ("numpy", "ndarray"): _NdarraySentinel(ctx),
        ("numpy", "dtype"): _DtypeFactory(ctx),
        # Python 3 writes bytes this way under protocol 2 (e.g. a re-saved CIFAR batch).
        ("_codecs", "encode"): _EncodeFactory(ctx),
        # ... and b"" as bytes(), under Python 2's name for the module unless fix_imports=False.
        ("__builtin__", "bytes"): _BytesFactory(ctx),
        ("builtins", "bytes"): _BytesFactory(ctx),
    }
    # numpy >= 2 writes numpy._core; the official files (and numpy 1.x) name numpy.core.
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[module, "_reconstruct"] = _ReconstructFactory(ctx)
        table[module, "scalar"] = _ScalarFactory(ctx)
    return table


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves globals from :func:`_stand_ins` only; never imports anything by name."""

    def __init__(self, file: Any, ctx: _Context):
        super().__init__(file, encoding="latin1")
        self._path = ctx.path
        self._globals = _stand_ins(ctx)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._globals[module, name]
        except KeyError:
            raise UnsafeDataError(
                f"{self._path}: the pickle names the global {module}.{name}, which a data file "
                f"has no need for; refused without running it (only "
                f"{', '.join(sorted(f'{m}.{n}' for m, n in self._globals))} are admitted). "
                "Do not use this file; download it again from its official source"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeDataError(
            f"{self._path}: the pickle uses a persistent id ({pid!r}); refused, data files "
            "have none"
        )


def _resolve(value: Any, ctx: _Context, seen: dict[int, tuple[Any, Any]], depth: int = 0) -> Any:
    """``value`` with every stand-in replaced by the array, dtype or scalar it stands for.

    Containers are changed in place (tuples rebuilt) and each visited once, so shared ones
    stay shared; the scan has bounded nesting and ruled out cycles, so recursion is shallow.
    """
    if depth > MAX_DEPTH + 1:  # unreachable after the scan; a guard, not a code path
        raise ctx.refuse(f"containers nest more than {MAX_DEPTH} deep")
    if isinstance(value, _StandIn):
        return _unwrap(value, ctx)
    if not isinstance(value, list | dict | tuple):
        return value
    if id(value) in seen:
        return seen[id(value)][1]
    # The original is kept alive alongside its result, so its id cannot be reused by another
    # object while the walk lasts. The scan ruled out a container reaching itself.
    seen[id(value)] = (value, value)
    seen[id(value)] = (value, _resolve_container(value, ctx, seen, depth))
    return seen[id(value)][1]


def _resolve_container(
    value: Any, ctx: _Context, seen: dict[int, tuple[Any, Any]], depth: int
) -> Any:
    if isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = _resolve(item, ctx, seen, depth + 1)
        return value
    if isinstance(value, tuple):
        items = tuple(_resolve(item, ctx, seen, depth + 1) for item in value)
        return value if all(a is b for a, b in zip(items, value)) else items
    pairs = [
        (_resolve(k, ctx, seen, depth + 1), _resolve(v, ctx, seen, depth + 1))
        for k, v in value.items()
    ]
    value.clear()
    value.update(pairs)
    return value


def _unwrap(value: _StandIn, ctx: _Context) -> Any:
    if isinstance(value, _ArrayProxy):
        return value.result()
    if isinstance(value, _DtypeProxy):
        return value.dtype
    if isinstance(value, _ScalarProxy):
        return value.value
    raise ctx.refuse(f"the pickle leaves {value._name} itself in the data, as no data file does")


def _read(path: Path) -> bytes:
    with open(path, "rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise UnsafeDataError(
            f"{path}: larger than {MAX_FILE_BYTES:,} bytes, far beyond any CIFAR batch; "
            "refused. Check that root points at the right dataset, or download it again"
        )
    return data


def load_pickle(path: Path) -> Any:
    """Unpickle ``path`` with Python 2 strings as latin-1 ``str`` (as torchvision does).

    numpy arrays of bool, integer and float dtypes come back as real, writable arrays that
    own their memory. Raises :class:`UnsafeDataError` for content a data file has no need
    for (other globals, other dtypes, deep nesting, more data built than the file holds) and
    :class:`DatasetError` when the file is truncated or otherwise not a readable pickle.
    """
    data = _read(path)
    # The bytes are read once: the scan and the unpickler see the same ones.
    scan(data, path)
    ctx = _Context(path, len(data))
    try:
        loaded = _RestrictedUnpickler(io.BytesIO(data), ctx).load()
        return _resolve(loaded, ctx, {})
    except StokerError:
        raise
    # A damaged pickle can fail in any opcode handler, with almost any exception type.
    except Exception as exc:
        raise DatasetError(
            f"{path}: not a readable pickle ({type(exc).__name__}: {exc}); the file is "
            "truncated or corrupt, delete it and download the dataset again"
        ) from exc
