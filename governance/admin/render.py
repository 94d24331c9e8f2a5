"""HTML fragments shared by the console's pages: a version's checks, a diff of changes and two versions side
by side."""

import json
from typing import Any

from django.utils.html import format_html, format_html_join

from governance.models import (
    Version,
)


def render_checks(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return "No checks for this kind."
    rows = [
        (c["name"], "passed" if c["passed"] else "FAILED", f"{f['severity']}: {f['path']} {f['message']}".strip())
        for c in checks
        for f in (c["findings"] or [{"severity": "", "path": "", "message": ""}])
    ]
    return format_html(
        '<table class="checks"><tr><th>check</th><th>result</th><th>finding</th></tr>{}</table>',
        format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
    )


def _side(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1)


def render_side_by_side(old: Version, new: Version, changes: list[dict[str, Any]]) -> str:
    if not changes:
        return format_html("<p>v{} and v{} have the same spec.</p>", old.number, new.number)
    rows = []
    for change in changes:
        if "lines" in change:
            before = "\n".join(line for line in change["lines"][2:] if not line.startswith("+"))
            after = "\n".join(line for line in change["lines"][2:] if not line.startswith("-"))
        else:
            before, after = _side(change["old"]), _side(change["new"])
        rows.append((change["path"] or "(whole spec)", change["change"], before, after))
    return format_html(
        '<table class="diff side-by-side"><tr><th>field</th><th>change</th><th>v{}</th><th>v{}</th></tr>{}</table>',
        old.number,
        new.number,
        format_html_join(
            "", "<tr><td><code>{}</code></td><td>{}</td><td><pre>{}</pre></td><td><pre>{}</pre></td></tr>", rows
        ),
    )


def render_diff(changes: list[dict[str, Any]]) -> str:
    if not changes:
        return "No changes."
    rows = []
    for change in changes:
        if "lines" in change:
            detail = format_html("<pre>{}</pre>", "\n".join(change["lines"]))
        else:
            detail = format_html(
                "<del>{}</del> → <ins>{}</ins>",
                json.dumps(change["old"], ensure_ascii=False),
                json.dumps(change["new"], ensure_ascii=False),
            )
        rows.append((change["path"] or "(whole spec)", change["change"], detail))
    return format_html(
        '<table class="diff"><tr><th>field</th><th>change</th><th>before → after</th></tr>{}</table>',
        format_html_join("", "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>", rows),
    )
