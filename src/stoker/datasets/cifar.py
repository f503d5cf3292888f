"""CIFAR-10 and CIFAR-100 from the official "python version" pickles, as one uint8 array."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from stoker import seeding
from stoker._collated import CollatedSamples
from stoker.dataset import Dataset
from stoker.datasets._download import download_and_extract
from stoker.datasets._images import supports_batches
from stoker.datasets._unpickle import brief, load_pickle
from stoker.errors import DatasetError
from stoker.transforms._rows import Rows

__all__ = ["CIFAR10", "CIFAR100"]

_SIDE_PX = 32
_ROW_BYTES = 3 * _SIDE_PX * _SIDE_PX


def _load_dict(path: Path) -> dict[str, Any]:
    """A pickled dict with its keys as str, whichever Python wrote it (bytes keys decoded)."""
    entry = load_pickle(path)
    if not isinstance(entry, dict):
        raise DatasetError(
            f"{path}: expected a pickled dict, got {type(entry).__name__}; this is not a CIFAR "
            "python-version file, download the dataset again"
        )
    return {_text(key): value for key, value in entry.items()}


def _text(value: Any) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _field(entry: dict[str, Any], key: str, path: Path) -> Any:
    if key not in entry:
        raise DatasetError(
            f"{path}: expected a dict with key {key!r}, got keys {sorted(entry)}; this is not a "
            "CIFAR python-version batch, download the dataset again"
        )
    return entry[key]


def _read_batch(
    path: Path, class_counts: dict[str, int], meta_path: Path
) -> tuple[np.ndarray, list[np.ndarray]]:
    """A batch's ``data`` (N×3072 uint8) and, per label key, its N labels checked against
    the number of classes ``meta_path`` names for that key."""
    entry = _load_dict(path)
    data = _checked_data(_field(entry, "data", path), path)
    labels = [
        _checked_labels(_field(entry, key, path), key, len(data), count, path, meta_path)
        for key, count in class_counts.items()
    ]
    return data, labels


def _checked_data(data: Any, path: Path) -> np.ndarray:
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != _ROW_BYTES
        or not data.flags.c_contiguous
    ):
        got = _describe_array(data) if isinstance(data, np.ndarray) else brief(data)
        raise DatasetError(
            f"{path}: expected 'data' as a C-ordered uint8 N×{_ROW_BYTES} array, got {got}; "
            "the file is damaged, delete it and download the dataset again"
        )
    return data


def _describe_array(array: np.ndarray) -> str:
    order = "" if array.flags.c_contiguous else " not in C order"
    return f"{array.dtype} array of shape {array.shape}{order}"


def _checked_labels(
    values: Any, key: str, rows: int, classes: int, path: Path, meta_path: Path
) -> np.ndarray:
    """``values`` as int64, once each is known to be an integer class index below ``classes``.

    Checked before conversion: numpy would truncate floats, wrap or overflow huge ints, and
    parse numeric strings, none of which names the file.
    """
    if not isinstance(values, list) and not (isinstance(values, np.ndarray) and values.ndim == 1):
        raise DatasetError(
            f"{path}: expected {key!r} as a list of integers, got {brief(values)}; the "
            "file is damaged, delete it and download the dataset again"
        )
    if len(values) != rows:
        raise DatasetError(
            f"{path}: expected 'data' N×{_ROW_BYTES} with N {key!r}, got {rows} rows of data "
            f"and {len(values)} labels; the file is damaged, delete it and download it again"
        )
    bad = _first_bad_label(values, classes)
    if bad is not None:
        value = values[bad]
        shown = value.item() if isinstance(value, np.generic) else value  # 10, not np.int64(10)
        raise DatasetError(
            f"{path}: {key!r}[{bad}] is {brief(shown)} "
            f"({type(value).__name__}), expected an integer class index in "
            f"[0, {classes}) as {meta_path.name} names {classes} classes; the file is damaged, "
            "delete it and download the dataset again"
        )
    return np.asarray(values, dtype=np.int64)


def _first_bad_label(values: list[Any] | np.ndarray, classes: int) -> int | None:
    """The position of the first label that is not an int in ``[0, classes)``, or None."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "iu":  # bool is kind "b", floats "f"
            return 0 if len(values) else None
        outside = np.flatnonzero((values < 0) | (values >= classes))
        return int(outside[0]) if len(outside) else None
    for position, value in enumerate(values):
        is_int = isinstance(value, int | np.integer) and not isinstance(value, bool)
        if not is_int or not 0 <= value < classes:
            return position
    return None


