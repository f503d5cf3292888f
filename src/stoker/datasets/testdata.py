"""Writers of each dataset's real on-disk format, for tests, demos and benchmarks.

Everything here produces what the official downloads contain, only smaller and random:
CIFAR batches pickled as Python 2 wrote them, a VOCdevkit tree with real JPEGs and XML
annotations, class-per-folder images, and tarballs of any of them with their MD5.
"""

from __future__ import annotations

import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import numpy.typing as npt
from PIL import Image

from stoker.datasets._download import file_md5
from stoker.datasets._json_cache import write_json
from stoker.datasets._py2pickle import Py2Str, dumps_py2
from stoker.datasets.image_folder import MAPPING_FILE
from stoker.datasets.voc import VOC_CLASSES
from stoker.datasets.voc_cifar import CIFAR10_CLASSES

__all__ = [
    "VOCObject",
    "VOCSample",
    "make_tarball",
    "photo_like_images",
    "random_cifar",
    "random_images",
    "random_voc_samples",
    "write_cifar10",
    "write_cifar100",
    "write_image_folder",
    "write_voc2007",
]

Images = npt.NDArray[np.uint8]
Labels = Sequence[int] | npt.NDArray[np.integer]
_CIFAR_SIDE_PX = 32
_CIFAR10_TRAIN_BATCHES = 5
_JPEG_QUALITY = 90


# (cells across the image, amplitude in uint8 levels): large soft shapes to fine grain. With
# quality-90 JPEG this gives 60-130 KB for 375×500, as photos of that size weigh.
_PHOTO_OCTAVES = ((4, 70.0), (16, 45.0), (64, 28.0), (256, 14.0))


