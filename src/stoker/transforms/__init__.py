"""Image transforms with torchvision v2's names and semantics, per sample or on whole batches.

Inputs are PIL images, :class:`Undecoded` image files, numpy arrays (channels-last: ``HWC``, or
an ``NHWC`` batch) and torch tensors (channels-first: ``CHW``, or an ``NCHW`` batch). On a batch,
random transforms draw their parameters per sample from :mod:`stoker.seeding`, so a sample gets
the same crop and flip whether it is transformed alone or with its batch.
"""

from stoker.transforms._base import Transform
from stoker.transforms._compose import Compose
from stoker.transforms._convert import ToDtype, ToImage, ToTensor
from stoker.transforms._crop import CenterCrop, CropParams, RandomCrop
from stoker.transforms._errors import TransformError
from stoker.transforms._flip import RandomHorizontalFlip
from stoker.transforms._normalize import Normalize, denormalize
from stoker.transforms._resize import RandomResizedCrop, Resize
from stoker.transforms._rows import Rows
from stoker.transforms._undecoded import Undecoded

__all__ = [
    "CenterCrop",
    "Compose",
    "CropParams",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "Resize",
    "Rows",
    "ToDtype",
    "ToImage",
    "ToTensor",
    "Transform",
    "TransformError",
    "Undecoded",
    "denormalize",
]
