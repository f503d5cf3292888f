"""Hostile CIFAR pickles are refused with an error naming the file; real ones load exactly.

Each hostile pickle here is assembled opcode by opcode from the security review's
reproducers. Those that crashed the interpreter before the fix are loaded in a child process,
so a regression kills the child, not the test run.
"""

from __future__ import annotations

import os
import pickle
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stoker
from stoker.datasets import CIFAR10, CIFAR100, _pickle_scan, _unpickle, testdata
from stoker.datasets._unpickle import load_pickle
from stoker.errors import DatasetError, UnsafeDataError

# --- a tiny pickle assembler (protocol 2 opcodes, as cPickle wrote the official files) ------


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def pystr(raw: bytes) -> bytes:
    """A Python 2 str (BINSTRING): loads as latin-1 text."""
    return b"T" + struct.pack("<i", len(raw)) + raw


def pybytes(raw: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(raw)) + raw


def pyint(value: int) -> bytes:
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    encoded = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(encoded)]) + encoded  # LONG1


def tup(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def call(func: bytes, *args: bytes) -> bytes:
    return func + tup(*args) + b"R"


def build(obj: bytes, state: bytes) -> bytes:
    return obj + state + b"b"


def pydict(*pairs: tuple[bytes, bytes]) -> bytes:
    return b"}(" + b"".join(k + v for k, v in pairs) + b"u"


def pylist(*items: bytes) -> bytes:
    return b"](" + b"".join(items) + b"e"


def whole(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


NONE, FALSE, TRUE = b"N", b"\x89", b"\x88"


def dtype(code: str, state: bytes | None = None, order: str = "|", flags: int = 0) -> bytes:
    """numpy.dtype(code, False, True) and, unless ``state`` says otherwise, numpy's BUILD."""
    made = call(glob("numpy", "dtype"), pystr(code.encode()), FALSE, TRUE)
    if state is None:
        state = tup(
            pyint(3), pystr(order.encode()), NONE, NONE, NONE, pyint(-1), pyint(-1), pyint(flags)
        )
    return build(made, state)


def reconstruct() -> bytes:
    ndarray = glob("numpy", "ndarray")
    return call(glob("numpy.core.multiarray", "_reconstruct"), ndarray, tup(pyint(0)), pystr(b"b"))


def array(
    shape: tuple[int, ...], raw: bytes, dtype_ops: bytes | None = None, fortran: bool = False
) -> bytes:
    """An array exactly as numpy pickles one: _reconstruct, then BUILD with its state."""
    state = tup(
        pyint(1),
        tup(*(pyint(n) for n in shape)),
        dtype("u1") if dtype_ops is None else dtype_ops,
        TRUE if fortran else FALSE,
        pystr(raw),
    )
    return build(reconstruct(), state)


def batch(data: bytes, labels: bytes) -> bytes:
    return whole(pydict((pystr(b"data"), data), (pystr(b"labels"), labels)))


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def refused(path: Path, error: type[Exception] = UnsafeDataError, match: str | None = None) -> str:
    """Load ``path`` and return the error's message, checked to name the file."""
    with pytest.raises(error, match=match) as caught:
        load_pickle(path)
    message = str(caught.value)
    assert str(path) in message, message
    return message


# --- the crashers, loaded in one child process -------------------------------------------

_DEEP = 300_000
_OBJECT_BYTES = b"\x41" * 8  # read as a PyObject* if numpy is fooled into an object dtype

CRASHERS: dict[str, tuple[bytes, str]] = {
    # dtype('O') whose BUILD clears its flags, so numpy forgets it holds references; an array
    # or scalar over attacker bytes then dereferences them.
    "object_dtype_ndarray": (
        batch(
            array((1, 3072), b"\0" * 3072),
            call(glob("numpy", "ndarray"), tup(pyint(1)), dtype("O", flags=0), pybytes(b"A" * 8)),
        ),
        "numpy.dtype('O'",
    ),
    "object_dtype_reconstruct": (
        whole(array((1,), _OBJECT_BYTES, dtype("O8", flags=0))),
        "numpy.dtype('O8'",
    ),
    "object_dtype_scalar": (
        whole(
            call(glob("numpy.core.multiarray", "scalar"), dtype("O", flags=0), pystr(_OBJECT_BYTES))
        ),
        "numpy.dtype('O'",
    ),
    # A numeric dtype given the object flags (63) by BUILD: the same confusion the other way.
    "object_flags_on_uint64": (
        whole(array((1,), _OBJECT_BYTES, dtype("u8", order="<", flags=63))),
        "not numpy's",
    ),
    # No globals at all: a tuple nested 300k deep, hashed as a dict key, recursed in C.
    "deep_tuple_key": (whole(b"}" + NONE + b"\x85" * _DEEP + NONE + b"s"), "nest more than 32"),
    "deep_list": (whole(b"]" * _DEEP + b"a" * (_DEEP - 1)), "nest more than 32"),
}

# Only _unpickle, _pickle_scan and errors are needed: stub the two packages so the child skips
# stoker's (and torch's) import time and stays fast.
_CHILD = """
import pathlib, sys, types
src = pathlib.Path(sys.argv[1])
for name, folder in (("stoker", src / "stoker"), ("stoker.datasets", src / "stoker" / "datasets")):
    package = types.ModuleType(name)
    package.__path__ = [str(folder)]
    sys.modules[name] = package
from stoker.datasets._unpickle import load_pickle
for arg in sys.argv[2:]:
    path = pathlib.Path(arg)
    print(path.name, end="\\t", flush=True)
    try:
        load_pickle(path)
        print("LOADED", flush=True)
    except Exception as exc:
        print(type(exc).__name__, str(exc).replace("\\n", " "), sep="\\t", flush=True)
"""


@pytest.fixture(scope="module")
def crash_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str]:
    """Load every crasher in one child (one interpreter start for all): its code and output."""
    folder = tmp_path_factory.mktemp("crashers")
    paths = [write(folder, name, content) for name, (content, _) in CRASHERS.items()]
    src = Path(stoker.__file__).resolve().parents[1]
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(src), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )
    return child.returncode, child.stdout + child.stderr


