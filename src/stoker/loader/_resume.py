"""Resume without a sampler state: what a sampler needs to replay its epoch, and when it cannot.

A sampler with ``state_dict()``/``load_state_dict()`` (stoker's, or a user's) resumes itself. Any
other one — torch's ``SequentialSampler``, ``RandomSampler``, ``BatchSampler``, a list, a plain
iterable — is replayed: the resumed loader makes the epoch's iterator again and walks past the
batches the saved run consumed, as torchdata's ``StatefulDataLoader`` does. That is exact only if
the new iterator yields the same order, so:

* what a sampler draws its order from at ``iter()`` is saved at the start of each epoch and put
  back before the replay: a ``torch.Generator``'s state (torch's ``RandomSampler``,
  ``SubsetRandomSampler``, ``WeightedRandomSampler`` with ``generator=``) and an ``epoch``
  attribute (torch's ``DistributedSampler``, stoker's samplers inside torch's ``BatchSampler``);
* torch's random samplers without a generator draw from torch's global RNG, which no loader
  state can put back: a mid-epoch state of theirs is refused at ``load_state_dict``;
* for every other sampler the replay is checked: the saved state carries a digest of the
  indices the run consumed, the replay recomputes it, and a different order is refused at
  ``iter()`` instead of resuming with lost or repeated samples;
* a distributed sampler (one with ``rank`` and ``num_replicas``, as torch's) has a different
  order on every rank, and frameworks save one rank's loader state and load it on all
  (Lightning saves rank 0's): the digest is checked against a copy of the sampler set to the
  saved rank, and each rank then replays its own shard from the same restored epoch.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from array import array
from typing import Any

import torch
import torch.utils.data

from stoker.samplers.batch import BatchSampler

# torch's samplers that draw a fresh order from torch's global RNG when they have no generator.
_GLOBAL_RNG_SAMPLERS = (
    torch.utils.data.RandomSampler,
    torch.utils.data.SubsetRandomSampler,
    torch.utils.data.WeightedRandomSampler,
)


def resumes_itself(sampler: Any) -> bool:
    """Whether ``sampler`` (the loader's index sampler) restores its own position exactly."""
    if not (hasattr(sampler, "state_dict") and hasattr(sampler, "load_state_dict")):
        return False
    if isinstance(sampler, BatchSampler):  # stoker's: its position is its inner sampler's
        return resumes_itself(sampler.sampler)
    return True


def chain(sampler: Any) -> list[Any]:
    """The sampler and, for a batch sampler, the sampler it groups (where an order comes from)."""
    inner = getattr(sampler, "sampler", None)
    return [sampler] if inner is None or inner is sampler else [sampler, inner]


def _name(sampler: Any) -> str:
    kind = type(sampler)
    return f"{kind.__module__}.{kind.__qualname__}"


def describe(sampler: Any) -> str:
    """'stoker.samplers.batch.BatchSampler over mymodule.MySampler', for messages."""
    return " over ".join(_name(part) for part in chain(sampler))


def refusal(sampler: Any) -> str | None:
    """Why a replay of ``sampler``'s epoch cannot be exact, or None when it can be tried."""
    for part in chain(sampler):
        # stoker's RandomSampler subclasses torch's (frameworks check for torch's classes) but
        # without a generator draws each epoch's order from (seed, epoch): replayable.
        seeded = isinstance(getattr(part, "seed", None), int)
        if (
            isinstance(part, _GLOBAL_RNG_SAMPLERS)
            and getattr(part, "generator", None) is None
            and not seeded
        ):
            return (
                f"the sampler {_name(part)} has no generator: it draws each epoch's order "
                "from torch's global RNG at iter(), which a loader state cannot restore, so the "
                "rest of the epoch would come in another order (samples lost and repeated). "
                "Construct it with generator=torch.Generator().manual_seed(...), or use "
                "stoker.RandomSampler(seed=...) or shuffle=True with seed= on the DataLoader"
            )
    return None


def encode_generator(generator: torch.Generator) -> str:
    return base64.b64encode(generator.get_state().numpy().tobytes()).decode("ascii")


def decode_generator(generator: torch.Generator, encoded: str) -> None:
    raw = base64.b64decode(encoded)
    generator.set_state(torch.frombuffer(bytearray(raw), dtype=torch.uint8))


def epoch_start(sampler: Any) -> list[dict[str, Any]]:
    """What each sampler of the chain draws its order from, taken just before ``iter()``."""
    record: list[dict[str, Any]] = []
    for part in chain(sampler):
        generator = getattr(part, "generator", None)
        record.append(
            {
                "generator": encode_generator(generator)
                if isinstance(generator, torch.Generator)
                else None,
                "epoch": _int_attribute(part, "epoch"),
                "rank": _int_attribute(part, "rank"),
                "num_replicas": _int_attribute(part, "num_replicas"),
            }
        )
    return record


EpochMark = tuple[int | None, int | None]


def epoch_marks(sampler: Any) -> list[EpochMark]:
    """Each chain sampler's ``epoch`` and count of ``set_epoch`` calls (None where it has none).

    A changed mark means someone called ``set_epoch``: stoker's samplers count the calls,
    since their epoch also moves by itself at ``iter()``; other samplers' epoch moves only by
    ``set_epoch`` (torch's DistributedSampler), and a changed value says so.
    """
    if sampler is None:
        return []
    return [
        (_int_attribute(part, "epoch"), _int_attribute(part, "epochs_set"))
        for part in chain(sampler)
    ]


def first_epoch(marks: list[EpochMark]) -> int | None:
    """The epoch of the first sampler in the chain that has one."""
    return next((epoch for epoch, _ in marks if epoch is not None), None)


def generator_states(sampler: Any) -> list[tuple[torch.Generator, torch.Tensor]]:
    """Each chain sampler's ``torch.Generator`` with its state now (to put back later)."""
    if sampler is None:
        return []
    found: list[tuple[torch.Generator, torch.Tensor]] = []
    for part in chain(sampler):
        generator = getattr(part, "generator", None)
        if isinstance(generator, torch.Generator) and all(g is not generator for g, _ in found):
            found.append((generator, generator.get_state()))
    return found


def set_chain_epochs(sampler: Any, marks: list[EpochMark]) -> None:
    """Put each chain sampler's ``epoch`` back to ``marks``'s (its call count unchanged)."""
    if sampler is None:
        return
    for part, (epoch, _) in zip(chain(sampler), marks, strict=True):
        if epoch is not None:
            part.epoch = epoch


def _int_attribute(part: Any, name: str) -> int | None:
    value = getattr(part, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_own_rank(sampler: Any, record: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``record`` (another rank's epoch start) with this chain's ranks: what this rank saves."""
    return [
        {**saved, "rank": _int_attribute(part, "rank")}
        for part, saved in zip(chain(sampler), record, strict=True)
    ]


def as_saved_rank(sampler: Any, record: list[dict[str, Any]]) -> Any | None:
    """A copy of ``sampler``'s chain dealing the saved rank's shard; None if that is this one.

    The copy shares any generator with the original: replay it before the restored original.
    """
    parts = chain(sampler)
    if not any(
        saved.get("rank") is not None and saved["rank"] != getattr(part, "rank", None)
        for part, saved in zip(parts, record, strict=True)
    ):
        return None
    copies = [copy.copy(part) for part in parts]
    for part, saved in zip(copies, record, strict=True):
        if saved.get("rank") is None:
            continue
        here = getattr(part, "num_replicas", None)
        if here != saved.get("num_replicas"):
            raise ValueError(
                f"this loader state was saved on {saved.get('num_replicas')} ranks, and this "
                f"loader's sampler {_name(part)} deals over {here}; a sampler without a state "
                "cannot resume an epoch at another world size exactly. Resume on "
                f"{saved.get('num_replicas')} ranks, or use stoker.DistributedSampler, whose "
                "state resumes at any world size"
            )
        part.rank = saved["rank"]
    if len(copies) == 2:
        copies[0].sampler = copies[1]
    return copies[0]


def restore_epoch_start(sampler: Any, record: list[dict[str, Any]]) -> None:
    """Put back what :func:`epoch_start` took, so the next ``iter()`` yields the same order."""
    parts = chain(sampler)
    if len(parts) != len(record):
        raise ValueError(
            f"this loader state was saved with {len(record)} nested sampler(s), this loader's "
            f"{describe(sampler)} has {len(parts)}; build the loader as the saved run did"
        )
    for part, saved in zip(parts, record, strict=True):
        generator = getattr(part, "generator", None)
        if saved.get("generator") is not None:
            if not isinstance(generator, torch.Generator):
                raise ValueError(
                    f"this loader state holds a torch.Generator state for {_name(part)}, "
                    "whose generator is None here; construct it with generator= as the saved "
                    "run did"
                )
            decode_generator(generator, saved["generator"])
        if saved.get("epoch") is not None:
            if hasattr(part, "set_epoch"):
                part.set_epoch(int(saved["epoch"]))
            else:
                part.epoch = int(saved["epoch"])


def chain_digest(digest: str, indices: Any) -> str:
    """``digest`` extended by one consumed batch's indices: 16 hex digits, the same everywhere."""
    keys = indices if isinstance(indices, list | tuple) else [indices]
    try:
        data = array("q", keys).tobytes()  # ints (and numpy or 0-d tensor ints, by __index__)
    except (TypeError, ValueError, OverflowError):  # keys that are not integers: their repr
        data = repr(list(keys)).encode()
    return hashlib.blake2b(bytes.fromhex(digest) + data, digest_size=8).hexdigest()
