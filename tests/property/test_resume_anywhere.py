"""Hypothesis: save at any batch of any epoch, resume in another mode; the run is unchanged.

Bounded in CI; a long run:
``STOKER_FUZZ_EXAMPLES=300 python3 dev.py test tests/property/test_resume_anywhere.py``.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import torch
import torch.utils.data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stoker
from tests.contracts.modes import KINDS
from tests.helpers import assert_batches_equal

_EXAMPLES = int(os.environ.get("STOKER_FUZZ_EXAMPLES", "12"))

_MODES = st.sampled_from(
    [
        {"num_workers": 0},
        {"num_workers": 1},
        {"num_workers": 2},
        {"num_workers": 3, "prefetch_factor": 1},
        {"num_workers": 2, "persistent_workers": True},
        {"num_workers": 2, "worker_mode": "thread"},
    ]
)
_SAMPLERS = ["shuffle-seed", "shuffle-generator", "sequential-generator", "torch-random",
             "torch-batch", "plain-list", "stoker-batch"]  # fmt: skip


@st.composite
def runs(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(KINDS)))
    save_mode = draw(_MODES)
    if kind == "iterable":  # a stream resumes under the num_workers it was saved with
        save_mode = {k: v for k, v in save_mode.items() if k != "worker_mode"}
        load_mode = {"num_workers": save_mode["num_workers"]}
        sampler = "stream"
    else:
        load_mode = draw(_MODES)
        sampler = draw(st.sampled_from(_SAMPLERS))
    return {
        "kind": kind,
        "n": draw(st.integers(1, 30)),
        "batch_size": draw(st.integers(1, 6)),
        "drop_last": draw(st.booleans()),
        "sampler": sampler,
        "save_mode": save_mode,
        "load_mode": load_mode,
        "save_epoch": draw(st.integers(0, 2)),
        "save_at": draw(st.integers(0, 12)),  # clipped to the epoch's length, which is then "end"
        "epochs_after": draw(st.integers(1, 2)),
    }


def _loader(run: dict[str, Any], mode: dict[str, Any]) -> Any:
    n, size, drop = run["n"], run["batch_size"], run["drop_last"]
    dataset = KINDS[run["kind"]](n)
    options: dict[str, Any] = {"batch_size": size, "drop_last": drop, "seed": 9}
    sampler = run["sampler"]
    if sampler == "shuffle-seed":
        options["shuffle"] = True
    elif sampler in ("shuffle-generator", "sequential-generator"):
        del options["seed"]
        options["generator"] = torch.Generator().manual_seed(9)
        options["shuffle"] = sampler == "shuffle-generator"
    elif sampler == "torch-random":
        generator = torch.Generator().manual_seed(4)
        options["sampler"] = torch.utils.data.RandomSampler(dataset, generator=generator)
    elif sampler == "torch-batch":
        generator = torch.Generator().manual_seed(4)
        inner = torch.utils.data.RandomSampler(dataset, generator=generator)
        options = {"seed": 9, "batch_sampler": torch.utils.data.BatchSampler(inner, size, drop)}
    elif sampler == "plain-list":
        options["sampler"] = random.Random(2).sample(range(n), n)
    elif sampler == "stoker-batch":
        inner = stoker.RandomSampler(dataset, seed=3)
        options = {"seed": 9, "batch_sampler": stoker.BatchSampler(inner, size, drop)}
    return stoker.DataLoader(dataset, **options, **mode)


@settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs())
def test_a_resumed_run_delivers_the_uninterrupted_runs_batches(run: dict[str, Any]) -> None:
    epochs = run["save_epoch"] + 1 + run["epochs_after"]
    # A stream's batches interleave its workers' shards: its reference runs with those workers.
    reference = _loader(run, run["save_mode"] if run["kind"] == "iterable" else {})
    expected = [batch for _ in range(epochs) for batch in reference]
    saved = _loader(run, run["save_mode"])
    got = [batch for _ in range(run["save_epoch"]) for batch in saved]
    iterator = iter(saved)
    for _ in range(run["save_at"]):
        batch = next(iterator, None)
        if batch is None:  # past the epoch's end: the state is the end of the epoch
            break
        got.append(batch)
    state = json.loads(json.dumps(saved.state_dict()))
    del iterator
    resumed = _loader(run, run["load_mode"])
    resumed.load_state_dict(state)
    passes = run["epochs_after"] + (0 if state["epoch_done"] else 1)
    got += [batch for _ in range(passes) for batch in resumed]
    for loader in (reference, saved, resumed):
        loader.close()
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert_batches_equal(a, b)
