"""Properties over many shapes of input: every index once per epoch, and resume from anywhere."""

from __future__ import annotations

import json

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import stoker
from stoker import seeding
from tests.strategies import batch_sizes, dataset_sizes, seeds


@settings(max_examples=60, deadline=None)
@given(
    n=dataset_sizes, batch=batch_sizes, drop_last=st.booleans(), shuffle=st.booleans(), seed=seeds
)
def test_every_index_exactly_once_per_epoch(
    n: int, batch: int, drop_last: bool, shuffle: bool, seed: int
) -> None:
    loader = stoker.DataLoader(
        list(range(n)), batch_size=batch, shuffle=shuffle, drop_last=drop_last, seed=seed
    )
    for _ in range(2):
        seen = [int(i) for b in loader for i in b]
        assert len(seen) == len(set(seen))
        expected = n - n % batch if drop_last else n
        assert len(seen) == expected and len(loader) == -(-expected // batch)
        if not shuffle:
            assert seen == list(range(expected))


@settings(max_examples=60, deadline=None)
@given(n=dataset_sizes, batch=batch_sizes, seed=seeds, data=st.data())
def test_resume_from_any_batch_gives_the_same_rest(
    n: int, batch: int, seed: int, data: st.DataObject
) -> None:
    def make() -> stoker.DataLoader:
        return stoker.DataLoader(list(range(n)), batch_size=batch, shuffle=True, seed=seed)

    reference = make()
    epoch0 = [b.tolist() for b in reference]
    epoch1 = [b.tolist() for b in reference]
    stop = data.draw(st.integers(0, len(epoch0)), label="stop after")
    original = make()
    iterator = iter(original)
    for _ in range(stop):
        next(iterator)
    state = json.loads(json.dumps(original.state_dict()))
    resumed = make()
    resumed.load_state_dict(state)
    assert [b.tolist() for b in resumed] == epoch0[stop:]
    assert [b.tolist() for b in resumed] == epoch1


@settings(max_examples=100, deadline=None)
@given(
    seed=seeds,
    epoch=st.integers(0, 10_000),
    indices=st.lists(st.integers(0, 2**40), min_size=1, max_size=64),
)
def test_sample_keys_depend_only_on_seed_epoch_index(
    seed: int, epoch: int, indices: list[int]
) -> None:
    together = seeding.sample_key(seed, epoch, indices)
    alone = np.array([seeding.sample_key(seed, epoch, [i])[0] for i in indices])
    assert np.array_equal(together, alone)
    draws = seeding.uniform(together, seeding.stream_id("test"))
    assert np.all((draws >= 0) & (draws < 1))
    ints = seeding.integers(together, 7, 0, 9)
    assert np.all((ints >= 0) & (ints < 9))


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=10),
    padding_value=st.integers(-5, 5),
    batch_first=st.booleans(),
)
def test_pad_collate_matches_torch_pad_sequence(
    lengths: list[int], padding_value: int, batch_first: bool
) -> None:
    sequences = [torch.arange(length) + 1 for length in lengths]
    padded, got_lengths = stoker.pad_collate(
        sequences, padding_value=padding_value, batch_first=batch_first
    )
    expected = torch.nn.utils.rnn.pad_sequence(
        sequences, batch_first=batch_first, padding_value=padding_value
    )
    assert torch.equal(padded, expected) and got_lengths.tolist() == lengths
