"""`report.html` of a run: per frame, what each stage did and how long it took, the pictures, and the
GigaCrowd metrics where the frame has truth; then the resolved configuration. Plain HTML, no scripts,
pictures linked by relative path so the report travels with the run directory."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

from schemas.layout import BIRDSEYE_FILE, MESHES_FILE, OVERLAY_FILE, SIDEVIEW_FILE, STAGES


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


def _count(by_stage: dict[str, list[str]]) -> int:
    return sum(len(v) for v in by_stage.values())


def _pass_line(p: dict[str, Any]) -> str:
    """One pass of `run` in words (a pass record of the scene manifest)."""
    ran, skipped = _count(p.get("ran", {})), _count(p.get("skipped", {}))
    failed, removed = p.get("failed", {}), p.get("removed", {})
    if ran == 0 and not failed and not removed:
        what = f"nothing to do ({skipped} unit(s) already complete)"
    else:
        what = f"{ran} unit(s) ran, {skipped} already complete, {len(failed)} frame(s) failed"
        if removed:
            what += f", rows of {len(removed)} frame(s) removed from persons/"
    return f"{what}; {float(p.get('seconds', 0.0)):.1f} s"


def _passes(passes: list[dict[str, Any]]) -> list[str]:
    """The header lines and the table of the passes of `run` (latest first)."""
    if not passes:
        return ["<p>No pass of <code>run</code> has finished yet.</p>"]
    latest = passes[-1]
    parts = [f"<p>Latest pass, started {html.escape(str(latest.get('started')))}: {_pass_line(latest)}.</p>"]
    made = [p for p in passes if _count(p.get("ran", {}))]
    if made and made[-1] is not latest:
        parts.append(
            f"<p>The results below were made by earlier passes; the last that did work started "
            f"{html.escape(str(made[-1].get('started')))} ({_pass_line(made[-1])}).</p>"
        )
    rows = []
    for p in reversed(passes):
        notes = [f"{k} FAILED: {v}" for k, v in p.get("failed", {}).items()]
        notes += [f"{k} rows removed: {v}" for k, v in p.get("removed", {}).items()]
        rows.append(
            f"<tr><td style='text-align:left'>{html.escape(str(p.get('started')))}</td>"
            f"<td style='text-align:left'>{html.escape(_pass_line(p))}</td>"
            f"<td style='text-align:left'>{html.escape('; '.join(notes))}</td></tr>"
        )
    parts.append(
        "<details><summary>Passes of <code>run</code> on this scene (latest first)</summary><table>"
        "<tr><th>started</th><th>what it did</th><th>failed or removed frames</th></tr>"
        + "".join(rows)
        + "</table></details>"
    )
    return parts


def _units_table(units: dict[str, dict[str, Any]]) -> str:
    """A frame's stages as its manifest recorded them: people, when, and how long."""
    rows = [
        f"<tr><td style='text-align:left'>{html.escape(stage)}</td>"
        f"<td>{_cell(rec.get('info', {}).get('people', ''))}</td>"
        f"<td style='text-align:left'>{html.escape(str(rec.get('finished', '')))}</td>"
        f"<td>{_cell(rec.get('info', {}).get('stage_s', ''))}</td>"
        f"<td>{_cell(rec.get('seconds', 0.0))}</td></tr>"
        for stage in STAGES
        if (rec := units.get(f"{stage}/frame"))
    ]
    return (
        "<table><tr><th>stage</th><th>people</th><th>finished</th>"
        "<th>seconds: stage start to the frame's result (fan-out tasks included)</th>"
        "<th>seconds of the frame's final unit</th></tr>" + "".join(rows) + "</table>"
    )


# What each picture shows, under it: a reader should not need the README to read them.
_CAPTIONS = {
    OVERLAY_FILE: "Detections (red boxes) and 2D keypoints (left limbs blue, right orange, centre green) on "
    "a thumbnail of the frame. The number over a box is the person's person_id in persons/.",
    MESHES_FILE: "The final 3D bodies projected onto the thumbnail, one colour per person, labelled with "
    "their person_id.",
    BIRDSEYE_FILE: "Everyone from above on the fitted ground plane, in metres, coloured by the support "
    "column (what each person stands on).",
    SIDEVIEW_FILE: "Height above the fitted ground plane against depth from the camera, with the camera's "
    "height above the plane.",
}


def _figure(path: str) -> str:
    """A picture (relative path), linked to itself at full size, with its caption."""
    name = path.rsplit("/", 1)[-1]
    plot = " class='plot'" if name in (BIRDSEYE_FILE, SIDEVIEW_FILE) else ""  # drawn to be read at 1:1
    p = html.escape(path)
    return (
        f"<figure><a href='{p}'><img{plot} src='{p}' alt='{p}'></a>"
        f"<figcaption>{html.escape(_CAPTIONS.get(name, name))} Click for full size.</figcaption></figure>"
    )


def render(
    scene: str, frames: list[FrameReport], config: dict[str, Any], passes: list[dict[str, Any]]
) -> str:
    """The report's HTML text; `passes`: the scene manifest's pass records, oldest first."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(scene)}: gigacrowd run report</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
        "img{max-width:680px;border:1px solid #ddd}img.plot{max-width:100%}"
        "figure{display:inline-block;vertical-align:top;margin:4px}figcaption{max-width:680px;font-size:90%}"
        "pre{background:#f7f7f7;padding:1em}"
        "</style>",
        "</head><body>",
        f"<h1>Run report: {html.escape(scene)}</h1>",
        f"<p>{len(frames)} frame(s), {sum(f.status == 'ok' for f in frames)} ok.</p>",
        *_passes(passes),
    ]
    for f in frames:
        parts.append(f"<h2>{html.escape(f.name)} <small>({html.escape(f.status)})</small></h2>")
        parts.append(_units_table(f.units))
        if f.metrics:
            head = "".join(f"<th>{html.escape(k)}</th>" for k in f.metrics)
            vals = "".join(f"<td>{_cell(v)}</td>" for v in f.metrics.values())
            parts.append(
                "<p>GigaCrowd metrics against the frame's truth:</p>"
                f"<table><tr>{head}</tr><tr>{vals}</tr></table>"
            )
        parts.extend(_figure(p) for p in f.pictures)
    parts.append("<h2>Configuration</h2><pre>" + html.escape(json.dumps(config, indent=2)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
