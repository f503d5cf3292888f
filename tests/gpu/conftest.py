"""The CLI tests' generated CIFAR data and torch-globals guard, for the CUDA `train` tests."""

from tests.cli.conftest import _torch_globals, shapes_data  # noqa: F401