def photo_like_images(
    n: int, height: int = 375, width: int = 500, *, seed: int = 0
) -> list[npt.NDArray[np.uint8]]:
    """``n`` RGB uint8 images with a photo's mix of smooth regions, edges and grain.

    Octaves of bicubically upsampled noise plus per-pixel noise of a per-image strength, so
    JPEG sizes (and decode times) vary as real photos' do; random noise alone compresses
    far worse and flat colours far better than photos.
    """
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        acc = np.full((height, width, 3), 128.0, np.float32)
        detail = rng.uniform(0.5, 1.3)  # busy or calm scenes: file sizes spread as photos' do
        for cells, amplitude in _PHOTO_OCTAVES:
            shape = (max(2, cells * height // 256), max(2, cells * width // 256), 3)
            small = rng.normal(0.0, 1.0, shape)
            levels = np.clip(small * 40.0 + 128.0, 0, 255).astype(np.uint8)
            up = Image.fromarray(levels).resize((width, height), Image.Resampling.BICUBIC)
            acc += (np.asarray(up, np.float32) - 128.0) * (amplitude * detail / 40.0)
        acc += rng.normal(0.0, 8.0 * detail**2, (height, width, 3))
        images.append(np.clip(acc, 0, 255).astype(np.uint8))
    return images


def random_images(n: int, height: int = 32, width: int = 32, *, seed: int = 0) -> Images:
    """``n`` random uint8 RGB images, N×H×W×3."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, height, width, 3), dtype=np.uint8)


def random_cifar(n: int, num_classes: int = 10, *, seed: int = 0) -> tuple[Images, np.ndarray]:
    """``n`` random 32×32 images and labels in ``[0, num_classes)``."""
    labels = np.random.default_rng(seed + 1).integers(0, num_classes, size=n)
    return random_images(n, _CIFAR_SIDE_PX, _CIFAR_SIDE_PX, seed=seed), labels


def _cifar_rows(images: Images, where: str) -> Images:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[1:] != (_CIFAR_SIDE_PX, _CIFAR_SIDE_PX, 3):
        raise ValueError(
            f"{where} images must be uint8 N×32×32×3, got {images.dtype} {images.shape}"
        )
    # The official layout: per image, the red plane, then green, then blue, each row-major.
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))


def _filenames(labels: Labels, classes: Sequence[str], offset: int) -> list[Py2Str]:
    return [
        Py2Str(f"{classes[int(label)]}_s_{offset + i:06d}.png".encode())
        for i, label in enumerate(labels)
    ]


def _write_pickle(path: Path, value: object) -> None:
    path.write_bytes(dumps_py2(value))


def write_cifar10(
    root: str | Path,
    train: tuple[Images, Labels] | None = None,
    test: tuple[Images, Labels] | None = None,
    classes: Sequence[str] = CIFAR10_CLASSES,
) -> Path:
    """Write ``root/cifar-10-batches-py`` (data_batch_1..5, test_batch, batches.meta).

    Each batch is a dict with ``data`` (N×3072 uint8, CHW planes), ``labels``, ``batch_label``
    and ``filenames``, pickled as the official Python 2 files are, so ``pickle.load`` with
    ``encoding="bytes"`` gives ``b"data"`` and torchvision's loader reads them too. The training
    set is split over five batches. ``None`` means 50 (train) or 10 (test) random images.
    Returns the folder written.
    """
    train = train if train is not None else random_cifar(50, len(classes), seed=1)
    test = test if test is not None else random_cifar(10, len(classes), seed=2)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rows = _cifar_rows(train[0], "train")
    labels = np.asarray(train[1], dtype=np.int64)
    bounds = np.linspace(0, len(rows), _CIFAR10_TRAIN_BATCHES + 1).astype(int)
    for number in range(1, _CIFAR10_TRAIN_BATCHES + 1):
        lo, hi = bounds[number - 1], bounds[number]
        batch = {
            Py2Str(b"batch_label"): Py2Str(f"training batch {number} of 5".encode()),
            Py2Str(b"labels"): [int(v) for v in labels[lo:hi]],
            Py2Str(b"data"): rows[lo:hi],
            Py2Str(b"filenames"): _filenames(labels[lo:hi], classes, int(lo)),
        }
        _write_pickle(folder / f"data_batch_{number}", batch)
    test_labels = [int(v) for v in test[1]]
    _write_pickle(
        folder / "test_batch",
        {
            Py2Str(b"batch_label"): Py2Str(b"testing batch 1 of 1"),
            Py2Str(b"labels"): test_labels,
            Py2Str(b"data"): _cifar_rows(test[0], "test"),
            Py2Str(b"filenames"): _filenames(test_labels, classes, 0),
        },
    )
    _write_pickle(
        folder / "batches.meta",
        {
            Py2Str(b"num_cases_per_batch"): int(bounds[1]),
            Py2Str(b"label_names"): [Py2Str(name.encode()) for name in classes],
            Py2Str(b"num_vis"): 3 * _CIFAR_SIDE_PX * _CIFAR_SIDE_PX,
        },
    )
    return folder


def write_cifar100(
    root: str | Path,
    train: tuple[Images, Labels, Labels] | None = None,
    test: tuple[Images, Labels, Labels] | None = None,
    fine_classes: Sequence[str] | None = None,
    coarse_classes: Sequence[str] | None = None,
) -> Path:
    """Write ``root/cifar-100-python`` (train, test, meta) with fine and coarse labels.

    ``train``/``test`` are (images N×32×32×3, fine labels, coarse labels); ``None`` means 50
    or 10 random ones. Class names default to ``fine_00``..``fine_99``, ``coarse_00``..``19``.
    """
    fine = list(fine_classes or [f"fine_{i:02d}" for i in range(100)])
    coarse = list(coarse_classes or [f"coarse_{i:02d}" for i in range(20)])

    def _random(n: int, seed: int) -> tuple[Images, Labels, Labels]:
        images, labels = random_cifar(n, len(fine), seed=seed)
        return images, labels, np.asarray(labels) % len(coarse)

    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, split in (("train", train or _random(50, 3)), ("test", test or _random(10, 4))):
        fine_labels = [int(v) for v in split[1]]
        _write_pickle(
            folder / name,
            {
                Py2Str(b"filenames"): _filenames(fine_labels, fine, 0),
                Py2Str(b"batch_label"): Py2Str(f"{name}ing batch 1 of 1".encode()),
                Py2Str(b"fine_labels"): fine_labels,
                Py2Str(b"coarse_labels"): [int(v) for v in split[2]],
                Py2Str(b"data"): _cifar_rows(split[0], name),
            },
        )
    _write_pickle(
        folder / "meta",
        {
            Py2Str(b"fine_label_names"): [Py2Str(n.encode()) for n in fine],
            Py2Str(b"coarse_label_names"): [Py2Str(n.encode()) for n in coarse],
        },
    )
    return folder


def make_tarball(src_dir: str | Path, dest: str | Path) -> tuple[Path, str]:
    """Archive ``src_dir`` (as its own top folder) into ``dest``; returns (path, hex MD5).

    Compression follows the name: ``.tar.gz``/``.tgz`` gzip, ``.tar`` none (VOC's tarballs).
    """
    src, out = Path(src_dir), Path(dest)
    out.parent.mkdir(parents=True, exist_ok=True)
    gzipped = out.name.endswith((".tar.gz", ".tgz"))
    with tarfile.open(out, "w:gz") if gzipped else tarfile.open(out, "w") as tar:
        tar.add(src, arcname=src.name)
    return out, file_md5(out)


@dataclass(frozen=True)
class VOCObject:
    """One annotated object: class name and pixel box (xmin, ymin, xmax, ymax), 1-based."""

    name: str
    bbox: tuple[int, int, int, int] = (1, 1, 10, 10)
    pose: str = "Unspecified"
    truncated: int = 0
    difficult: int = 0


@dataclass(frozen=True)
class VOCSample:
    """One image of a generated VOC tree: its id, split ("train"/"val"/"test"), objects, size."""

    image_id: str
    objects: tuple[VOCObject, ...] = field(default_factory=tuple)
    split: str = "train"
    width: int = 48
    height: int = 40


def random_voc_samples(
    n: int,
    *,
    seed: int = 0,
    max_objects: int = 3,
    splits: Sequence[str] = ("train", "val", "test"),
    classes: Sequence[str] = VOC_CLASSES,
) -> list[VOCSample]:
    """``n`` samples with 1..``max_objects`` random objects each, ids ``000001``...

    Each sample goes to a random split among ``splits``; boxes lie inside the image.
    """
    rng = np.random.default_rng(seed)
    samples = []
    for number in range(1, n + 1):
        width, height = (int(v) for v in rng.integers(16, 65, size=2))
        objects = []
        for _ in range(int(rng.integers(1, max_objects + 1))):
            xmin, ymin = int(rng.integers(1, width // 2)), int(rng.integers(1, height // 2))
            xmax, ymax = (
                int(rng.integers(xmin + 1, width + 1)),
                int(rng.integers(ymin + 1, height + 1)),
            )
            name = classes[int(rng.integers(len(classes)))]
            objects.append(
                VOCObject(name, (xmin, ymin, xmax, ymax), difficult=int(rng.integers(0, 2)))
            )
        split = splits[int(rng.integers(len(splits)))]
        samples.append(VOCSample(f"{number:06d}", tuple(objects), split, width, height))
    return samples


def _voc_xml(sample: VOCSample) -> str:
    objects = "".join(
        f"""	<object>
		<name>{escape(obj.name)}</name>
		<pose>{escape(obj.pose)}</pose>
		<truncated>{obj.truncated}</truncated>
		<difficult>{obj.difficult}</difficult>
		<bndbox>
			<xmin>{obj.bbox[0]}</xmin>
			<ymin>{obj.bbox[1]}</ymin>
			<xmax>{obj.bbox[2]}</xmax>
			<ymax>{obj.bbox[3]}</ymax>
		</bndbox>
	</object>
"""
        for obj in sample.objects
    )
    return f"""<annotation>
	<folder>VOC2007</folder>
	<filename>{escape(sample.image_id)}.jpg</filename>
	<source>
		<database>The VOC2007 Database</database>
		<annotation>PASCAL VOC2007</annotation>
		<image>flickr</image>
		<flickrid>stoker-testdata</flickrid>
	</source>
	<owner>
		<flickrid>stoker</flickrid>
		<name>?</name>
	</owner>
	<size>
		<width>{sample.width}</width>
		<height>{sample.height}</height>
		<depth>3</depth>
	</size>
	<segmented>0</segmented>
{objects}</annotation>
"""


def write_voc2007(
    root: str | Path, samples: int | Sequence[VOCSample] = 20, *, seed: int = 0
) -> Path:
    """Write ``root/VOCdevkit/VOC2007`` (JPEGImages, Annotations, ImageSets/Main) for ``samples``.

    An int asks for that many :func:`random_voc_samples`. As in the official tarballs,
    train.txt, val.txt and trainval.txt are written when there are train or val samples, and
    test.txt when there are test samples. Returns the VOC2007 folder.
    """
    chosen = random_voc_samples(samples, seed=seed) if isinstance(samples, int) else samples
    voc_root = Path(root) / "VOCdevkit" / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc_root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lists: dict[str, list[str]] = {}
    for sample in chosen:
        if sample.split not in ("train", "val", "test"):
            raise ValueError(f"VOCSample.split must be train, val or test, got {sample.split!r}")
        pixels = rng.integers(0, 256, size=(sample.height, sample.width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(
            voc_root / "JPEGImages" / f"{sample.image_id}.jpg", quality=_JPEG_QUALITY
        )
        (voc_root / "Annotations" / f"{sample.image_id}.xml").write_text(_voc_xml(sample))
        lists.setdefault(sample.split, []).append(sample.image_id)
        if sample.split != "test":
            lists.setdefault("trainval", []).append(sample.image_id)
    if "trainval" in lists:
        lists.setdefault("train", [])
        lists.setdefault("val", [])
    for name, ids in lists.items():
        (voc_root / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    return voc_root


def write_image_folder(
    root: str | Path,
    images_by_class: Mapping[str, Images] | None = None,
    *,
    ext: str = ".png",
    save_mapping: bool = True,
) -> Path:
    """Write ``root/<class>/<class>_<i><ext>`` for each class's N×H×W×3 uint8 images.

    ``None`` means three classes of four random 16×16 images. With ``save_mapping`` the
    label → class mapping (sorted class names) is saved as ``label_to_class.json``.
    """
    if images_by_class is None:
        images_by_class = {
            name: random_images(4, 16, 16, seed=i) for i, name in enumerate(("cat", "dog", "frog"))
        }
    folder = Path(root)
    for name, images in images_by_class.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i, pixels in enumerate(np.asarray(images)):
            Image.fromarray(pixels).save(folder / name / f"{name}_{i:04d}{ext}")
    if save_mapping:
        names = sorted(images_by_class)
        write_json(folder / MAPPING_FILE, {str(i): n for i, n in enumerate(names)})
    return folder
