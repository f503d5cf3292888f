"""Hypothesis fuzz: random loader configurations, early ends, and an epoch set between
``iter()`` and the first ``next()``, against ``num_workers=0``.

Bounded in CI; a long run:
``STOKER_FUZZ_EXAMPLES=500 python3 dev.py test tests/contracts/test_fuzz.py``.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stoker
from tests.contracts.modes import KINDS, as_comparable, indices_of

_EXAMPLES = int(os.environ.get("STOKER_FUZZ_EXAMPLES", "12"))


@st.composite
def configurations(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(KINDS)))
    workers = draw(st.integers(0, 4))
    mode = "process" if kind == "iterable" else draw(st.sampled_from(["process", "thread"]))
    config: dict[str, Any] = {
        "kind": kind,
        "n": draw(st.integers(1, 45)),
        "num_workers": workers,
        "worker_mode": mode,
        "batch_size": draw(st.integers(1, 7)),
        "drop_last": draw(st.booleans()),
        "in_order": draw(st.booleans()),
        "sampler": "default"
        if kind == "iterable"
        else draw(st.sampled_from(["default", "shuffle", "user-random", "user-batch"])),
        "early_end": draw(st.none() | st.integers(0, 8)),
        # (who, epoch): loader.set_epoch or the sampler's set_epoch, after iter()
        "set_epoch": draw(
            st.none() | st.tuples(st.sampled_from(["loader", "sampler"]), st.integers(0, 3))
        ),
        "epochs": draw(st.integers(1, 2)),
    }
    if workers:
        config["persistent_workers"] = draw(st.booleans())
        config["prefetch_factor"] = draw(st.integers(1, 3))
    return config


def _loader(config: dict[str, Any], reference: bool) -> Any:
    dataset = KINDS[config["kind"]](config["n"])
    options: dict[str, Any] = {"seed": 5}
    sampler = config["sampler"]
    if sampler == "user-batch":
        inner = stoker.RandomSampler(dataset, seed=3)
        options["batch_sampler"] = stoker.BatchSampler(
            inner, config["batch_size"], config["drop_last"]
        )
    else:
        options["batch_size"] = config["batch_size"]
        options["drop_last"] = config["drop_last"]
        if sampler == "shuffle":
            options["shuffle"] = True
        elif sampler == "user-random":
            options["sampler"] = stoker.RandomSampler(dataset, seed=3)
    if not reference and config["num_workers"]:
        options["num_workers"] = config["num_workers"]
        options["worker_mode"] = config["worker_mode"]
        options["in_order"] = config["in_order"]
        options["persistent_workers"] = config["persistent_workers"]
        options["prefetch_factor"] = config["prefetch_factor"]
    return stoker.DataLoader(dataset, **options)


def _epoch(loader: Any, early_end: int | None, set_epoch: tuple[str, int] | None) -> list[Any]:
    if early_end is not None:  # a validation loop that stops early, then the real epoch
        for position, _batch in enumerate(loader):
            if position >= early_end:
                break
    iterator = iter(loader)
    if set_epoch is not None:  # as Lightning does: iter(), set_epoch, then the batches
        who, epoch = set_epoch
        target = loader if who == "loader" else getattr(loader.batch_sampler, "sampler", None)
        if hasattr(target, "set_epoch"):
            target.set_epoch(epoch)
    return list(iterator)


@settings(
    max_examples=_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(configurations())
def test_any_configuration_delivers_what_num_workers_0_delivers(config: dict[str, Any]) -> None:
    loader, reference = _loader(config, reference=False), _loader(config, reference=True)
    for _ in range(config["epochs"]):
        got = _epoch(loader, config["early_end"], config["set_epoch"])
        expected = _epoch(reference, config["early_end"], config["set_epoch"])
        kind = config["kind"]
        if kind == "iterable" and config["drop_last"] and config["num_workers"] > 1:
            # each worker drops its own partial last batch, as torch's workers do
            delivered = indices_of(got)
            assert len(set(delivered)) == len(delivered)
            assert set(delivered) <= set(range(config["n"]))
            assert all(len(batch[0]) == config["batch_size"] for batch in got)
        elif kind == "iterable":  # the workers' shards interleave: same samples, each once
            assert as_comparable(got, kind) == as_comparable(expected, kind)
        elif not config["in_order"]:  # the same batches, in the order they finished
            assert sorted(as_comparable(got, kind)) == sorted(as_comparable(expected, kind))
        else:
            assert as_comparable(got, kind) == as_comparable(expected, kind)
    loader.close()
