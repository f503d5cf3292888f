"""Check a pickle's opcode stream before anything unpickles it.

The scan walks every opcode with :func:`pickletools.genops` (which only parses, never builds
objects) and simulates the unpickler's stack just far enough to know how deeply containers
nest. It refuses what no data file needs and what hurts the interpreter before a single
object exists: unknown or unusual opcodes, containers nested deeper than :data:`MAX_DEPTH`
(hashing a deeply nested tuple recurses in C with no guard and kills the process), more than
:data:`MAX_OPCODES` opcodes (each can cost ~100 bytes of objects, so the count bounds memory),
and memo indices far past anything written so far (the C unpickler sizes its memo table to
the largest index it sees).
"""

from __future__ import annotations

import pickletools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stoker.errors import DatasetError, UnsafeDataError

__all__ = ["MAX_DEPTH", "MAX_OPCODES", "scan"]

# A real CIFAR file nests 3 deep (dict → list → str; an array's state tuple holds its shape
# tuple); 32 leaves ample room and keeps every recursion over the result shallow.
MAX_DEPTH = 32
# The CIFAR-100 training file (~155 MB) is ~200k opcodes: every filename, label and memo put
# is one. Ten times that still scans in a few seconds.
MAX_OPCODES = 2_000_000

# The opcodes of binary pickles as Python 2's cPickle (protocol 2, the official CIFAR files)
# and Python 3 (protocols 2-4, re-saved batches) write dicts, lists, tuples, ints, floats,
# strings, bytes and numpy arrays. Anything else is refused: text protocols 0/1, object
# construction (INST, OBJ, NEWOBJ*), the extension registry, persistent ids, sets, and the
# out-of-band buffers and 8-byte lengths of protocol 5 and of objects over 4 GiB.
ADMITTED_OPCODES = frozenset(
    {
        # framing
        "PROTO",
        "FRAME",
        "STOP",
        # containers
        "MARK",
        "EMPTY_DICT",
        "EMPTY_LIST",
        "EMPTY_TUPLE",
        "TUPLE",
        "TUPLE1",
        "TUPLE2",
        "TUPLE3",
        "APPEND",
        "APPENDS",
        "SETITEM",
        "SETITEMS",
        # plain values
        "NONE",
        "NEWTRUE",
        "NEWFALSE",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG1",
        "BINFLOAT",
        "SHORT_BINSTRING",
        "BINSTRING",
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "SHORT_BINBYTES",
        "BINBYTES",
        # memo
        "BINPUT",
        "LONG_BINPUT",
        "MEMOIZE",
        "BINGET",
        "LONG_BINGET",
        # numpy arrays and str→bytes (globals are checked again by the unpickler's find_class)
        "GLOBAL",
        "STACK_GLOBAL",
        "REDUCE",
        "BUILD",
    }
)

_NEW_CONTAINERS = frozenset(
    {"EMPTY_DICT", "EMPTY_LIST", "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"}
)
_FILLS = frozenset({"APPEND", "APPENDS", "SETITEM", "SETITEMS"})
_PUTS = frozenset({"BINPUT", "LONG_BINPUT"})
_GETS = frozenset({"BINGET", "LONG_BINGET"})


@dataclass(eq=False, slots=True)
class _Node:
    """One object on the simulated stack: how deep it nests, and whether it is inside another."""

    depth: int = 0
    nested: bool = False


