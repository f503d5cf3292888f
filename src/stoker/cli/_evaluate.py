"""Model predictions over a loader, and accuracy tables from them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["accuracy_table", "predict"]


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable[Any], device: torch.device) -> tuple[Any, Any]:
    """(predicted labels, true labels) for every sample of ``loader``, as CPU int64 tensors."""
    model.eval()
    predicted, truth = [], []
    for images, labels in loader:
        logits = model(images.to(device, non_blocking=True))
        predicted.append(logits.argmax(1).cpu())
        truth.append(torch.as_tensor(labels))
    if not predicted:
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, empty
    return torch.cat(predicted), torch.cat(truth)


def accuracy_table(predicted: Any, truth: Any, classes: Sequence[str]) -> tuple[float, str]:
    """Overall accuracy and a per-class table (classes with no sample are left out)."""
    correct = predicted == truth
    overall = float(correct.float().mean()) if len(truth) else 0.0
    width = max(len("class"), *(len(name) for name in classes))
    lines = [f"{'class':<{width}}  {'images':>6}  {'correct':>7}  {'accuracy':>8}"]
    for label, name in enumerate(classes):
        chosen = truth == label
        count = int(chosen.sum())
        if count:
            hits = int(correct[chosen].sum())
            lines.append(f"{name:<{width}}  {count:>6}  {hits:>7}  {hits / count:>8.1%}")
    lines.append(f"{'all':<{width}}  {len(truth):>6}  {int(correct.sum()):>7}  {overall:>8.1%}")
    return overall, "\n".join(lines)
