"""TransformError: the one error a transform raises for input it cannot handle."""

from __future__ import annotations

from stoker.errors import StokerError


class TransformError(StokerError, ValueError, TypeError):
    """A transform got an input or argument it cannot handle; names the transform, expected and got.

    It subclasses both ``ValueError`` and ``TypeError`` so code written against torchvision, which
    raises either depending on the case, keeps catching it.
    """


def fail(transform: str, expected: str, got: str, fix: str = "") -> TransformError:
    """The error in the house shape: who, what was expected, what came, and what to do."""
    message = f"{transform}: expected {expected}, got {got}"
    return TransformError(f"{message}; {fix}" if fix else message)
