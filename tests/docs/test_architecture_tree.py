"""docs/architecture.md's module list names every module and folder of src/stoker, and nothing else.

The page tells a reader where each stage of a batch's path lives; a module added, moved or
removed without the page following makes it wrong, so the page is checked against the tree.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "stoker"
PAGE = ROOT / "docs" / "architecture.md"
# Folders listed as a whole: the page names the folder, not every file in it.
_LISTED_AS_FOLDER = ("samplers", "transforms", "datasets", "models", "cli")


def _module_list() -> str:
    text = PAGE.read_text()
    section = text[text.index("## Where each stage lives in the source") :]
    return section[section.index("```") : section.index("```", section.index("```") + 3)]


def _names_in_tree() -> set[str]:
    names = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.name in ("__init__.py", "__main__.py"):
            continue
        if relative.parts[0] in _LISTED_AS_FOLDER:
            names.add(relative.parts[0] + "/")
        elif len(relative.parts) == 1:
            names.add(relative.name)
        else:
            names.add(relative.parts[0] + "/")
            names.add(relative.name)
    return names


def test_every_module_of_the_package_is_on_the_page() -> None:
    listing = _module_list()
    missing = sorted(name for name in _names_in_tree() if name not in listing)
    assert not missing, f"docs/architecture.md's module list does not name {missing}"


def test_the_page_names_no_module_that_is_gone() -> None:
    listed = set(re.findall(r"\b_?[a-z][a-z0-9_]*\.py\b", _module_list()))
    present = {path.name for path in PACKAGE.rglob("*.py")}
    gone = sorted(listed - present)
    assert not gone, f"docs/architecture.md lists {gone}, which src/stoker no longer has"