@pytest.mark.parametrize("name", sorted(CRASHERS))
def test_crashers_are_refused_in_a_child_that_survives(
    crash_results: tuple[int, str], name: str
) -> None:
    returncode, output = crash_results
    assert returncode == 0, f"the child died (return code {returncode}):\n{output}"
    line = next(row for row in output.splitlines() if row.startswith(name + "\t"))
    _, error, message = line.split("\t", 2)
    assert error == "UnsafeDataError", line
    assert name in message and CRASHERS[name][1] in message, line


# --- refused in-process ------------------------------------------------------------------


def _encode(text: bytes, codec: bytes, times: int = 1) -> bytes:
    """A list holding ``_codecs.encode(text, codec)`` ``times`` times over one memoized text."""
    memoized = b"X" + struct.pack("<I", len(text)) + text + b"q\x00"  # BINUNICODE + BINPUT 0
    calls = (glob("_codecs", "encode") + b"(h\x00" + pystr(codec) + b"tR") * times
    return whole(b"](" + memoized + calls + b"e")


@pytest.mark.parametrize("codec", [b"punycode", b"utf-8", b"idna", b"hex", b"rot13", b"latin9"])
def test_codecs_other_than_latin1_are_refused(tmp_path: Path, codec: bytes) -> None:
    text = "".join(chr(0x100 + i) for i in range(4000)).encode()
    message = refused(write(tmp_path, "codec", _encode(text, codec, times=8)))
    assert repr(codec.decode()) in message and "'latin1'" in message


@pytest.mark.parametrize("codec", [b"latin1", b"latin-1", b"LATIN_1", b"iso-8859-1", b"L1"])
def test_latin1_in_any_spelling_loads(tmp_path: Path, codec: bytes) -> None:
    loaded = load_pickle(write(tmp_path, "codec", _encode("caf\xe9".encode(), codec, times=2)))
    assert loaded == ["caf\xe9", b"caf\xe9", b"caf\xe9"]


def test_bytes_is_admitted_only_for_empty_bytes(tmp_path: Path) -> None:
    empty = whole(pylist(call(glob("__builtin__", "bytes")), call(glob("builtins", "bytes"))))
    assert load_pickle(write(tmp_path, "empty", empty)) == [b"", b""]
    path = write(tmp_path, "sized", whole(call(glob("__builtin__", "bytes"), pyint(10**9))))
    assert "only bytes()" in refused(path)


