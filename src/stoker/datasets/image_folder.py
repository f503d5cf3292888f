"""Images stored one folder per class, with the label → class-name mapping saved beside them."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stoker._shared_list import SharedList
from stoker.dataset import Dataset
from stoker.datasets._images import check_image_type, parse_decode_size
from stoker.datasets._json_cache import write_json
from stoker.datasets._undecoded_jpeg import load_for
from stoker.errors import DatasetError

__all__ = ["IMG_EXTENSIONS", "MAPPING_FILE", "ImageFolder"]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""File endings read as images (torchvision's list), compared case-insensitively."""

MAPPING_FILE = "label_to_class.json"
"""The saved ``{"0": "cat", "1": "dog", ...}`` mapping, in the dataset root."""


def read_mapping(path: Path) -> list[str]:
    """The class names in label order from a saved mapping file."""
    try:
        raw = json.loads(path.read_text())
        names = [str(raw[str(label)]) for label in range(len(raw))]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(
            f'{path}: expected a JSON object mapping labels "0".."n-1" to class names, '
            f"could not read it ({type(exc).__name__}: {exc}); fix or delete it (it is "
            "rebuilt from the sorted class folders)"
        ) from exc
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: class names repeat in the mapping: {names}")
    return names


class ImageFolder(Dataset[tuple[Any, Any]]):
    """``root/<class name>/<image>`` as ``(image, label)`` samples, torchvision style.

    Labels follow ``root/label_to_class.json`` when it exists, so they stay stable as class
    folders are added; otherwise they are the sorted folder names, and that mapping is saved
    there (when the folder is writable and ``save_mapping`` is true). ``classes``,
    ``class_to_idx``, ``samples`` (path, label) and ``targets`` are as in torchvision;
    ``samples`` and ``targets`` are :class:`~stoker.SharedList` s (equal to torchvision's lists,
    ``str`` paths included), so worker processes read them without copying them.

    ``image_type="pil"`` (the default, as torchvision) gives RGB PIL images; ``"numpy"`` gives
    RGB uint8 HWC arrays, decoded by simplejpeg when installed (faster, the same pixels; every
    stoker transform takes them). ``decode_size=(h, w)`` opts in to reduced-size JPEG decoding
    (1/2, 1/4 or 1/8 scale in the DCT, keeping both sides ≥ (h, w)): much faster when the
    pipeline shrinks images anyway, but the pixels differ from a full decode (see
    :func:`stoker.datasets.decode_image`). With ``"numpy"`` and a transform that starts with
    stoker's ``RandomResizedCrop``, a JPEG is decoded only inside the crop's window where the
    optional libjpeg-turbo module is built: the same pixels, ~20% less decoding; with
    ``Resize(..., backend="opencv")`` first, the resize's box averaging runs as the JPEG is
    decoded (the same bits as decoding first).
    """

    def __init__(
        self,
        root: str | Path,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[Any], Any] | None = None,
        *,
        extensions: Sequence[str] = IMG_EXTENSIONS,
        save_mapping: bool = True,
        image_type: str = "pil",
        decode_size: int | tuple[int, int] | None = None,
    ):
        self.image_type = check_image_type(image_type, "ImageFolder")
        self.decode_size = parse_decode_size(decode_size, "ImageFolder")
        self.root = Path(root).expanduser()
        self.transform = transform
        self.target_transform = target_transform
        if not self.root.is_dir():
            raise DatasetError(
                f"image folder not found: {self.root} is not a directory; pass the folder "
                "holding one sub-folder per class"
            )
        folders = sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name[0] != ".")
        mapping_path = self.root / MAPPING_FILE
        if mapping_path.is_file():
            self.classes = read_mapping(mapping_path)
            unknown = sorted(set(folders) - set(self.classes))
            if unknown:
                raise DatasetError(
                    f"{mapping_path}: class folders {unknown} are not in the saved mapping "
                    f"{self.classes}; add them to it (new labels at the end) or delete it"
                )
        else:
            self.classes = folders
            if save_mapping:
                # Best effort: a read-only folder still loads, labels just are not pinned.
                write_json(mapping_path, {str(i): name for i, name in enumerate(folders)})
        self.class_to_idx = {name: label for label, name in enumerate(self.classes)}
        endings = tuple(e.lower() for e in extensions)
        self.samples = SharedList(
            (str(path), self.class_to_idx[name])
            for name in folders
            for path in sorted((self.root / name).iterdir())
            if path.is_file() and path.suffix.lower() in endings
        )
        if not self.samples:
            raise DatasetError(
                f"no images found in {self.root}: expected <class>/<file> with one of the "
                f"endings {endings}, found class folders {folders}"
            )
        self.targets = SharedList(label for _, label in self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        path, label = self.samples[index]
        image = load_for(self.transform, Path(path), self.image_type, self.decode_size)
        if self.transform is not None:
            image = self.transform(image)
        target: Any = label if self.target_transform is None else self.target_transform(label)
        return image, target

    def __repr__(self) -> str:
        return f"ImageFolder(root={str(self.root)!r}, classes={len(self.classes)}, n={len(self)})"
