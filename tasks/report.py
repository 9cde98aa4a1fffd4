"""`report.html` of a run: per frame, what each stage did and how long it took, the pictures, and the
GigaCrowd metrics where the frame has truth; then the resolved configuration. Plain HTML, no scripts,
pictures linked by relative path so the report travels with the run directory."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

from schemas.layout import STAGES


@dataclass
class FrameReport:
    """One frame: units (stage -> manifest record), status, pictures present (relative paths),
    metrics (name -> value) when truth exists."""

    name: str
    status: str
    units: dict[str, dict[str, Any]]
    pictures: list[str]
    metrics: dict[str, float] = field(default_factory=dict)


def _cell(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v))


def render(scene: str, frames: list[FrameReport], config: dict[str, Any], seconds: float) -> str:
    """The report's HTML text."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(scene)}: gigacrowd run report</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
        "img{max-width:680px;margin:4px;border:1px solid #ddd}pre{background:#f7f7f7;padding:1em}</style>",
        "</head><body>",
        f"<h1>Run report: {html.escape(scene)}</h1>",
        f"<p>{len(frames)} frame(s), {sum(f.status == 'ok' for f in frames)} ok; "
        f"run took {seconds:.1f} s.</p>",
    ]
    for f in frames:
        parts.append(f"<h2>{html.escape(f.name)} <small>({html.escape(f.status)})</small></h2>")
        rows = [
            f"<tr><td style='text-align:left'>{html.escape(stage)}</td>"
            f"<td>{_cell(rec.get('info', {}).get('people', ''))}</td>"
            f"<td>{_cell(rec.get('seconds', 0.0))}</td></tr>"
            for stage in STAGES
            if (rec := f.units.get(f"{stage}/frame"))
        ]
        parts.append(
            "<table><tr><th>stage</th><th>people</th><th>seconds of its frame unit</th></tr>"
            + "".join(rows)
            + "</table>"
        )
        if f.metrics:
            head = "".join(f"<th>{html.escape(k)}</th>" for k in f.metrics)
            vals = "".join(f"<td>{_cell(v)}</td>" for v in f.metrics.values())
            parts.append(
                "<p>GigaCrowd metrics against the frame's truth:</p>"
                f"<table><tr>{head}</tr><tr>{vals}</tr></table>"
            )
        parts.extend(
            f"<a href='{html.escape(p)}'><img src='{html.escape(p)}' alt='{html.escape(p)}'></a>"
            for p in f.pictures
        )
    parts.append("<h2>Configuration</h2><pre>" + html.escape(json.dumps(config, indent=2)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