def test_encoding_one_memoized_string_many_times_is_refused(tmp_path: Path) -> None:
    message = refused(write(tmp_path, "many", _encode(b"x" * 10_000, b"latin1", times=50)))
    assert "twice the file's size" in message


def test_strided_ndarray_call_is_refused(tmp_path: Path) -> None:
    """ndarray((N, 3072), u1, buffer, 0, strides=(0, 1)): 3 KB asking for ~117 MiB."""
    rows = 40_000
    data = call(
        glob("numpy", "ndarray"),
        tup(pyint(rows), pyint(3072)),
        dtype("u1"),
        pybytes(b"\x07" * 3072),
        pyint(0),
        tup(pyint(0), pyint(1)),
    )
    message = refused(write(tmp_path, "data_batch_1", batch(data, pylist())))
    assert "numpy.ndarray(...)" in message


def test_shape_larger_than_its_data_is_damaged(tmp_path: Path) -> None:
    path = write(tmp_path, "data_batch_1", whole(array((40_000, 3072), b"\x07" * 3072)))
    message = refused(path, DatasetError, match="needs 122880000 bytes")
    assert "gives 3072 bytes" in message


def test_one_buffer_reused_for_many_arrays_is_refused(tmp_path: Path) -> None:
    raw = pystr(b"\x07" * 30_000) + b"q\x00"  # memoized once, then fetched by each array
    first = build(reconstruct(), tup(pyint(1), tup(pyint(30_000)), dtype("u1"), FALSE, raw))
    again = build(reconstruct(), tup(pyint(1), tup(pyint(30_000)), dtype("u1"), FALSE, b"h\x00"))
    path = write(tmp_path, "reuse", whole(pylist(first, *[again] * 20)))
    assert "twice the file's size" in refused(path)


@pytest.mark.parametrize("code", ["O", "O8", "V8", "S3", "U3", "c16", "f16", "M8", "u1,u1", "|u1"])
def test_dtypes_other_than_plain_numbers_are_refused(tmp_path: Path, code: str) -> None:
    path = write(tmp_path, "dtype", whole(array((1,), b"\0" * 8, dtype(code))))
    assert "only bool, integer and float dtypes" in refused(path)


@pytest.mark.parametrize(
    "state",
    [
        tup(pyint(3), pystr(b"<"), NONE, NONE, NONE, pyint(-1), pyint(-1), pyint(0)),  # order
        tup(pyint(3), pystr(b"|"), NONE, NONE, NONE, pyint(8), pyint(1), pyint(0)),  # elsize
        tup(pyint(3), pystr(b"|"), NONE, NONE, NONE, pyint(-1), pyint(-1), pyint(16)),  # flags
        tup(pyint(4), pystr(b"|"), NONE, NONE, NONE, pyint(-1), pyint(-1), pyint(0), NONE),
        tup(pyint(3), pystr(b"|"), tup(), NONE, NONE, pyint(-1), pyint(-1), pyint(0)),
        pydict(),
    ],
    ids=["byteorder", "elsize", "flags", "version4", "subarray", "dict"],
)
def test_dtype_states_other_than_numpys_are_refused(tmp_path: Path, state: bytes) -> None:
    path = write(tmp_path, "dtype", whole(array((2,), b"ab", dtype("u1", state=state))))
    assert "not numpy's" in refused(path)


def test_dtype_built_twice_is_refused(tmp_path: Path) -> None:
    standard = tup(pyint(3), pystr(b"|"), NONE, NONE, NONE, pyint(-1), pyint(-1), pyint(0))
    path = write(tmp_path, "dtype", whole(build(dtype("u1"), standard)))
    assert "twice" in refused(path)


def _state(*fields: bytes) -> bytes:
    return build(reconstruct(), tup(*fields))


