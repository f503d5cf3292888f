"""An epoch begins when iteration begins, in every mode (the first check: every dataset kind).

torch's ``num_workers=0`` loader draws its order at the first ``next()``: an epoch set between
``iter()`` and that ``next()`` — by ``loader.set_epoch``, or by ``sampler.set_epoch`` as
Lightning calls it on resume — is the epoch the iterator runs, its order and (stoker's) every
sample's ``sample_rng``. Setting the epoch the iterator already drew changes nothing, and a
state saved after an epoch's last batch resumes an empty rest unless an epoch is set first.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch.utils.data

from tests.contracts.modes import (
    as_comparable,
    combinations,
    indices_of,
    make_loader,
    mode_params,
)

MAP_PAIRS = [p for p in combinations(spawn_kinds=("augmenting",)) if "iterable" not in p.id]
# Where a pass is planned does not depend on how samples are fetched: the checks after the
# first run with the kind whose batches carry the epoch (sample_rng noise), over every mode but
# spawn, whose runner is the persistent one (the first check and torch's sampler's cover it).
AUGMENTING = [p for p in MAP_PAIRS if p.id.endswith("-augmenting") and p.id != "spawn-augmenting"]


def _reference_epochs(kind: str, first: int, count: int) -> list[Any]:
    reference = make_loader("in-process", kind)
    reference.set_epoch(first)
    return [as_comparable(list(reference), kind) for _ in range(count)]


@pytest.mark.parametrize("setter", ["loader", "sampler"])
@pytest.mark.parametrize(("mode", "kind"), MAP_PAIRS)
def test_an_epoch_set_after_iter_is_the_epoch_iterated(mode: str, kind: str, setter: str) -> None:
    three, four = _reference_epochs(kind, 3, 2)
    loader = make_loader(mode, kind)
    iterator = iter(loader)
    (loader if setter == "loader" else loader.sampler).set_epoch(3)
    assert as_comparable(list(iterator), kind) == three, "not epoch 3's batches"
    assert as_comparable(list(loader), kind) == four, "the next pass is not epoch 4"


STREAM_MODES = mode_params(["in-process", "fresh", "persistent", "spawn"])


@pytest.mark.parametrize("epoch", [0, 3])
@pytest.mark.parametrize("mode", STREAM_MODES)
def test_a_stream_loaders_epoch_set_after_iter(mode: str, epoch: int) -> None:
    """A stream has no sampler: loader.set_epoch(n) after iter(), and n == the drawn epoch."""
    expected, following = _reference_epochs("iterable", epoch, 2)
    loader = make_loader(mode, "iterable")
    iterator = iter(loader)
    loader.set_epoch(epoch)
    assert as_comparable(list(iterator), "iterable") == expected
    assert as_comparable(list(loader), "iterable") == following


@pytest.mark.parametrize(("mode", "kind"), AUGMENTING)
def test_setting_the_epoch_already_drawn_changes_nothing(mode: str, kind: str) -> None:
    """Lightning's order on every fit: iter(loader), then sampler.set_epoch(0)."""
    zero, one = _reference_epochs(kind, 0, 2)
    loader = make_loader(mode, kind)
    iterator = iter(loader)
    loader.sampler.set_epoch(0)
    loader.batch_sampler.sampler.set_epoch(0)  # Lightning calls both; here they are one
    assert as_comparable(list(iterator), kind) == zero
    assert as_comparable(list(loader), kind) == one, "epoch 0 repeated"


@pytest.mark.parametrize("mode", mode_params())
def test_torchs_distributed_sampler_set_after_iter_deals_as_torchs_loader(mode: str) -> None:
    """The order torch's loader gives for a DistributedSampler epoch set after iter()."""

    def shard() -> torch.utils.data.DistributedSampler[int]:
        return torch.utils.data.DistributedSampler(range(30), num_replicas=2, rank=1, seed=2)

    torch_loader = torch.utils.data.DataLoader(list(range(30)), batch_size=4, sampler=shard())
    torch_iterator = iter(torch_loader)
    torch_loader.sampler.set_epoch(1)  # type: ignore[union-attr]
    expected = [int(i) for batch in torch_iterator for i in batch]
    loader = make_loader(mode, "per-sample", n=30, batch_size=4, sampler=shard())
    iterator = iter(loader)
    loader.sampler.set_epoch(1)
    assert indices_of(list(iterator)) == expected


def _state_after_the_last_batch(mode: str, kind: str) -> dict[str, Any]:
    loader = make_loader(mode, kind)
    iterator = iter(loader)
    for _ in range(len(loader)):
        next(iterator)
    return loader.state_dict()  # every batch delivered, StopIteration not yet reached


@pytest.mark.parametrize(("mode", "kind"), AUGMENTING)
def test_a_state_after_an_epochs_last_batch_resumes_an_empty_rest(mode: str, kind: str) -> None:
    """A plain loop resumed from it runs the rest of epoch 0 (nothing), then epoch 1."""
    (one,) = _reference_epochs(kind, 1, 1)
    loader = make_loader(mode, kind)
    loader.load_state_dict(_state_after_the_last_batch(mode, kind))
    assert list(loader) == []
    assert as_comparable(list(loader), kind) == one


@pytest.mark.parametrize(("mode", "kind"), AUGMENTING)
def test_a_state_after_an_epochs_last_batch_then_set_epoch_runs_that_epoch(
    mode: str, kind: str
) -> None:
    """Lightning's resume from the checkpoint of an epoch's last step: load, iter(), then
    sampler.set_epoch(1); the iterator must run epoch 1, not the empty rest of epoch 0."""
    one, two = _reference_epochs(kind, 1, 2)
    loader = make_loader(mode, kind)
    loader.load_state_dict(_state_after_the_last_batch(mode, kind))
    iterator = iter(loader)
    loader.sampler.set_epoch(1)
    assert as_comparable(list(iterator), kind) == one
    assert as_comparable(list(loader), kind) == two
