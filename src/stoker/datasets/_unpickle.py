"""Load untrusted pickles (the CIFAR batches) admitting only the globals those files need."""

from __future__ import annotations

import _codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from stoker.errors import DatasetError, StokerError, UnsafeDataError

__all__ = ["load_pickle"]

try:  # numpy >= 2 moved the implementation; old pickles still name numpy.core.
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]

# Globals are resolved from this table, never imported by name, so a pickle cannot make us
# import (and run the import side effects of) any module it chooses.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): scalar,
    ("numpy._core.multiarray", "scalar"): scalar,
    # Python 3 writes bytes this way under protocol 2 (e.g. a re-saved CIFAR batch).
    ("_codecs", "encode"): _codecs.encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: Path):
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeDataError(
                f"{self._path}: the pickle names the global {module}.{name}, which a data file "
                f"has no need for; refused without running it (only "
                f"{', '.join(sorted(f'{m}.{n}' for m, n in _ALLOWED))} are admitted). "
                "Do not use this file; download it again from its official source"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeDataError(
            f"{self._path}: the pickle uses a persistent id ({pid!r}); refused, data files "
            "have none"
        )


def load_pickle(path: Path) -> Any:
    """Unpickle ``path`` with Python 2 strings as latin-1 ``str`` (as torchvision does).

    Raises :class:`UnsafeDataError` when the pickle names any global outside the allow-list,
    and :class:`DatasetError` when it is truncated or otherwise not a pickle.
    """
    with open(path, "rb") as file:
        try:
            return _RestrictedUnpickler(file, path).load()
        except StokerError:
            raise
        # A damaged pickle can fail in any opcode handler, with almost any exception type.
        except Exception as exc:
            raise DatasetError(
                f"{path}: not a readable pickle ({type(exc).__name__}: {exc}); the file is "
                "truncated or corrupt, delete it and download the dataset again"
            ) from exc
