"""pin(): CPU tensors are page-locked; tensors already on a device are left where they are."""

from __future__ import annotations

import torch

from stoker.loader._pin import pin


def test_tensors_on_a_device_are_left_alone_and_containers_kept() -> None:
    """A batch already on a device (here the meta device) has nothing to pin: pin returns it."""
    on_device = torch.empty(4, 3, device="meta")
    batch = {"images": on_device, "pair": (on_device, 3), "names": ["a"]}
    pinned = pin(batch)
    assert pinned["images"] is on_device and pinned["pair"][0] is on_device
    assert pinned["pair"][1] == 3 and pinned["names"] == ["a"]
    assert isinstance(pinned["pair"], tuple)
