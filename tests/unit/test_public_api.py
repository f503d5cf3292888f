"""The public API is exactly what stoker/__init__.py declares, and every name resolves."""

import stoker


def test_all_is_sorted_and_resolves() -> None:
    names = [name for name in stoker.__all__ if name != "__version__"]
    assert names == sorted(names)
    for name in stoker.__all__:
        assert hasattr(stoker, name), name


def test_no_private_names_exported() -> None:
    assert not [n for n in stoker.__all__ if n.startswith("_") and n != "__version__"]