@pytest.mark.parametrize(
    ("body", "error", "words"),
    [
        (
            _state(pyint(0), tup(pyint(2)), dtype("u1"), FALSE, pystr(b"ab")),
            UnsafeDataError,
            "expected numpy's (1, shape",
        ),
        (
            _state(pyint(1), tup(pyint(-2)), dtype("u1"), FALSE, pystr(b"ab")),
            DatasetError,
            "non-negative ints",
        ),
        (
            _state(pyint(1), tup(TRUE), dtype("u1"), FALSE, pystr(b"a")),
            DatasetError,
            "non-negative ints",
        ),
        (
            _state(pyint(1), tup(pyint(2)), pystr(b"u1"), FALSE, pystr(b"ab")),
            UnsafeDataError,
            "expected a numpy.dtype",
        ),
        (
            _state(pyint(1), tup(pyint(2)), dtype("u1"), pyint(0), pystr(b"ab")),
            UnsafeDataError,
            "and a bool",
        ),
        (_state(pyint(1), tup(pyint(2)), dtype("u1"), FALSE, pylist()), DatasetError, "gives list"),
        (
            _state(pyint(1), tup(pyint(2)), dtype("u1"), FALSE, pystr(b"abc")),
            DatasetError,
            "needs 2 bytes",
        ),
        (
            build(
                _state(pyint(1), tup(pyint(1)), dtype("u1"), FALSE, pystr(b"a")),
                tup(pyint(1), tup(pyint(1)), dtype("u1"), FALSE, pystr(b"a")),
            ),
            UnsafeDataError,
            "twice",
        ),
        (reconstruct(), DatasetError, "never given its data"),
        (
            call(
                glob("numpy.core.multiarray", "_reconstruct"),
                glob("numpy", "dtype"),
                tup(pyint(0)),
                pystr(b"b"),
            ),
            UnsafeDataError,
            "only numpy's own _reconstruct",
        ),
        (glob("numpy", "ndarray"), UnsafeDataError, "leaves numpy.ndarray itself"),
        (
            build(glob("numpy", "dtype"), pydict((pystr(b"__call__"), NONE))),
            UnsafeDataError,
            "sets the state of numpy.dtype",
        ),
        (
            call(glob("numpy.core.multiarray", "scalar"), dtype("u1"), pystr(b"ab")),
            DatasetError,
            "needs 1 bytes",
        ),
    ],
    ids=[
        "version",
        "negative-dim",
        "bool-dim",
        "bare-dtype",
        "int-fortran",
        "list-data",
        "short-data",
        "built-twice",
        "never-built",
        "other-subtype",
        "ndarray-left",
        "build-a-global",
        "scalar-size",
    ],
)
def test_array_states_other_than_numpys_are_refused(
    tmp_path: Path, body: bytes, error: type[Exception], words: str
) -> None:
    assert words in refused(write(tmp_path, "array", whole(body)), error)


@pytest.mark.parametrize(
    ("content", "error", "words"),
    [
        (pickle.dumps([1, 2], protocol=0), UnsafeDataError, "opcode LIST"),
        (pickle.dumps(bytearray(b"ab"), protocol=5), UnsafeDataError, "opcode BYTEARRAY8"),
        (pickle.dumps({1, 2}, protocol=4), UnsafeDataError, "opcode EMPTY_SET"),
        (whole(NONE + b"0" + NONE), UnsafeDataError, "opcode POP"),
        (whole(NONE + b"r\xff\xff\xff\x7f"), UnsafeDataError, "memo index 2147483647"),
        (whole(b"h\x05"), DatasetError, "memo entry 5"),
        # a list put inside another, then filled through the memo: nesting depth goes stale
        (
            whole(b"]q\x00" + b"(h\x00t" + b"h\x00" + NONE + b"a0"),
            UnsafeDataError,
            "after it was nested",
        ),
        (whole(b"]q\x00h\x00a"), UnsafeDataError, "inside itself"),
        (whole(b"a"), DatasetError, "stack underflow"),
        (whole(b"(" + NONE + b"a"), DatasetError, "stack underflow"),
        (whole(b"e"), DatasetError, "no MARK"),
        (whole(NONE + NONE), DatasetError, "left on the stack"),
        (b"\x80\x02]", DatasetError, "truncated or corrupt"),
        (b"", DatasetError, "truncated or corrupt"),
        (b"\xff\xfe", DatasetError, "truncated or corrupt"),
    ],
    ids=[
        "protocol0",
        "protocol5",
        "set",
        "pop",
        "huge-memo-index",
        "missing-memo",
        "fill-nested",
        "self-append",
        "empty-stack",
        "mark-as-item",
        "no-mark",
        "leftovers",
        "no-stop",
        "empty",
        "unknown-opcode",
    ],
)
def test_scan_refuses_before_unpickling(
    tmp_path: Path, content: bytes, error: type[Exception], words: str
) -> None:
    assert words in refused(write(tmp_path, "scanned", content), error)


