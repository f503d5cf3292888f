"""Every ```python block in README.md and docs/*.md runs, against small generated data.

A block preceded by the line ``<!-- not-run -->`` (it needs Lightning, Accelerate, torchrun or
a GPU cluster) is skipped; docs/development.md documents the marker. The blocks of one page run
in order in one namespace, as a reader follows them, in a scratch folder holding ``./data`` with
CIFAR-10 and VOC 2007 trees written by ``stoker.datasets.testdata``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from stoker.datasets import testdata

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# The index, and pages about commands and design: shell blocks and diagrams, no Python.
_NO_PYTHON = {"docs/README.md", "docs/cli.md", "docs/performance.md", "docs/development.md",
              "docs/architecture.md"}  # fmt: skip
NOT_RUN = "<!-- not-run -->"
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
# The classes FilteredVOCtoCIFAR maps by default: every generated VOC image is then kept.
_MAPPED_VOC = ("aeroplane", "car", "bird", "cat", "dog")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, its first line number, and its source."""

    language: str
    line: int
    source: str
    runnable: bool


def blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text; ``runnable`` is False after ``<!-- not-run -->``."""
    found = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip().splitlines()
        marked = bool(before) and before[-1].strip() == NOT_RUN
        line = text.count("\n", 0, match.start()) + 2
        found.append(Block(match.group(1), line, match.group(2), not marked))
    return found


def _python_blocks(page: Path) -> list[Block]:
    return [block for block in blocks(page.read_text()) if block.language == "python"]


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A working folder with ./data/cifar-10-batches-py and ./data/VOCdevkit, small."""
    data = tmp_path / "data"
    testdata.write_cifar10(
        data, train=testdata.random_cifar(256, seed=0), test=testdata.random_cifar(64, seed=1)
    )
    voc = testdata.random_voc_samples(24, seed=2, max_objects=1, classes=_MAPPED_VOC)
    testdata.write_voc2007(data, voc)
    previous = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(previous)


def test_the_extractor_finds_blocks_and_honours_the_marker() -> None:
    text = "\n".join(
        [
            "```python", "x = 1", "```", "", NOT_RUN, "```python", "raise SystemExit", "```",
            "```bash", "ls", "```",
        ]
    )  # fmt: skip
    found = blocks(text)
    assert [(b.language, b.runnable, b.source) for b in found] == [
        ("python", True, "x = 1\n"),
        ("python", False, "raise SystemExit\n"),
        ("bash", True, "ls\n"),
    ]
    assert found[0].line == 2


def test_the_docs_have_runnable_examples_on_every_topic_page() -> None:
    assert len(PAGES) >= 5
    for page in PAGES:
        if page.relative_to(ROOT).as_posix() in _NO_PYTHON:
            continue
        assert any(b.runnable for b in _python_blocks(page)), f"{page.name}: no runnable example"


@pytest.mark.parametrize("page", PAGES, ids=[page.relative_to(ROOT).as_posix() for page in PAGES])
def test_every_python_block_runs(page: Path, scratch: Path) -> None:
    namespace: dict[str, object] = {"__name__": f"doc_{page.stem}"}
    np.random.seed(0)
    for block in _python_blocks(page):
        if not block.runnable:
            continue
        code = compile(block.source, f"{page.relative_to(ROOT)}:{block.line}", "exec")
        try:
            exec(code, namespace)
        except Exception as error:
            raise AssertionError(
                f"the example at {page.relative_to(ROOT)} line {block.line} failed: "
                f"{type(error).__name__}: {error}. Fix the example or the code; mark it "
                f"{NOT_RUN} only if it needs software the tests cannot run."
            ) from error
        finally:
            for value in list(namespace.values()):
                close = getattr(value, "close", None)
                if type(value).__name__ == "DataLoader" and callable(close):
                    close()
