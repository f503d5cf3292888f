"""Bad input raises TransformError naming the transform, what it expected and what it got."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from stoker import transforms as T
from stoker.errors import StokerError


def check(exc: pytest.ExceptionInfo, transform: str, *fragments: str) -> None:
    message = str(exc.value)
    assert isinstance(exc.value, StokerError | ValueError | TypeError)
    assert message.startswith(f"{transform}: expected"), message
    assert "got" in message
    for fragment in fragments:
        assert fragment in message, message


def test_is_a_stoker_error_and_both_builtin_kinds():
    assert issubclass(T.TransformError, StokerError)
    assert issubclass(T.TransformError, ValueError) and issubclass(T.TransformError, TypeError)


@pytest.mark.parametrize(
    ("transform", "name"),
    [
        (T.RandomCrop(4), "RandomCrop"),
        (T.RandomHorizontalFlip(), "RandomHorizontalFlip"),
        (T.CenterCrop(4), "CenterCrop"),
        (T.Resize(4), "Resize"),
        (T.RandomResizedCrop(4), "RandomResizedCrop"),
        (T.ToImage(), "ToImage"),
        (T.ToDtype(torch.float32), "ToDtype"),
        (T.Normalize(0.5, 0.5), "Normalize"),
    ],
)
@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (np.zeros((2, 2, 8, 8, 3), np.float32), "(2, 2, 8, 8, 3)"),
        (np.zeros(8, np.float32), "(8,)"),
        (torch.zeros(1, 2, 3, 8, 8), "(1, 2, 3, 8, 8)"),
        (np.zeros((8, 8, 3), dtype=object), "object"),
        (np.zeros((8, 8, 3), dtype=bool), "bool"),
        (torch.zeros((3, 8, 8), dtype=torch.bool), "torch.bool"),
        ("an image", "str"),
    ],
)
def test_wrong_rank_and_dtype(transform, name, bad, fragment):
    with pytest.raises(T.TransformError) as exc:
        transform(bad)
    check(exc, name, fragment)


def test_channels_first_numpy_is_refused_with_a_hint():
    with pytest.raises(T.TransformError) as exc:
        T.RandomCrop(2)(np.zeros((3, 32, 32), np.uint8))
    check(exc, "RandomCrop", "(3, 32, 32)", "32 channels", "HWC")


def test_normalize_channel_count_mismatch():
    with pytest.raises(T.TransformError) as exc:
        T.Normalize([0.5] * 3, [0.2] * 3)(torch.zeros(4, 8, 8))
    check(exc, "Normalize", "3 channel", "(4, 8, 8)")


def test_normalize_needs_float():
    with pytest.raises(T.TransformError) as exc:
        T.Normalize(0.5, 0.5)(torch.zeros(3, 8, 8, dtype=torch.uint8))
    check(exc, "Normalize", "floating-point", "torch.uint8", "ToDtype")
    with pytest.raises(T.TransformError) as exc:
        T.Normalize(0.5, 0.5)(PIL.Image.new("RGB", (4, 4)))
    check(exc, "Normalize", "ToImage")


def test_crop_larger_than_image_without_padding():
    with pytest.raises(T.TransformError) as exc:
        T.RandomCrop(32)(np.zeros((28, 40, 3), np.uint8))
    check(exc, "RandomCrop", "(32, 32)", "(28, 40)", "pad_if_needed")
    with pytest.raises(T.TransformError) as exc:
        T.RandomCrop(40, padding=2)(torch.zeros(3, 32, 32))
    check(exc, "RandomCrop", "padded image size (36, 36)")


def test_fused_path_raises_the_same_crop_error():
    pipeline = T.Compose([T.RandomCrop(40), T.ToImage(), T.ToDtype(torch.float32, scale=True)])
    with pytest.raises(T.TransformError) as exc:
        pipeline(np.zeros((4, 32, 32, 3), np.uint8))
    check(exc, "RandomCrop", "(40, 40)")


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: T.RandomCrop(0), "RandomCrop"),
        (lambda: T.RandomCrop(8, padding=-1), "RandomCrop"),
        (lambda: T.RandomCrop(8, padding=(1, 2, 3)), "RandomCrop"),
        (lambda: T.RandomCrop(8, padding_mode="wrap"), "RandomCrop"),
        (lambda: T.RandomCrop(8, fill="black"), "RandomCrop"),
        (lambda: T.RandomHorizontalFlip(1.5), "RandomHorizontalFlip"),
        (lambda: T.Resize((1, 2, 3)), "Resize"),
        (lambda: T.Resize(8, interpolation="lanczos3"), "Resize"),
        (lambda: T.RandomResizedCrop(8, scale=(0.9, 0.1)), "RandomResizedCrop"),
        (lambda: T.ToDtype("float32"), "ToDtype"),
        (lambda: T.Normalize([0.5], [0.0]), "Normalize"),
    ],
)
def test_bad_arguments(make, name):
    with pytest.raises(T.TransformError) as exc:
        make()
    check(exc, name)


def test_to_dtype_refuses_pil_and_unsafe_float_to_int():
    with pytest.raises(T.TransformError) as exc:
        T.ToDtype(torch.float32)(PIL.Image.new("L", (2, 2)))
    check(exc, "ToDtype", "ToImage")
    with pytest.raises(T.TransformError) as exc:
        T.ToDtype(torch.int32, scale=True)(torch.zeros(3, 2, 2))
    check(exc, "ToDtype")
