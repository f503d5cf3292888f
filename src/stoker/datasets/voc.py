"""PASCAL VOC detection (the VOCdevkit layout), annotations as torchvision's nested dict."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from stoker._shared_list import SharedList
from stoker.dataset import Dataset
from stoker.datasets._download import download_and_extract
from stoker.datasets._images import check_image_type, load_image
from stoker.datasets._voc_xml import annotation_dict
from stoker.errors import DatasetError

__all__ = ["VOC_CLASSES", "VOCDetection", "VOCResource", "is_voc_id"]

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
"""The 20 VOC object classes, in the official order."""


@dataclass(frozen=True)
class VOCResource:
    """One official VOC tarball: where it lives, its MD5, and the folder it unpacks to."""

    url: str
    filename: str
    md5: str
    base_dir: str


_OXFORD = "https://thor.robots.ox.ac.uk/pascal/VOC"
_RESOURCES: dict[str, VOCResource] = {
    "2007": VOCResource(
        f"{_OXFORD}/voc2007/VOCtrainval_06-Nov-2007.tar",
        "VOCtrainval_06-Nov-2007.tar",
        "c52e279531787c972589f7e41ab4ae64",
        "VOCdevkit/VOC2007",
    ),
    "2007-test": VOCResource(
        f"{_OXFORD}/voc2007/VOCtest_06-Nov-2007.tar",
        "VOCtest_06-Nov-2007.tar",
        "b6e924de25625d8de591ea690078ad9f",
        "VOCdevkit/VOC2007",
    ),
    "2012": VOCResource(
        f"{_OXFORD}/voc2012/VOCtrainval_11-May-2012.tar",
        "VOCtrainval_11-May-2012.tar",
        "6cd6e144f989b92b3379bac3b3de84fd",
        "VOCdevkit/VOC2012",
    ),
}

_IMAGE_SETS = ("train", "val", "trainval")

# Official ids look like 000005 (2007) or 2008_000008 (2012). Anything else, a path separator
# or '..' above all, would let a split file point the dataset at files outside its folder.
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")


def is_voc_id(value: object) -> bool:
    """Whether ``value`` is a string shaped like a VOC image id: letters, digits, ``_``, ``-``."""
    return isinstance(value, str) and _ID_PATTERN.fullmatch(value) is not None


def read_split_ids(split_file: Path) -> list[str]:
    """The image ids listed in ``split_file``, one a line; DatasetError for any other line.

    The ids become file names under the VOC folder, so each must be a plain VOC id.
    """
    try:
        lines = split_file.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{split_file}: not a text file of image ids ({exc}); the split file is corrupt, "
            "extract or download the dataset again"
        ) from exc
    ids = []
    for number, line in enumerate(lines, start=1):
        image_id = line.strip()
        if not image_id:
            continue
        if not is_voc_id(image_id):
            raise DatasetError(
                f"{split_file}, line {number}: {image_id[:200]!r} is not a VOC image id "
                "(letters, digits, '_' and '-' only, like 000005 or 2008_000008); the split "
                "file is corrupt or not a genuine one, extract or download the dataset again"
            )
        ids.append(image_id)
    return ids


def voc_resource(year: str, image_set: str) -> VOCResource:
    """The tarball holding ``image_set`` of ``year``; ValueError for unknown combinations."""
    valid = (*_IMAGE_SETS, "test") if year == "2007" else _IMAGE_SETS
    if image_set not in valid:
        raise ValueError(f"image_set must be one of {valid} for year {year!r}, got {image_set!r}")
    key = "2007-test" if image_set == "test" else year
    if key not in _RESOURCES:
        years = sorted({k.split("-")[0] for k in _RESOURCES})
        raise ValueError(f"year must be one of {years}, got {year!r}")
    return _RESOURCES[key]


class VOCDetection(Dataset[tuple[Any, Any]]):
    """PASCAL VOC detection under ``root/VOCdevkit/VOC<year>``, as torchvision reads it.

    Samples are ``(PIL RGB image, {"annotation": {...}})`` with ``object`` always a list;
    ``transforms(image, target)`` or ``transform``/``target_transform`` apply as in
    torchvision; ``ids``, ``images`` and ``annotations`` (``str`` paths, as in torchvision) are
    :class:`~stoker.SharedList` s, read by worker processes without copying. Annotations are
    parsed with defusedxml (entities and external references refused). ``download=True``
    fetches the official tarball for the split (override with ``url=``/``md5=``), checks its
    MD5 and extracts it safely.
    ``image_type="numpy"`` gives RGB uint8 HWC arrays instead of PIL images (see
    :class:`~stoker.datasets.ImageFolder`).
    """

    resources: ClassVar[dict[str, VOCResource]] = _RESOURCES

    def __init__(
        self,
        root: str | Path,
        year: str = "2007",
        image_set: str = "train",
        download: bool = False,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[Any], Any] | None = None,
        transforms: Callable[[Any, Any], Any] | None = None,
        *,
        url: str | None = None,
        md5: str | None = None,
        image_type: str = "pil",
    ):
        self.image_type = check_image_type(image_type, "VOCDetection")
        if transforms is not None and (transform is not None or target_transform is not None):
            raise ValueError(
                "pass either transforms or transform/target_transform, not both "
                "(transforms takes (image, target) together)"
            )
        self.root = Path(root).expanduser()
        self.year = str(year)
        self.image_set = image_set
        self.transform = transform
        self.target_transform = target_transform
        self.transforms = transforms
        resource = voc_resource(self.year, image_set)
        self.voc_root = self.root / resource.base_dir
        split_file = self.voc_root / "ImageSets" / "Main" / f"{image_set}.txt"
        if download and not split_file.is_file():
            checksum = md5 if md5 is not None or url is not None else resource.md5
            download_and_extract(url or resource.url, self.root, resource.filename, checksum)
        if not split_file.is_file():
            raise DatasetError(
                f"VOC{self.year} {image_set!r} not found: looked for {split_file}; pass "
                "download=True to fetch it, or point root at the folder containing VOCdevkit/"
            )
        ids = read_split_ids(split_file)
        self.ids = SharedList(ids)
        self.images = SharedList([str(self.voc_root / "JPEGImages" / f"{i}.jpg") for i in ids])
        self.annotations = SharedList(
            [str(self.voc_root / "Annotations" / f"{i}.xml") for i in ids]
        )

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image: Any = load_image(Path(self.images[index]), self.image_type, None)
        target: Any = annotation_dict(Path(self.annotations[index]))
        if self.transforms is not None:
            return self.transforms(image, target)  # type: ignore[no-any-return]
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __repr__(self) -> str:
        return (
            f"VOCDetection(root={str(self.root)!r}, year={self.year!r}, "
            f"image_set={self.image_set!r}, n={len(self)})"
        )
