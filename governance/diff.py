"""Field-by-field differences between two specs, line by line for long texts."""

import difflib
from typing import Any

from governance.registry import json_path

LONG_TEXT = 80  # characters; a string this long, or with a line break, is diffed line by line


def _is_long_text(value: Any) -> bool:
    return isinstance(value, str) and ("\n" in value or len(value) >= LONG_TEXT)


def _change(path: list[Any], change: str, old: Any, new: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": json_path(path), "change": change, "old": old, "new": new}
    if _is_long_text(old) or _is_long_text(new):
        entry["lines"] = list(
            difflib.unified_diff(
                (old or "").splitlines() if isinstance(old, str) else [],
                (new or "").splitlines() if isinstance(new, str) else [],
                fromfile="before",
                tofile="after",
                lineterm="",
            )
        )
    return entry


def spec_diff(old: Any, new: Any, path: list[Any] | None = None) -> list[dict[str, Any]]:
    """Every leaf that differs between ``old`` and ``new``: ``{path, change, old, new[, lines]}``.

    ``change`` is ``added``, ``removed`` or ``changed``. Objects are compared key by key and lists item
    by item; ``old=None`` (nothing released yet) reports everything in ``new`` as added.
    """
    path = path or []
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[dict[str, Any]] = []
        for key in sorted(set(old) | set(new)):
            if key not in old:
                changes.append(_change([*path, key], "added", None, new[key]))
            elif key not in new:
                changes.append(_change([*path, key], "removed", old[key], None))
            else:
                changes += spec_diff(old[key], new[key], [*path, key])
        return changes
    if isinstance(old, list) and isinstance(new, list):
        changes = []
        for index in range(max(len(old), len(new))):
            if index >= len(old):
                changes.append(_change([*path, index], "added", None, new[index]))
            elif index >= len(new):
                changes.append(_change([*path, index], "removed", old[index], None))
            else:
                changes += spec_diff(old[index], new[index], [*path, index])
        return changes
    if old is None and path == []:
        return spec_diff({}, new) if isinstance(new, dict) else [_change(path, "added", None, new)]
    if old == new and type(old) is type(new):
        return []
    return [_change(path, "changed", old, new)]
