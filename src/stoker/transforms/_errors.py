"""fail(): build the one error a transform raises for input it cannot handle."""

from __future__ import annotations

from stoker.errors import TransformError

__all__ = ["TransformError", "fail"]


def fail(transform: str, expected: str, got: str, fix: str = "") -> TransformError:
    """The error in the house shape: who, what was expected, what came, and what to do."""
    message = f"{transform}: expected {expected}, got {got}"
    return TransformError(f"{message}; {fix}" if fix else message)
