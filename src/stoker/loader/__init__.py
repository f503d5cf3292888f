"""Stage 4 of a batch's path: the consumer — DataLoader and its in-process and worker iterators."""

from stoker.loader.dataloader import DataLoader
from stoker.loader.device import DeviceLoader

__all__ = ["DataLoader", "DeviceLoader"]
