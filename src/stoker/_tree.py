"""map_structure: rebuild a batch's nesting (dicts, tuples, lists) with its leaves mapped."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def map_structure(tree: Any, fn: Callable[[Any], Any], is_leaf: Callable[[Any], bool]) -> Any:
    """``tree`` with ``fn`` applied to every leaf; containers keep their types.

    Leaves are what ``is_leaf`` accepts; other non-container values are returned unchanged.
    """
    if is_leaf(tree):
        return fn(tree)
    if isinstance(tree, Mapping):
        mapped = {key: map_structure(value, fn, is_leaf) for key, value in tree.items()}
        try:
            return type(tree)(mapped)  # type: ignore[call-arg]
        except TypeError:  # a Mapping type that cannot be built from a dict
            return mapped
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(map_structure(value, fn, is_leaf) for value in tree))
    if isinstance(tree, tuple | list):
        return type(tree)(map_structure(value, fn, is_leaf) for value in tree)
    return tree