@dataclass(slots=True)
class _Machine:
    """The unpickler's stack and memo, holding :class:`_Node` instead of objects.

    ``None`` on the stack is a MARK. Memo GETs push the very node that was stored, so
    filling a list through a memo reference updates the same node.
    """

    path: Path
    stack: list[_Node | None] = field(default_factory=list)
    memo: dict[int, _Node] = field(default_factory=dict)
    opcodes: int = 0

    def refuse(self, what: str) -> UnsafeDataError:
        return UnsafeDataError(
            f"{self.path}: {what}; refused before unpickling. Do not use this file; download "
            "it again from its official source"
        )

    def damaged(self, what: str) -> DatasetError:
        return DatasetError(
            f"{self.path}: not a readable pickle ({what}); the file is truncated or corrupt, "
            "delete it and download the dataset again"
        )

    def pop(self, pos: int) -> _Node:
        node = self.stack.pop() if self.stack else None
        if node is None:  # an empty stack, or a MARK where an object belongs
            raise self.damaged(f"stack underflow at byte {pos}")
        return node

    def pop_to_mark(self, pos: int) -> list[_Node]:
        items: list[_Node] = []
        while self.stack:
            node = self.stack.pop()
            if node is None:
                items.reverse()
                return items
            items.append(node)
        raise self.damaged(f"no MARK for the opcode at byte {pos}")

    def top(self, pos: int) -> _Node:
        node = self.stack[-1] if self.stack else None
        if node is None:
            raise self.damaged(f"nothing to memoize at byte {pos}")
        return node

    def memo_put(self, index: int, pos: int) -> None:
        # Writers number memo entries 0, 1, 2, ... (cPickle from 1), so an index beyond the
        # opcodes read so far only serves to make the C unpickler allocate a huge memo table.
        if index > self.opcodes:
            raise self.refuse(f"memo index {index} at byte {pos} is beyond any written entry")
        self.memo[index] = self.top(pos)

    def memo_get(self, index: int, pos: int) -> _Node:
        try:
            return self.memo[index]
        except KeyError:
            raise self.damaged(f"memo entry {index} read at byte {pos} was never stored") from None

    def nest(self, container: _Node, items: list[_Node], pos: int) -> None:
        """Put ``items`` inside ``container``, keeping depths exact and the graph acyclic.

        Writers fill a container before putting it inside another one, so a container filled
        after that (whose parents' depths would go stale), or filled with itself, is refused.
        """
        if container.nested:
            raise self.refuse(f"a container is filled at byte {pos} after it was nested")
        depth = container.depth
        for item in items:
            if item is container:
                raise self.refuse(f"a container is put inside itself at byte {pos}")
            item.nested = True
            depth = max(depth, item.depth + 1)
        container.depth = max(depth, 1)
        if container.depth > MAX_DEPTH:
            raise self.refuse(f"containers nest more than {MAX_DEPTH} deep at byte {pos}")

    def step(self, opcode: pickletools.OpcodeInfo, arg: Any, pos: int) -> None:
        """Apply one opcode's effect on the stack, as its pickletools descriptor states it."""
        name = opcode.name
        if name in _PUTS or name == "MEMOIZE":  # store the top, leave the stack as it is
            self.memo_put(len(self.memo) if name == "MEMOIZE" else arg, pos)
            return
        if name in _GETS:
            self.stack.append(self.memo_get(arg, pos))
            return
        before = opcode.stack_before
        if pickletools.markobject in before:  # [fixed..., markobject, stackslice]
            fixed_count = before.index(pickletools.markobject)
            items = self.pop_to_mark(pos)
        else:
            fixed_count, items = len(before), []
        fixed = [self.pop(pos) for _ in range(fixed_count)][::-1]
        for produced in opcode.stack_after:
            self.stack.append(
                None
                if produced is pickletools.markobject
                else self._result(name, fixed, items, pos)
            )

    def _result(self, name: str, fixed: list[_Node], items: list[_Node], pos: int) -> _Node:
        if name in _NEW_CONTAINERS:
            node = _Node()
            self.nest(node, fixed + items, pos)
            return node
        if name in _FILLS:  # [container, key/value/items...] -> the same container
            self.nest(fixed[0], fixed[1:] + items, pos)
            return fixed[0]
        if name == "BUILD":  # [object, state] -> the object; the stand-ins keep no state
            return fixed[0]
        # Literals, globals and REDUCE results (the admitted callables return leaves).
        return _Node()


def scan(data: bytes, path: Path) -> None:
    """Refuse ``data`` (the bytes of ``path``) unless it is a pickle a data file could be.

    Raises :class:`UnsafeDataError` for refused content and :class:`DatasetError` when the
    bytes are not a well-formed pickle.
    """
    machine = _Machine(path)
    try:
        for opcode, arg, at in pickletools.genops(data):
            pos = -1 if at is None else at  # always known when reading from bytes
            machine.opcodes += 1
            if machine.opcodes > MAX_OPCODES:
                raise machine.refuse(f"more than {MAX_OPCODES} opcodes, far more than any dataset")
            if opcode.name not in ADMITTED_OPCODES:
                raise machine.refuse(
                    f"opcode {opcode.name} at byte {pos}, which data files have no need for"
                )
            machine.step(opcode, arg, pos)
    except ValueError as exc:  # genops: unknown opcode, or data ends inside an opcode
        raise machine.damaged(str(exc)) from exc
    if machine.stack:
        raise machine.damaged("objects left on the stack after STOP")
    # Bytes after STOP are never read (pickle.load, what torchvision uses, ignores them too):
    # harmless, so accepted, as torchvision accepts them.