class CIFAR10(Dataset[Any]):
    """CIFAR-10, read from ``root/cifar-10-batches-py`` (torchvision's layout and behaviour).

    ``data`` is one contiguous uint8 array N×32×32×3, ``targets`` an int64 array. Samples are
    ``(image, label)``: a PIL image when ``transform`` is None, else ``transform(image)``. A
    transform with ``supports_batches = True`` gets the uint8 HWC array instead, and
    :meth:`__getitems__` hands it the whole NHWC batch at once.

    ``download=True`` fetches the official archive (override with ``url=``/``md5=``), checks
    its MD5 and extracts it safely; the pickles are read with a restricted unpickler.
    """

    base_folder: ClassVar[str] = "cifar-10-batches-py"
    url: ClassVar[str] = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    filename: ClassVar[str] = "cifar-10-python.tar.gz"
    tgz_md5: ClassVar[str] = "c58f30108f718f92721af3b95e74349a"
    train_files: ClassVar[tuple[str, ...]] = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_files: ClassVar[tuple[str, ...]] = ("test_batch",)
    meta_file: ClassVar[str] = "batches.meta"
    # Each label key of a batch, the first being ``targets`` (and its names ``classes``), and
    # the meta key naming its classes (the labels index into those names).
    label_classes: ClassVar[dict[str, str]] = {"labels": "label_names"}

    def __init__(
        self,
        root: str | Path,
        train: bool = True,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[Any], Any] | None = None,
        download: bool = False,
        *,
        url: str | None = None,
        md5: str | None = None,
    ):
        self.root = Path(root).expanduser()
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        folder = self.root / self.base_folder
        if download and not self._complete():
            # A custom url with no md5 is a mirror the caller controls; skip the checksum then.
            checksum = md5 if md5 is not None or url is not None else self.tgz_md5
            download_and_extract(url or self.url, self.root, self.filename, checksum)
        missing = [name for name in self._needed() if not (folder / name).is_file()]
        if missing:
            raise DatasetError(
                f"{type(self).__name__} not found: looked for {', '.join(missing)} in {folder}; "
                f"pass download=True to fetch it, or point root at the folder containing "
                f"{self.base_folder}/"
            )
        # The class names come first: they say how many classes each label key may index.
        self._meta = self._load_meta(folder / self.meta_file)
        names = {key: self._names(meta_key) for key, meta_key in self.label_classes.items()}
        self.classes: list[str] = next(iter(names.values()))
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        counts = {key: len(classes) for key, classes in names.items()}
        files = self.train_files if train else self.test_files
        batches = [_read_batch(folder / name, counts, self._meta_path) for name in files]
        flat = np.concatenate([data for data, _ in batches])
        planes = flat.reshape(-1, 3, _SIDE_PX, _SIDE_PX)
        self.data: npt.NDArray[np.uint8] = np.ascontiguousarray(planes.transpose(0, 2, 3, 1))
        labels = {
            key: np.concatenate([batch_labels[k] for _, batch_labels in batches])
            for k, key in enumerate(self.label_classes)
        }
        self.targets: npt.NDArray[np.int64] = labels[next(iter(self.label_classes))]
        self._other_targets = labels

    def _needed(self) -> tuple[str, ...]:
        return (*self.train_files, *self.test_files, self.meta_file)

    def _complete(self) -> bool:
        return all((self.root / self.base_folder / name).is_file() for name in self._needed())

    def _load_meta(self, path: Path) -> dict[str, Any]:
        self._meta_path = path
        return _load_dict(path)

    def _names(self, key: str) -> list[str]:
        names = _field(self._meta, key, self._meta_path)
        if not isinstance(names, list) or not all(isinstance(n, str | bytes) for n in names):
            raise DatasetError(
                f"{self._meta_path}: expected {key!r} as a list of class names, got "
                f"{brief(names)}; the file is damaged, delete it and download the "
                "dataset again"
            )
        return [_text(name) for name in names]

    def __len__(self) -> int:
        return len(self.data)

    def _target(self, label: int) -> Any:
        return label if self.target_transform is None else self.target_transform(label)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        array, label = self.data[index], int(self.targets[index])
        image: Any
        if self.transform is None:
            image = Image.fromarray(array)
        elif supports_batches(self.transform):
            image = self.transform(array)
        else:
            image = self.transform(Image.fromarray(array))
        return image, self._target(label)

    def __getitems__(self, indices: Sequence[int]) -> Sequence[Any]:
        """A batch: one gather and one transform call when the transform takes batches.

        The loader has opened ``seeding.sample_context`` for ``indices``, so a batched random
        transform draws for each sample exactly what it would draw for it alone.
        """
        if self.transform is None or not supports_batches(self.transform):
            samples = []
            for position, index in enumerate(indices):
                with seeding.each_sample(position):
                    samples.append(self[index])
            return samples
        picked = np.asarray(indices, dtype=np.int64)
        if getattr(self.transform, "accepts_rows", False):  # gathered inside the fused pass
            images = self.transform(Rows(self.data, picked))
        else:
            images = self.transform(self.data[picked])
        labels = self.targets[picked]
        if self.target_transform is None:
            return CollatedSamples((images, torch.from_numpy(labels)), len(picked))
        targets = [self.target_transform(int(label)) for label in labels]
        try:
            stacked = torch.as_tensor(targets)
        except (TypeError, ValueError, RuntimeError):
            # Targets that are not numbers cannot be one tensor; hand back plain samples.
            return [(images[i], targets[i]) for i in range(len(picked))]
        return CollatedSamples((images, stacked), len(picked))

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"{type(self).__name__}(root={str(self.root)!r}, split={split!r}, n={len(self)})"


class CIFAR100(CIFAR10):
    """CIFAR-100 from ``root/cifar-100-python``: fine labels as ``targets``, coarse alongside.

    ``coarse_targets`` and ``coarse_classes`` hold the 20 superclasses.
    """

    base_folder = "cifar-100-python"
    url = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    filename = "cifar-100-python.tar.gz"
    tgz_md5 = "eb9058c3a382ffc7106e4002c42a8d85"
    train_files = ("train",)
    test_files = ("test",)
    meta_file = "meta"
    label_classes: ClassVar[dict[str, str]] = {
        "fine_labels": "fine_label_names",
        "coarse_labels": "coarse_label_names",
    }

    def __init__(
        self,
        root: str | Path,
        train: bool = True,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[Any], Any] | None = None,
        download: bool = False,
        *,
        url: str | None = None,
        md5: str | None = None,
    ):
        super().__init__(root, train, transform, target_transform, download, url=url, md5=md5)
        self.coarse_targets: npt.NDArray[np.int64] = self._other_targets["coarse_labels"]
        self.coarse_classes: list[str] = self._names(self.label_classes["coarse_labels"])