def test_nesting_up_to_the_limit_loads(tmp_path: Path) -> None:
    depth = _pickle_scan.MAX_DEPTH  # the dict, then its key nested one less
    key: Any = None
    for _ in range(depth - 1):
        key = (key,)
    path = write(tmp_path, "ok", whole(b"}" + NONE + b"\x85" * (depth - 1) + NONE + b"s"))
    assert load_pickle(path) == {key: None}
    path = write(tmp_path, "deep", whole(b"}" + NONE + b"\x85" * depth + NONE + b"s"))
    assert f"nest more than {depth} deep" in refused(path)


def test_opcode_count_and_file_size_are_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "long", whole(pylist(*[pyint(1)] * 200)))
    monkeypatch.setattr(_pickle_scan, "MAX_OPCODES", 100)
    assert "more than 100 opcodes" in refused(path)
    monkeypatch.setattr(_unpickle, "MAX_FILE_BYTES", 512)
    assert "larger than" in refused(path)


# --- what real files hold still loads, exactly as numpy's own unpickler gives it ----------


def test_big_endian_and_fortran_arrays_load_as_numpy_loads_them(tmp_path: Path) -> None:
    values = {
        "f": np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
        "b": np.arange(5, dtype=">i4"),
        "bool": np.array([True, False]),
        "empty": np.zeros((0, 3072), np.uint8),
        "scalar": np.int64(-7),
        "f2": np.float16(1.5),
    }
    for protocol in (2, 3, 4):
        content = pickle.dumps(values, protocol=protocol)
        assert_same(load_pickle(write(tmp_path, "p", content)), pickle.loads(content))


def assert_same(ours: Any, numpys: Any) -> None:
    """Equal values of equal types; arrays also in dtype, layout, and owning writable memory."""
    assert type(ours) is type(numpys), (ours, numpys)
    if isinstance(numpys, np.ndarray):
        assert ours.dtype == numpys.dtype and ours.shape == numpys.shape
        assert ours.flags.c_contiguous == numpys.flags.c_contiguous
        assert ours.flags.f_contiguous == numpys.flags.f_contiguous
        assert ours.flags.owndata and ours.flags.writeable
        np.testing.assert_array_equal(ours, numpys)
    elif isinstance(numpys, dict):
        assert list(ours) == list(numpys)
        for key in numpys:
            assert_same(ours[key], numpys[key])
    elif isinstance(numpys, list | tuple):
        assert len(ours) == len(numpys)
        for a, b in zip(ours, numpys):
            assert_same(a, b)
    else:
        assert ours == numpys


