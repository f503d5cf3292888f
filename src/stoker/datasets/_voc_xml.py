"""Parse VOC annotation XML with defusedxml into torchvision's nested dict."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

import defusedxml
import defusedxml.ElementTree

from stoker.errors import DatasetError, UnsafeDataError

__all__ = ["annotation_dict", "object_names", "parse_xml"]

MAX_DEPTH = 64
"""How deeply elements may nest in an annotation. Real VOC files are at most 5 levels deep; the
cap keeps hostile files from overflowing the stack of code that walks the tree recursively
(ours, a user's ``target_transform``, pickle when a worker sends the target back)."""


def parse_xml(path: Path) -> ET.Element:
    """The root element of ``path``; entity declarations, DTD tricks and bad XML refused.

    Every failure is a :class:`DatasetError` naming ``path`` (an :class:`UnsafeDataError` for
    what defusedxml refuses), whatever the parser raised underneath.
    """
    root = _parse(path)
    _refuse_deep_nesting(root, path)
    return root


def _parse(path: Path) -> ET.Element:
    """The root element of ``path`` as defusedxml parses it; every error named and wrapped."""
    try:
        root: ET.Element = defusedxml.ElementTree.parse(path).getroot()
        return root
    # DefusedXmlException is a ValueError: it must be caught before the clause below.
    except defusedxml.DefusedXmlException as exc:
        raise UnsafeDataError(
            f"{path}: refused XML ({type(exc).__name__}: {exc}); VOC annotations declare no "
            "entities or external references, so this file is not a genuine one"
        ) from exc
    except ET.ParseError as exc:
        raise DatasetError(
            f"{path}: not well-formed XML ({exc}); the annotation is truncated or corrupt, "
            "extract or download the dataset again"
        ) from exc
    except (LookupError, ValueError) as exc:
        # The encoding named in the XML declaration is unknown to Python (LookupError), or one
        # that expat cannot use (ValueError, UnicodeError): multi-byte, or not a text codec.
        raise DatasetError(
            f"{path}: cannot decode the annotation: its XML declaration names an encoding the "
            f"parser cannot use ({type(exc).__name__}: {exc}); the file is corrupt or not a "
            "genuine VOC annotation, extract or download the dataset again"
        ) from exc
    except FileNotFoundError as exc:
        raise DatasetError(
            f"{path}: annotation file is missing; the dataset is incomplete, extract or "
            "download it again"
        ) from exc
    except OSError as exc:
        raise DatasetError(
            f"{path}: cannot read the annotation ({exc}); check that it is a readable file"
        ) from exc


def _refuse_deep_nesting(root: ET.Element, path: Path) -> None:
    """DatasetError naming ``path`` if its elements nest deeper than :data:`MAX_DEPTH`."""
    # An explicit stack, not recursion: the point is to survive a file nested 100k deep.
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise DatasetError(
                f"{path}: elements nest more than {MAX_DEPTH} levels deep; VOC annotations "
                "are at most 5 deep, so this file is not a genuine one, extract or download "
                "the dataset again"
            )
        stack.extend((child, depth + 1) for child in node)


def _to_dict(node: ET.Element) -> dict[str, Any]:
    # Recursive, as torchvision's: safe because parse_xml capped the depth at MAX_DEPTH.
    # torchvision's shape: repeated tags become lists, single ones values, a leaf its stripped
    # text; a leaf with no text at all vanishes from its parent.
    children = list(node)
    if not children:
        return {} if node.text is None else {node.tag: node.text.strip()}
    grouped: defaultdict[str, list[Any]] = defaultdict(list)
    for child in children:
        for tag, value in _to_dict(child).items():
            grouped[tag].append(value)
    if node.tag == "annotation":
        # Always a list, however many objects (even none).
        grouped["object"] = [grouped["object"]]
    return {node.tag: {tag: vals[0] if len(vals) == 1 else vals for tag, vals in grouped.items()}}


def annotation_dict(path: Path) -> dict[str, Any]:
    """The annotation at ``path`` as ``{"annotation": {...}}``, ``object`` always a list."""
    return _to_dict(parse_xml(path))


def object_names(path: Path) -> list[str]:
    """The ``name`` of each ``object`` in the annotation at ``path``, in document order."""
    root = parse_xml(path)
    return [(obj.findtext("name") or "").strip() for obj in root.findall("object")]
