"""RemoteError: an exception raised in a worker, carried to the loader as a value and re-raised."""

from __future__ import annotations

import pickle
import traceback
from dataclasses import dataclass
from typing import NoReturn


@dataclass
class RemoteError:
    """What the loader needs to re-raise a worker's exception where the user is."""

    worker_id: int
    type_name: str
    message: str
    traceback_text: str
    notes: list[str]
    pickled_type: bytes | None

    @classmethod
    def capture(cls, error: BaseException, worker_id: int) -> RemoteError:
        try:
            pickled_type: bytes | None = pickle.dumps(type(error))
        except Exception:  # a type defined in a closure, say: re-raised as RuntimeError
            pickled_type = None
        try:
            message = str(error)
            traceback_text = "".join(traceback.format_exception(error))
        except Exception as str_error:  # an exception whose __str__ raises
            message = f"<str() of the {type(error).__qualname__} raised {str_error!r}>"
            traceback_text = (
                "".join(traceback.format_tb(error.__traceback__))
                + f"{type(error).__qualname__}: {message}\n"
            )
        return cls(
            worker_id=worker_id,
            type_name=type(error).__qualname__,
            message=message,
            traceback_text=traceback_text,
            notes=list(getattr(error, "__notes__", [])),
            pickled_type=pickled_type,
        )

    def description(self) -> str:
        where = "".join(
            " " + note.removeprefix("stoker: ").removeprefix("raised ") for note in self.notes[:1]
        )
        return (
            f"Caught {self.type_name} in DataLoader worker process {self.worker_id}"
            f"{where}.\nOriginal {self.traceback_text}"
        )

    def reraise(self) -> NoReturn:
        """Raise the worker's exception type with torch's message layout."""
        message = self.description()
        exc_type: type[BaseException] = RuntimeError
        if self.pickled_type is not None:
            try:
                exc_type = pickle.loads(self.pickled_type)
            except Exception:
                exc_type = RuntimeError
        if exc_type is KeyError:
            message = KeyErrorMessage(message)  # KeyError's str() would quote the message
        try:
            error = exc_type(message)
        except Exception:  # constructors that need more than a message
            error = RuntimeError(message)
        raise error


class KeyErrorMessage(str):
    """A str whose repr is itself, so ``KeyError(msg)`` prints the traceback readably."""

    def __repr__(self) -> str:
        return str(self)
