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


def parse_xml(path: Path) -> ET.Element:
    """The root element of ``path``; entity declarations, DTD tricks and bad XML refused."""
    try:
        root: ET.Element = defusedxml.ElementTree.parse(path).getroot()
        return root
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
    except FileNotFoundError as exc:
        raise DatasetError(
            f"{path}: annotation file is missing; the dataset is incomplete, extract or "
            "download it again"
        ) from exc


def _to_dict(node: ET.Element) -> dict[str, Any]:
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
