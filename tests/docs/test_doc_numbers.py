"""Measured numbers in the docs come from benchmark result files linked next to them.

A paragraph (or table) of README.md or docs/*.md that quotes a ratio (``12.3x``) or a rate
(``45,000 samples/s``) must link a ``benchmarks/results/*.md`` file, and each number must occur
in one of the files it links: one current set of numbers, written by the benchmarks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_CODE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
_MEASURED = re.compile(
    r"(?<![\w.])\d[\d,]*(?:\.\d+)?[x×](?!\w)"  # a ratio: 1.84x or 1.84×
    r"|\d[\d,]*(?:\.\d+)? (?:samples|images)/s"  # a rate: 45,000 samples/s
)
_RESULTS_LINK = re.compile(r"\]\(([^)\s]*benchmarks/results/[\w-]+\.md)\)")
_MAX_README_BYTES = 15 * 1024


def measured_paragraphs(text: str) -> list[tuple[str, list[str]]]:
    """(paragraph, the measured numbers it quotes), code blocks left out.

    A table is read with the paragraph that introduces it (the one right before it), where its
    source is linked: a link cannot sit inside a table without becoming a row.
    """
    prose = _CODE.sub("", text)
    found = []
    previous = ""
    for paragraph in re.split(r"\n\s*\n", prose):
        numbers = _MEASURED.findall(paragraph)
        if numbers:
            table = paragraph.lstrip().startswith("|")
            found.append((f"{previous}\n\n{paragraph}" if table else paragraph, numbers))
        previous = paragraph
    return found


def test_the_scanner_sees_ratios_and_rates_but_not_shapes() -> None:
    text = "stoker is **2.5x** torch, 45,000 samples/s.\n\nA 3x32x32 image, 256x256.\n"
    assert measured_paragraphs(text) == [(text.split("\n\n")[0], ["2.5x", "45,000 samples/s"])]
    # the multiplication sign the docs write, and not in a 375×500 image size
    signed = "stoker is **1.66×** torch on 375×500 images.\n"
    assert measured_paragraphs(signed) == [(signed, ["1.66×"])]


def test_a_table_is_read_with_the_paragraph_that_introduces_it() -> None:
    text = "From [x](benchmarks/results/a.md):\n\n| a | b |\n|---|---|\n| 2.5× | 1 |\n"
    ((paragraph, numbers),) = measured_paragraphs(text)
    assert numbers == ["2.5×"] and "benchmarks/results/a.md" in paragraph


@pytest.mark.parametrize("page", PAGES, ids=[page.relative_to(ROOT).as_posix() for page in PAGES])
def test_every_measured_number_is_in_the_results_file_linked_next_to_it(page: Path) -> None:
    for paragraph, numbers in measured_paragraphs(page.read_text()):
        links = _RESULTS_LINK.findall(paragraph)
        where = f"{page.name}: {paragraph.strip()[:120]!r}"
        assert links, f"{where} quotes {numbers} without linking the results file they are from"
        files = [(page.parent / link).resolve() for link in links]
        missing = [str(path) for path in files if not path.is_file()]
        assert not missing, f"{where} links {missing}, which do not exist"
        sources = "\n".join(path.read_text() for path in files)
        stale = [number for number in numbers if number not in sources]
        assert not stale, f"{where}: {stale} are not in {links}; rerun the benchmark or requote"


def test_readme_is_a_front_page_without_internal_references() -> None:
    readme = (ROOT / "README.md").read_bytes()
    assert len(readme) <= _MAX_README_BYTES, f"README.md is {len(readme):,} bytes"
    text = readme.decode()
    # ../shared/torch-suite/ is named on purpose: the development section gives its command
    for internal in (r"\bissue \d", r"shared/(?!torch-suite/)", r"seed document", r"#\d+\b"):
        assert not re.search(internal, text, re.IGNORECASE), f"README mentions {internal!r}"
    assert "python3 dev.py demo" in text and "python3 dev.py test" in text


def test_every_page_linked_from_the_readme_and_docs_exists() -> None:
    for page in PAGES:
        for link in re.findall(r"\]\(([^)#\s]+\.(?:md|png))(?:#[^)]*)?\)", page.read_text()):
            if "://" in link:
                continue
            assert (page.parent / link).is_file(), f"{page.name} links {link}, which is missing"
