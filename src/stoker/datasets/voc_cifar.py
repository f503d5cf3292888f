"""VOC images holding exactly one object of a CIFAR-10 class, labelled with that class."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from stoker import seeding
from stoker._shared_list import SharedList
from stoker.dataset import Dataset
from stoker.datasets._images import check_image_type, parse_decode_size
from stoker.datasets._json_cache import files_fingerprint, read_cache, write_cache
from stoker.datasets._undecoded_jpeg import load_for
from stoker.datasets._voc_xml import object_names
from stoker.datasets.voc import VOCDetection, is_voc_id

__all__ = ["CIFAR10_CLASSES", "DEFAULT_VOC_TO_CIFAR", "FilteredVOCtoCIFAR"]

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
"""CIFAR-10's class names, in label order."""

DEFAULT_VOC_TO_CIFAR: Mapping[str, str] = {
    "aeroplane": "airplane",
    "car": "automobile",
    "bird": "bird",
    "cat": "cat",
    "dog": "dog",
    "frog": "frog",
}
"""The seed's hand-picked VOC → CIFAR-10 class mapping ("frog" is not a VOC class; harmless)."""

_CACHE_DIR = ".stoker-cache"


def _checked_mapping(mapping: Mapping[str, str]) -> dict[str, str]:
    for voc_name, cifar_name in mapping.items():
        if cifar_name not in CIFAR10_CLASSES:
            raise ValueError(
                f"class_mapping[{voc_name!r}] must be a CIFAR-10 class, one of "
                f"{CIFAR10_CLASSES}, got {cifar_name!r}"
            )
    return dict(mapping)


class FilteredVOCtoCIFAR(Dataset[tuple[Any, int]]):
    """The VOC images with exactly one object, of a class in ``class_mapping``.

    Samples are ``(image, label)``: the PIL RGB image (or ``transform(image)``) and the index
    in :data:`CIFAR10_CLASSES` of the mapped class. The filter reads annotations only (no image
    is decoded) and its result is cached as JSON in ``VOC<year>/.stoker-cache/``, keyed by the
    names, sizes and mtimes of the split's annotation files, so editing one recomputes it.
    The cache holds ``[image id, label]`` pairs; one that holds anything else is recomputed
    and overwritten (``cache_hit`` says whether it was used), and samples always follow the
    split file, so the cache cannot make the dataset open other files. ``indices`` (into
    ``voc``) and ``targets`` are :class:`~stoker.SharedList` s, read by workers without copying.

    ``image_type`` and ``decode_size`` are as in :class:`~stoker.datasets.ImageFolder`:
    ``image_type="numpy"`` gives uint8 HWC arrays, and ``decode_size=(32, 32)`` (opt-in, pixels
    differ) decodes the JPEGs at 1/8 scale ahead of a ``Resize((32, 32))``.
    """

    def __init__(
        self,
        root: str | Path,
        year: str = "2007",
        image_set: str = "val",
        transform: Callable[[Any], Any] | None = None,
        class_mapping: Mapping[str, str] | None = None,
        download: bool = False,
        *,
        url: str | None = None,
        md5: str | None = None,
        image_type: str = "pil",
        decode_size: int | tuple[int, int] | None = None,
    ):
        self.image_type = check_image_type(image_type, "FilteredVOCtoCIFAR")
        self.decode_size = parse_decode_size(decode_size, "FilteredVOCtoCIFAR")
        self.voc = VOCDetection(root, year, image_set, download=download, url=url, md5=md5)
        self.transform = transform
        self.class_mapping = _checked_mapping(
            DEFAULT_VOC_TO_CIFAR if class_mapping is None else class_mapping
        )
        self.classes = list(CIFAR10_CLASSES)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        mapping_key = json.dumps(sorted(self.class_mapping.items())).encode()
        mapping_hash = hashlib.sha256(mapping_key).hexdigest()[:16]
        cache_name = f"voc_to_cifar-{image_set}-{mapping_hash}.json"
        self.cache_path = self.voc.voc_root / _CACHE_DIR / cache_name
        kept = self._filtered()
        self.indices = SharedList([index for index, _ in kept])
        self.targets = SharedList([label for _, label in kept])

    def _filtered(self) -> list[tuple[int, int]]:
        """``(index into self.voc, label)`` of each image kept, from the cache when it is valid."""
        fingerprint = files_fingerprint(map(Path, self.voc.annotations))
        labels = self._cached_labels(read_cache(self.cache_path, fingerprint))
        self.cache_hit = labels is not None
        if labels is None:
            labels = self._scan()
            write_cache(self.cache_path, fingerprint, [[i, y] for i, y in labels.items()])
        # Indices come from the split file, never from the cache: whatever the cache says, only
        # images the split lists are ever opened.
        return [(index, labels[i]) for index, i in enumerate(self.voc.ids) if i in labels]

    def _scan(self) -> dict[str, int]:
        """``{image id: label}`` of the kept images, in split order, read from the annotations."""
        labels: dict[str, int] = {}
        for image_id, path in zip(self.voc.ids, self.voc.annotations):
            if image_id in labels:
                continue
            names = object_names(Path(path))
            if len(names) == 1 and names[0] in self.class_mapping:
                labels[image_id] = self.class_to_idx[self.class_mapping[names[0]]]
        return labels

    def _cached_labels(self, value: Any) -> dict[str, int] | None:
        """``value`` as ``{image id: label}`` if it is exactly what :meth:`_scan` writes, else None.

        That is a list of ``[id, label]`` pairs: each id listed in the split and given once, each
        label the index of a class ``class_mapping`` maps to. Anything else (a cache edited by
        hand, written by an older stoker, or planted) is a cache miss, so it gets recomputed.
        """
        if not isinstance(value, list):
            return None
        split_ids = set(self.voc.ids)
        mapped = {self.class_to_idx[name] for name in self.class_mapping.values()}
        labels: dict[str, int] = {}
        for entry in value:
            if not (isinstance(entry, list) and len(entry) == 2):
                return None
            image_id, label = entry
            # is_voc_id first: it also rules out unhashable values before the set lookups.
            if not is_voc_id(image_id) or image_id not in split_ids or image_id in labels:
                return None
            if type(label) is not int or label not in mapped:  # type(): True is not a label
                return None
            labels[image_id] = label
        return labels

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path = self.voc.images[self.indices[index]]
        image: Any = load_for(self.transform, Path(path), self.image_type, self.decode_size)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Any, int]]:
        samples = []
        for position, index in enumerate(indices):
            with seeding.each_sample(position):
                samples.append(self[index])
        return samples

    @property
    def image_ids(self) -> list[str]:
        """The VOC image ids kept, in sample order."""
        return [self.voc.ids[i] for i in self.indices]

    def __repr__(self) -> str:
        return (
            f"FilteredVOCtoCIFAR(root={str(self.voc.root)!r}, year={self.voc.year!r}, "
            f"image_set={self.voc.image_set!r}, n={len(self)})"
        )
