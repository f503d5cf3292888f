"""One rank of a torchrun job: epochs of a stoker DataLoader over DistributedSampler shards.

Run by tests/distributed/test_torchrun_sampler.py as
``torchrun --nproc_per_node=N _shard_rank.py OUT N_SAMPLES EPOCHS [--stop E:K] [--resume STATE]``.
Every rank's indices are gathered; rank 0 writes ``OUT/seen.json`` ({epoch: [indices]}) and,
with ``--stop E:K``, the loader state after K steps of epoch E to ``OUT/state.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import torch.distributed as dist

import stoker

_COLLECTIVE_TIMEOUT = datetime.timedelta(seconds=30)  # a dead peer fails the test, not hangs it


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("n", type=int)
    parser.add_argument("epochs", type=int)
    parser.add_argument("--stop", default=None)
    parser.add_argument("--resume", type=Path, default=None)
    args = parser.parse_args()
    dist.init_process_group("gloo", timeout=_COLLECTIVE_TIMEOUT)
    rank = dist.get_rank()
    sampler = stoker.DistributedSampler(range(args.n), seed=11)  # world and rank from dist
    loader = stoker.DataLoader(list(range(args.n)), batch_size=4, sampler=sampler, seed=11)
    epoch = 0
    if args.resume is not None:
        state = json.loads(args.resume.read_text())
        loader.load_state_dict(state)
        epoch = int(state["epoch"])
    stop_epoch, stop_step = map(int, args.stop.split(":")) if args.stop else (-1, -1)
    seen: dict[int, list[int]] = {}
    while epoch < args.epochs:
        if args.resume is None or epoch != int(state["epoch"]):
            sampler.set_epoch(epoch)
        mine: list[int] = []
        for step, batch in enumerate(loader):
            mine += [int(i) for i in batch]
            if epoch == stop_epoch and step + 1 == stop_step:
                break
        everyone: list[list[int] | None] = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, mine)
        seen[epoch] = [i for part in everyone for i in part or []]
        if epoch == stop_epoch:
            if rank == 0:
                (args.out / "state.json").write_text(json.dumps(loader.state_dict()))
            break
        epoch += 1
    if rank == 0:
        (args.out / "seen.json").write_text(json.dumps(seen))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