@settings(max_examples=15, deadline=None)
@given(
    n_train=st.integers(5, 25),
    n_test=st.integers(1, 8),
    seed=st.integers(0, 2**16),
    hundred=st.booleans(),
    protocol=st.sampled_from([None, 2, 3, 4]),
)
def test_real_cifar_files_load_exactly_as_numpy_loads_them(
    tmp_path_factory: pytest.TempPathFactory,
    n_train: int,
    n_test: int,
    seed: int,
    hundred: bool,
    protocol: int | None,
) -> None:
    """Files as testdata writes them (cPickle's protocol 2), or re-saved by Python 3."""
    root = tmp_path_factory.mktemp("cifar")
    folder = _write_cifar(root, n_train, n_test, seed, hundred)
    for path in sorted(folder.iterdir()):
        if protocol is not None:  # re-saved by Python 3: str keys, arrays the numpy 2 way
            path.write_bytes(
                pickle.dumps(pickle.loads(path.read_bytes(), encoding="latin1"), protocol=protocol)
            )
        assert_same(load_pickle(path), pickle.loads(path.read_bytes(), encoding="latin1"))
    dataset = (CIFAR100 if hundred else CIFAR10)(root)
    train = [pickle.loads(p.read_bytes(), encoding="latin1") for p in _train_files(folder, hundred)]
    rows = np.concatenate([entry["data"] for entry in train])
    np.testing.assert_array_equal(dataset.data, rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    key = "fine_labels" if hundred else "labels"
    assert dataset.targets.tolist() == [label for entry in train for label in entry[key]]


def _write_cifar(root: Path, n_train: int, n_test: int, seed: int, hundred: bool) -> Path:
    if not hundred:
        return testdata.write_cifar10(
            root,
            testdata.random_cifar(n_train, seed=seed),
            testdata.random_cifar(n_test, seed=seed + 1),
        )
    splits = []
    for n, offset in ((n_train, 0), (n_test, 1)):
        images, fine = testdata.random_cifar(n, 100, seed=seed + offset)
        splits.append((images, fine, fine % 20))
    return testdata.write_cifar100(root, splits[0], splits[1])


def _train_files(folder: Path, hundred: bool) -> list[Path]:
    names = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    return [folder / name for name in names]


# --- CIFAR's own checks: labels and data ------------------------------------------------


def _poison_batch(root: Path, **entry: Any) -> Path:
    folder = testdata.write_cifar10(root)
    value = {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1], **entry}
    path = folder / "data_batch_2"
    path.write_bytes(pickle.dumps(value, protocol=2))
    return path


@pytest.mark.parametrize(
    ("labels", "position", "shown"),
    [
        ([57, -1], 0, "57 (int)"),
        ([3, -1], 1, "-1 (int)"),
        ([1.9, 0.5], 0, "1.9 (float)"),
        ([2**70, 0], 0, f"{2**70} (int)"),
        ([1, "cat"], 1, "'cat' (str)"),
        ([True, 0], 0, "True (bool)"),
        (np.array([1, 10]), 1, "10 (int64)"),
        (np.array([0.0, 1.0]), 0, "(float64)"),
    ],
)
def test_bad_labels_name_the_file_key_position_and_value(
    tmp_path: Path, labels: Any, position: int, shown: str
) -> None:
    path = _poison_batch(tmp_path, labels=labels)
    with pytest.raises(DatasetError) as caught:
        CIFAR10(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}: 'labels'[{position}] is ")
    assert shown in message and "[0, 10)" in message and "download the dataset again" in message


def test_cifar100_coarse_labels_are_checked_against_20_classes(tmp_path: Path) -> None:
    images, fine = testdata.random_cifar(3, 100, seed=1)
    testdata.write_cifar100(tmp_path, train=(images, fine, np.array([0, 19, 20])))
    with pytest.raises(DatasetError, match=r"'coarse_labels'\[2\] is 20 \(int\).*\[0, 20\)"):
        CIFAR100(tmp_path)
    testdata.write_cifar100(tmp_path, train=(images, np.array([99, 0, 1]), fine % 20))
    assert CIFAR100(tmp_path).targets.tolist() == [99, 0, 1]


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        (np.zeros((2, 3072), np.int16), "int16 array of shape (2, 3072)"),
        (np.asfortranarray(np.zeros((2, 3072), np.uint8)), "not in C order"),
        (np.zeros((2, 3071), np.uint8), "shape (2, 3071)"),
        ([[0] * 3072] * 2, "[[0, 0, 0, 0, ...], "),
    ],
)
def test_data_must_be_c_ordered_uint8_rows(tmp_path: Path, data: Any, shown: str) -> None:
    path = _poison_batch(tmp_path, data=data)
    expected = re.escape(f"{path}: expected 'data' as a C-ordered uint8")
    with pytest.raises(DatasetError, match=expected) as e:
        CIFAR10(tmp_path)
    assert shown in str(e.value)


def test_class_names_must_be_a_list_of_strings(tmp_path: Path) -> None:
    folder = testdata.write_cifar10(tmp_path)
    meta = {"label_names": 10, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    with pytest.raises(DatasetError, match=r"batches\.meta: expected 'label_names' as a list"):
        CIFAR10(tmp_path)
