"""One rank of a torchrun job training with Hugging Face Accelerate (gloo, CPU).

Run by tests/frameworks/test_accelerate_ddp.py as
``torchrun --nproc_per_node=2 _accelerate_rank.py OUT MODE [--stop K] [--resume DIR]``:

* ``prepare-torch`` / ``prepare-stoker``: ``accelerator.prepare(model, optimizer, loader)`` with a
  torch or a stoker loader (shuffle=True); a resumed run loads the state and skips the first K
  batches of epoch 0 with ``accelerator.skip_first_batches``, as Accelerate's docs do.
* ``native``: the stoker loader is not prepared; it shards with ``stoker.DistributedSampler``
  (rank and world from the accelerator) and is registered for checkpointing, so
  ``save_state``/``load_state`` carry its ``state_dict`` and a resumed run just iterates it.

The dataset returns ``(index, noise)``, noise from ``stoker.sample_rng()``; the stoker loader's
``batch_transform`` adds ``OFFSET`` to the indices. With ``--stop K`` the job stops after K steps
of epoch 0 and saves ``accelerator.save_state(OUT/state)``. Rank 0 writes ``OUT/seen.json``:
{"ranks": {rank: [[epoch, [indices], [noise]] per batch]}, "types": ...}.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.utils.data
from accelerate import Accelerator
from accelerate.utils import set_seed

import stoker

N = 24  # 6 batches of 4: 3 a rank, no padding
BATCH = 4
EPOCHS = 2
SEED = 5
OFFSET = 1000


class Noisy(stoker.Dataset):  # type: ignore[misc]
    """``dataset[i]`` is ``(i, noise)``: noise from the sample's stoker RNG."""

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> tuple[int, int]:
        return int(i), int(stoker.sample_rng().integers(2**31))


def shift(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    return [batch[0] + OFFSET, batch[1]]


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("mode", choices=["prepare-torch", "prepare-stoker", "native"])
    parser.add_argument("--stop", type=int, default=None)
    parser.add_argument("--resume", type=Path, default=None)
    parser.add_argument("--skip", type=int, default=0)
    args = parser.parse_args()

    accelerator = Accelerator(cpu=True)
    data = Noisy()
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loader: Any
    if args.mode == "native":
        sampler = stoker.DistributedSampler(
            data, num_replicas=accelerator.num_processes, rank=accelerator.process_index, seed=SEED
        )
        loader = stoker.DataLoader(
            data, batch_size=BATCH, sampler=sampler, seed=SEED, batch_transform=shift
        )
        model, optimizer = accelerator.prepare(model, optimizer)
        accelerator.register_for_checkpointing(loader)
    else:
        if args.mode == "prepare-torch":
            loader = torch.utils.data.DataLoader(data, batch_size=BATCH, shuffle=True)
        else:
            loader = stoker.DataLoader(
                data, batch_size=BATCH, shuffle=True, seed=SEED, batch_transform=shift
            )
        set_seed(0)  # Accelerate seeds the shared shuffle generator from torch's global RNG
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    types = {
        "prepared": f"{type(loader).__module__}.{type(loader).__qualname__}",
        "class": f"{loader.__class__.__module__}.{loader.__class__.__qualname__}",
        "base": type(getattr(loader, "base_dataloader", loader)).__qualname__,
    }
    if args.resume is not None:
        accelerator.load_state(str(args.resume))

    seen: list[list[Any]] = []
    for epoch in range(EPOCHS):
        epoch_loader = loader
        if epoch == 0 and args.skip:
            epoch_loader = accelerator.skip_first_batches(loader, args.skip)
        for step, (index, noise) in enumerate(epoch_loader):
            seen.append([epoch, index.tolist(), noise.tolist()])
            loss = model(index.float()[:, None]).sum() * 0.0
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            if epoch == 0 and args.stop is not None and step + 1 == args.stop:
                break
        if args.stop is not None:
            accelerator.save_state(str(args.out / "state"))
            break

    everyone: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, seen)
    if accelerator.is_main_process:
        result = {"ranks": dict(enumerate(everyone)), "types": types}
        (args.out / "seen.json").write_text(json.dumps(result))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
