"""The review page of a ``clean`` run: thumbnails made by the workers, and ``report.html``.

Thumbnails (``Thumbnailer``) are made where the pixels already are: in the worker that
decoded the original and removed the mark, so the page never needs a second pass over the
originals. Per image, under ``DST/.clearmark/thumbs/`` (names hashed from the relative path,
so no file name ever needs escaping in a URL): a "before" JPEG with the detected regions drawn,
an "after" JPEG, and one zoom per region (before above after, or side by side for tall
regions). The record names them, relative to DST::

    "thumbs": {"before": ".clearmark/thumbs/3f/3f...-before.jpg", "after": "...",
               "zooms": ["...-zoom0.jpg", ...]}       # zooms[i] is regions[i]

The page (``render``) is one static file: inline CSS and JS, the entries as JSON in the page,
drawn by the script a page of cards at a time, so 100 000 entries stay responsive. Strings
reach the document only through ``html.escape`` (server side) or ``textContent`` (the
script). Nothing is fetched: a Content-Security-Policy allows local images and nothing else.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ._errors import ClearmarkError
from ._imageio import write_bytes_atomic
from ._regions import Region

Record = dict[str, Any]

THUMBS = ".clearmark/thumbs"
"""Where thumbnails go, relative to DST."""
RUNS = ".clearmark/runs.jsonl"
"""One line per finished ``clean`` run (when, how long, the threshold), relative to DST."""
REPORT = "report.html"
LOW_BAND = 0.15
"""An image is of low confidence when its score is within this of the detector threshold."""

_OUTLINE = ((0, 0, 0), (255, 214, 0))  # region boxes: a dark edge and a bright core, RGB
_GAP = 2  # px between the two halves of a zoom


# -- thumbnails (in the workers) ------------------------------------------------------------


@dataclass(frozen=True)
class Thumbnailer:
    """Writes an image's previews under ``dst/.clearmark/thumbs`` (atomically); picklable.

    side : long side of the grid thumbnails, px (the page shows them about 165 px wide).
    quality : their JPEG quality; with ``side``, about 3.7 KB a thumbnail of a busy photo.
    zoom_side : long side of one half of a zoom, px (a small region is shown 1:1).
    zoom_quality : the zooms' JPEG quality: higher, since removal quality is judged on them.
    max_zooms : zooms made per image (the first regions; a tiled mark can have 50).
    """

    dst: Path
    side: int = 192
    quality: int = 50
    zoom_side: int = 256
    zoom_quality: int = 65
    max_zooms: int = 6

    def unchanged(self, rel: str, rgb: np.ndarray) -> Record:
        """Previews of an image left as it was: a "before" thumbnail (``rgb`` may be a
        reduced decode)."""
        self._forget(rel, ["after", *(f"zoom{i}" for i in range(self.max_zooms))])
        return {"before": self._write(rel, "before", thumbnail(rgb, self.side))}

    def before(self, rel: str, rgb: np.ndarray, regions: Sequence[Region]
               ) -> tuple[Record, list[np.ndarray]]:
        """The "before" thumbnail with the regions drawn, and the zoom crops still to pair
        with the result's (see ``after``)."""
        thumb = thumbnail(rgb, self.side)
        draw_regions(thumb, regions, thumb.shape[1] / rgb.shape[1])
        crops = [zoom_crop(rgb, window, self.zoom_side)
                 for window in zoom_windows(regions[:self.max_zooms], rgb.shape)]
        return {"before": self._write(rel, "before", thumb)}, crops

    def after(self, rel: str, rgb: np.ndarray, regions: Sequence[Region],
              crops: Sequence[np.ndarray]) -> Record:
        """The "after" thumbnail, and each zoom: the ``before`` crop over the result's."""
        windows = zoom_windows(regions[:len(crops)], rgb.shape)
        zooms = [self._write(rel, f"zoom{i}", zoom_pair(crop, zoom_crop(rgb, window,
                                                                        self.zoom_side)),
                             self.zoom_quality)
                 for i, (crop, window) in enumerate(zip(crops, windows, strict=True))]
        self._forget(rel, [f"zoom{i}" for i in range(len(zooms), self.max_zooms)])
        return {"after": self._write(rel, "after", thumbnail(rgb, self.side)), "zooms": zooms}

    def cleaned(self, rel: str, before: np.ndarray, after: np.ndarray,
                regions: Sequence[Region]) -> Record:
        """Previews of a cleaned image: ``before`` then ``after``, in one go."""
        previews, crops = self.before(rel, before, regions)
        return {**previews, **self.after(rel, after, regions, crops)}

    def _forget(self, rel: str, parts: Sequence[str]) -> None:
        """Delete previews an earlier run made for this image that this one does not (it
        was cleaned then, or had more regions): the page never shows them, and a folder
        redone many times would keep them all."""
        for part in parts:
            (self.dst / thumb_name(rel, part)).unlink(missing_ok=True)

    def _write(self, rel: str, part: str, rgb: np.ndarray, quality: int | None = None) -> str:
        name = thumb_name(rel, part)
        write_bytes_atomic(self.dst / name, jpeg(rgb, quality or self.quality), durable=False)
        return name


def thumb_name(rel: str, part: str) -> str:
    """A preview's path relative to DST: hashed from the image's relative path, fanned out
    over 256 folders so none grows past a few thousand files."""
    digest = hashlib.blake2b(rel.encode("utf-8", "surrogateescape"), digest_size=10).hexdigest()
    return f"{THUMBS}/{digest[:2]}/{digest}-{part}.jpg"


def thumbnail(rgb: np.ndarray, side: int) -> np.ndarray:
    """``rgb`` (H x W x 3 uint8) shrunk so its long side is at most ``side`` (a copy).

    A large reduction first samples the image at 4x the target size, then averages: a 24 MP
    photo takes 2 ms instead of 36 (one thread, as in a worker), and looks the same.
    """
    height, width = rgb.shape[:2]
    scale = min(1.0, side / max(height, width))
    if scale == 1:
        return rgb.copy()
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if scale < 0.25:
        rgb = cv2.resize(rgb, (4 * size[0], 4 * size[1]), interpolation=cv2.INTER_NEAREST)
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def draw_regions(thumb: np.ndarray, regions: Iterable[Region], scale: float) -> None:
    """Outline each region (full-size coordinates, ``scale`` thumbnail px per px) in place."""
    height, width = thumb.shape[:2]
    for region in regions:
        x1, y1 = math.floor(region.x * scale), math.floor(region.y * scale)
        x2, y2 = math.ceil(region.x2 * scale) - 1, math.ceil(region.y2 * scale) - 1
        corners = ((min(max(x1, 0), width - 1), min(max(y1, 0), height - 1)),
                   (min(max(x2, 0), width - 1), min(max(y2, 0), height - 1)))
        for colour, thickness in zip(_OUTLINE, (3, 1), strict=True):
            cv2.rectangle(thumb, *corners, colour, thickness)


def zoom_windows(regions: Iterable[Region], shape: tuple[int, ...]) -> list[Region]:
    """The crop shown for each region: the region with some context, inside the image."""
    height, width = shape[:2]
    windows = []
    for region in regions:
        pad = max(8, round(0.3 * min(region.width, region.height)))
        window = region.padded(pad).clamped(width, height)
        windows.append(window if window is not None else Region(0, 0, width, height))
    return windows


def zoom_crop(rgb: np.ndarray, window: Region, side: int) -> np.ndarray:
    """The window's pixels, shrunk to a long side of at most ``side`` (1:1 when smaller)."""
    return thumbnail(rgb[window.y:window.y2, window.x:window.x2], side)


def zoom_pair(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Before and after crops of one window in one picture: stacked when the window is wide,
    side by side when it is tall, with a grey gap between."""
    wide = before.shape[1] >= before.shape[0]
    axis = 0 if wide else 1
    gap_shape = (_GAP, before.shape[1], 3) if wide else (before.shape[0], _GAP, 3)
    return np.concatenate([before, np.full(gap_shape, 128, np.uint8), after], axis=axis)


def jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 1])
    if not ok:
        raise ClearmarkError("could not encode a thumbnail")
    return encoded.tobytes()


# -- runs -----------------------------------------------------------------------------------


def record_run(dst: Path, *, seconds: float, threshold: float, seen: int, resumed: int) -> None:
    """Append one finished run to ``DST/.clearmark/runs.jsonl`` (the page shows the time)."""
    path = dst / RUNS
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(seconds, 3), "threshold": threshold, "seen": seen,
            "resumed": resumed}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


def load_runs(dst: Path) -> list[Record]:
    """The runs recorded so far (a torn or foreign line is skipped)."""
    try:
        lines = (dst / RUNS).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    runs = []
    for line in lines:
        try:
            run = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(run, dict) and _number(run.get("seconds")) is not None:
            runs.append(run)
    return runs


# -- the page -------------------------------------------------------------------------------


def write_report(dst: Path, records: Iterable[Record], *, threshold: float | None = None,
                 title: str | None = None) -> Path:
    """Write ``dst/report.html`` (atomically) for ``records``, the latest record per input.

    ``threshold`` is the detector's; by default the last recorded run's, else 0.5.
    """
    runs = load_runs(dst)
    if threshold is None:
        threshold = _number(runs[-1].get("threshold")) if runs else None
    page = render(list(records), runs, threshold=0.5 if threshold is None else threshold,
                  title=title or dst.resolve().name)
    target = dst / REPORT
    write_bytes_atomic(target, page.encode("utf-8", "replace"))
    return target


def summarize(records: Sequence[Record], threshold: float) -> dict[str, Any]:
    """The counts the page and the CLI show."""
    statuses = Counter(str(r.get("status")) for r in records)
    kinds: Counter[str] = Counter()
    kind_images: Counter[str] = Counter()
    methods: Counter[str] = Counter()
    for record in records:
        regions = _regions(record)
        kinds.update(str(r.get("kind")) for r in regions)
        kind_images.update({str(r.get("kind")) for r in regions})
        methods.update(str(r["method"]) for r in regions if r.get("method"))
    return {
        "seen": len(records), "watermarked": sum(bool(r.get("watermarked")) for r in records),
        "cleaned": statuses["cleaned"], "unchanged": statuses["copied"],
        "failed": statuses["failed"], "skipped": statuses["skipped"],
        "low": sum(is_low(r, threshold) for r in records),
        "worker_seconds": sum(_number(r.get("seconds")) or 0.0 for r in records),
        "kinds": {k: (n, kind_images[k]) for k, n in sorted(kinds.items())},
        "methods": dict(sorted(methods.items())),
    }


def is_low(record: Mapping[str, Any], threshold: float) -> bool:
    """Judged on thin evidence either way: cleaned, or left unchanged, with a score within
    ``LOW_BAND`` of the threshold."""
    score = _number(record.get("score"))
    return (record.get("status") in ("cleaned", "copied") and score is not None
            and abs(score - threshold) < LOW_BAND)


def render(records: Sequence[Record], runs: Sequence[Record], *, threshold: float,
           title: str) -> str:
    """The whole page, as text."""
    summary = summarize(records, threshold)
    data = {"entries": [_entry(r, threshold) for r in records], "pageSize": 48}
    parts = {
        "title": html.escape(title),
        "summary": _summary_html(summary, runs, threshold),
        "filters": _filters_html(summary),
        "data": _script_json(data),
        "style": _STYLE,
        "script": _SCRIPT,
    }
    return re.sub(r"\{\{(\w+)\}\}", lambda match: parts[match[1]], _PAGE)


def _entry(record: Mapping[str, Any], threshold: float) -> Record:
    """One card's data, kept short: 100 000 of them go into the page."""
    entry: Record = {"path": str(record.get("rel") or record.get("path") or "?"),
                     "status": str(record.get("status") or "failed"),
                     "score": _number(record.get("score"))}
    if record.get("error"):
        entry["error"] = str(record["error"])
    if is_low(record, threshold):
        entry["low"] = 1
    thumbs = record.get("thumbs")
    if not isinstance(thumbs, Mapping) or entry["status"] == "failed":  # a failure: its reason
        thumbs = {}
    entry.update({k: thumbs[k] for k in ("before", "after") if isinstance(thumbs.get(k), str)})
    zooms = thumbs.get("zooms")
    zooms = zooms if isinstance(zooms, list) else []
    entry["regions"] = [_region(r, zooms[i] if i < len(zooms) else None)
                        for i, r in enumerate(_regions(record))]
    return entry


def _region(region: Mapping[str, Any], zoom: Any) -> list[Any]:
    """[x, y, width, height, score, kind, method, zoom]"""
    return [*(_number(region.get(k)) for k in ("x", "y", "width", "height", "score")),
            str(region.get("kind", "")), str(region.get("method") or ""),
            zoom if isinstance(zoom, str) else None]


def _regions(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    regions = record.get("regions")
    return [r for r in regions if isinstance(r, Mapping)] if isinstance(regions, list) else []


def _number(value: Any) -> float | None:
    """A finite number, or None (for fields a journal line may lack or garble)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def _script_json(data: Any) -> str:
    """JSON that cannot end its <script> element or open a comment (every '<', '>' and '&'
    is escaped); ASCII, so any file name, even one that is not valid UTF-8, gets through."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_COUNTS = (("seen", "seen"), ("watermarked", "watermarked"), ("cleaned", "cleaned"),
           ("unchanged", "unchanged"), ("failed", "failed"), ("skipped", "skipped (not images)"),
           ("low", "low confidence"))
_FILTERS = (("all", "All", "seen"), ("cleaned", "Cleaned", "cleaned"),
            ("unchanged", "Unchanged", "unchanged"), ("failed", "Failed", "failed"),
            ("low", "Low confidence", "low"), ("skipped", "Skipped", "skipped"))


def _summary_html(summary: Mapping[str, Any], runs: Sequence[Record], threshold: float) -> str:
    counts = "".join(f'<div><dt>{html.escape(label)}</dt><dd id="count-{key}">{summary[key]}'
                     f"</dd></div>" for key, label in _COUNTS)
    kinds = "".join(f"<tr><td>{html.escape(kind)}</td><td>{regions}</td><td>{images}</td></tr>"
                    for kind, (regions, images) in summary["kinds"].items())
    methods = ", ".join(f"{html.escape(m)} {n}" for m, n in summary["methods"].items())
    low = (f"score within {LOW_BAND:g} of the detector threshold {threshold:g} "
           f"({max(0.0, threshold - LOW_BAND):.2f} &lt; score &lt; "
           f"{min(1.0, threshold + LOW_BAND):.2f}): cleaned, or left unchanged, on thin "
           "evidence; worth a look")
    return (f'<dl class="counts">{counts}</dl>'
            f'<p id="time">{_time_html(runs, summary["worker_seconds"])}</p>'
            + (f'<table class="kinds"><thead><tr><th>region kind</th><th>regions</th>'
               f"<th>images</th></tr></thead><tbody>{kinds}</tbody></table>" if kinds else "")
            + (f'<p id="methods">removal methods (regions): {methods}</p>' if methods else "")
            + f'<p class="note" id="low-note">Low confidence: {low}.</p>')


def _time_html(runs: Sequence[Record], worker_seconds: float) -> str:
    parts = []
    if runs:
        last = runs[-1]
        total = sum(_number(r.get("seconds")) or 0.0 for r in runs)
        parts.append(f"time: {_duration(total)}"
                     + (f" over {len(runs)} runs" if len(runs) > 1 else "")
                     + f", last run finished {html.escape(_when(last.get('finished')))}")
    parts.append(f"worker time {_duration(worker_seconds)}")
    parts.append(f"page written {_when(datetime.now(timezone.utc).isoformat())}")
    return "; ".join(parts)


def _when(stamp: Any) -> str:
    try:
        return datetime.fromisoformat(str(stamp)).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    except ValueError:
        return str(stamp)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _filters_html(summary: Mapping[str, Any]) -> str:
    return "".join(f'<button type="button" data-filter="{key}" aria-pressed="'
                   f'{"true" if key == "all" else "false"}">{label} <span class="n">'
                   f"{summary[count]}</span></button>" for key, label, count in _FILTERS)


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' file:; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'">
<title>clearmark report: {{title}}</title>
<style>{{style}}</style>
</head>
<body>
<header><h1>clearmark report: <span class="dst">{{title}}</span></h1></header>
<section id="summary">{{summary}}</section>
<nav id="controls">
<div id="filters" role="group" aria-label="show">{{filters}}</div>
<label>sort <select id="sort">
<option value="score-desc">score, high first</option>
<option value="score-asc">score, low first</option>
<option value="name">name</option>
</select></label>
<input id="search" type="search" placeholder="name contains" aria-label="name contains">
</nav>
<p id="shown" aria-live="polite"></p>
<main id="grid"></main>
<nav id="pager"><button type="button" id="prev">&larr; previous</button>
<span id="page"></span><button type="button" id="next">next &rarr;</button></nav>
<dialog id="zoom"><button type="button" id="zoom-close" aria-label="close">&times;</button>
<img id="zoom-img" alt=""><p id="zoom-caption"></p></dialog>
<noscript><p>The grid needs JavaScript; the counts above do not.</p></noscript>
<script type="application/json" id="report-data">{{data}}</script>
<script>{{script}}</script>
</body>
</html>
"""

_STYLE = """
:root { color-scheme: light dark; --fg: #1d1d1f; --bg: #f6f6f4; --card: #fff; --line: #d8d8d4;
  --muted: #6b6b70; --accent: #2456c7; --ok: #1d7a38; --bad: #b3261e; --warn: #8a5a00; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8e8ea; --bg: #151517; --card: #1f1f23;
  --line: #38383e; --muted: #a0a0a8; --accent: #8fb0ff; --ok: #6fcf8a; --bad: #ff8a80;
  --warn: #f0c060; } }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1600px; padding: 1rem 1.25rem 3rem; background: var(--bg);
  color: var(--fg); font: 14px/1.4 system-ui, sans-serif; }
h1 { font-size: 1.3rem; margin: 0 0 .75rem; } .dst { font-family: ui-monospace, monospace; }
.counts { display: flex; flex-wrap: wrap; gap: .5rem; margin: 0 0 .5rem; }
.counts div { background: var(--card); border: 1px solid var(--line); border-radius: 6px;
  padding: .35rem .75rem; min-width: 6.5rem; }
.counts dt { color: var(--muted); font-size: .8rem; } .counts dd { margin: 0; font-size: 1.3rem;
  font-weight: 600; font-variant-numeric: tabular-nums; }
.kinds { border-collapse: collapse; margin: .5rem 0; } .kinds th, .kinds td { padding: .15rem
  .75rem .15rem 0; text-align: left; border-bottom: 1px solid var(--line); }
.kinds td + td { font-variant-numeric: tabular-nums; } .note, #time, #methods { color:
  var(--muted); margin: .35rem 0; }
#controls { position: sticky; top: 0; z-index: 1; display: flex; flex-wrap: wrap; gap: .5rem;
  align-items: center; padding: .5rem 0; background: var(--bg); border-bottom: 1px solid
  var(--line); }
#filters { display: flex; flex-wrap: wrap; gap: .25rem; }
button, select, input { font: inherit; color: inherit; background: var(--card); border: 1px solid
  var(--line); border-radius: 5px; padding: .25rem .6rem; }
button { cursor: pointer; } button:disabled { opacity: .4; cursor: default; }
button[aria-pressed="true"] { background: var(--accent); border-color: var(--accent); color:
  var(--bg); }
#search { min-width: 12rem; } #shown { color: var(--muted); }
#grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: .75rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: .5rem; min-width: 0; }
.card header { display: flex; gap: .5rem; align-items: baseline; }
.card h2 { flex: 1; font-size: .85rem; font-weight: 500; margin: 0; overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; font-family: ui-monospace, monospace; }
.badge { font-size: .75rem; padding: 0 .4rem; border-radius: 3px; border: 1px solid; }
.badge.cleaned { color: var(--ok); } .badge.failed { color: var(--bad); }
.badge.copied, .badge.skipped { color: var(--muted); } .score { font-size: .8rem; color:
  var(--muted); font-variant-numeric: tabular-nums; } .low { color: var(--warn); }
.pics { display: grid; grid-template-columns: 1fr 1fr; gap: .35rem; margin: .4rem 0 0; }
.pics figure { margin: 0; } .pics img { display: block; width: 100%; height: auto;
  aspect-ratio: 4 / 3; object-fit: contain; background: var(--bg); border-radius: 3px; }
.pics figcaption { font-size: .75rem; color: var(--muted); }
.error { color: var(--bad); margin: .5rem 0 0; overflow-wrap: anywhere; }
.card[data-status="skipped"] .error { color: var(--muted); }
.none { color: var(--muted); margin: .5rem 0 0; }
.regions { display: flex; flex-wrap: wrap; gap: .3rem; margin: .4rem 0 0; padding: 0;
  list-style: none; }
.regions li { font-size: .75rem; } .zoom-open { padding: 2px; display: flex; gap: .3rem;
  align-items: center; } .zoom-open img { height: 40px; width: auto; max-width: 120px;
  object-fit: contain; display: block; }
.chip { border: 1px dashed var(--line); border-radius: 4px; padding: .1rem .35rem;
  color: var(--muted); display: inline-block; }
#pager { display: flex; gap: .75rem; justify-content: center; align-items: center;
  margin: 1rem 0; }
dialog { border: 1px solid var(--line); border-radius: 8px; background: var(--card); color:
  var(--fg); max-width: 95vw; max-height: 95vh; padding: 1rem 1rem .5rem; }
dialog::backdrop { background: rgb(0 0 0 / .6); }
#zoom-img { display: block; max-width: 90vw; max-height: 80vh; image-rendering: pixelated;
  margin: 0 auto; } #zoom-close { float: right; margin: -.5rem -.5rem .25rem .5rem; }
#zoom-caption { font-size: .85rem; overflow-wrap: anywhere; }
"""

_SCRIPT = r"""
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const entries = data.entries;
  const LABEL = {cleaned: "cleaned", copied: "unchanged", failed: "failed", skipped: "skipped"};
  const TESTS = {
    all: () => true,
    cleaned: (e) => e.status === "cleaned",
    unchanged: (e) => e.status === "copied",
    failed: (e) => e.status === "failed",
    skipped: (e) => e.status === "skipped",
    low: (e) => e.low === 1,
  };
  const byScore = (e) => (e.score === null ? -1 : e.score);
  const SORTS = {
    "score-desc": (a, b) => byScore(b) - byScore(a),
    "score-asc": (a, b) => (a.score === null) - (b.score === null) || byScore(a) - byScore(b),
    name: (a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0),
  };
  const state = {filter: "all", sort: "score-desc", query: "", page: 0};
  const sorted = {};
  let view = [];
  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;  // text, never markup
    return node;
  }

  function order(key) {  // each sort made once, then filtered per view
    if (!sorted[key]) sorted[key] = entries.slice().sort(SORTS[key]);
    return sorted[key];
  }

  function update() {
    const test = TESTS[state.filter];
    const query = state.query.toLowerCase();
    view = order(state.sort).filter(
      (e) => test(e) && (!query || e.path.toLowerCase().includes(query)));
    state.page = Math.min(state.page, Math.max(0, Math.ceil(view.length / data.pageSize) - 1));
    draw();
  }

  function draw() {
    const pages = Math.max(1, Math.ceil(view.length / data.pageSize));
    const start = state.page * data.pageSize;
    const shown = view.slice(start, start + data.pageSize);
    const grid = $("grid");
    grid.replaceChildren(...shown.map(card));
    $("shown").textContent = view.length
      ? "showing " + (start + 1) + "\u2013" + (start + shown.length) + " of " + view.length
      : "nothing to show";
    $("page").textContent = "page " + (state.page + 1) + " of " + pages;
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
  }

  function card(e) {
    const node = el("article", "card");
    node.dataset.status = e.status;
    const head = el("header");
    const name = el("h2", "", e.path);
    name.title = e.path;
    head.append(name, el("span", "badge " + e.status, LABEL[e.status] || e.status));
    if (e.score !== null) {
      const score = el("span", "score", "score " + e.score.toFixed(2));
      if (e.low) { score.classList.add("low"); score.textContent += " \u00b7 low confidence"; }
      head.append(score);
    }
    node.append(head);
    if (e.error) node.append(el("p", "error", e.error));
    if (e.before) node.append(pictures(e));
    else if (e.status === "cleaned" || e.status === "copied") {
      node.append(el("p", "none", "no preview"));
    }
    if (e.regions.length) node.append(regions(e));
    return node;
  }

  function picture(src, caption) {
    const figure = el("figure");
    const img = el("img");
    img.loading = "lazy";
    img.decoding = "async";
    img.alt = caption;
    img.src = src;
    figure.append(img, el("figcaption", "", caption));
    return figure;
  }

  function pictures(e) {
    const box = el("div", "pics");
    box.append(picture(e.before, e.regions.length ? "before, regions outlined" : "unchanged"));
    if (e.after) box.append(picture(e.after, "after"));
    return box;
  }

  function describe(r) {  // [x, y, width, height, score, kind, method, zoom]
    return r[5] + (r[4] === null ? "" : " " + r[4].toFixed(2)) + (r[6] ? " \u00b7 " + r[6] : "");
  }

  function regions(e) {
    const list = el("ul", "regions");
    e.regions.forEach((r, i) => {
      const item = el("li");
      if (r[7]) {
        const open = el("button", "zoom-open");
        open.type = "button";
        open.title = "zoom: " + describe(r);
        const img = el("img");
        img.loading = "lazy";
        img.alt = "zoom of region " + (i + 1);
        img.src = r[7];
        open.append(img, el("span", "", describe(r)));
        open.addEventListener("click", () => zoom(e, i));
        item.append(open);
      } else {
        item.append(el("span", "chip", describe(r)));
      }
      list.append(item);
    });
    return list;
  }

  function zoom(e, i) {
    const r = e.regions[i];
    const img = $("zoom-img");
    img.style.width = "";
    img.onload = () => {  // show small regions larger, pixels kept sharp
      const factor = Math.max(1, Math.min(3, Math.floor(640 / img.naturalWidth)));
      img.style.width = img.naturalWidth * factor + "px";
    };
    img.src = r[7];
    img.alt = "region " + (i + 1) + " before (first) and after";
    $("zoom-caption").textContent = e.path + " \u2014 region " + (i + 1) + " of " +
      e.regions.length + ": " + describe(r) + "; x " + r[0] + ", y " + r[1] + ", " + r[2] +
      " \u00d7 " + r[3] + " px; before, then after";
    $("zoom").showModal();
  }

  document.querySelectorAll("#filters button").forEach((button) => {
    button.addEventListener("click", () => {
      document.querySelectorAll("#filters button").forEach(
        (b) => b.setAttribute("aria-pressed", String(b === button)));
      state.filter = button.dataset.filter;
      state.page = 0;
      update();
    });
  });
  $("sort").addEventListener("change", (event) => { state.sort = event.target.value; update(); });
  $("search").addEventListener("input", (event) => {
    state.query = event.target.value;
    state.page = 0;
    update();
  });
  const turn = (step) => () => {
    state.page += step;
    draw();
    $("controls").scrollIntoView({block: "start"});
  };
  $("prev").addEventListener("click", turn(-1));
  $("next").addEventListener("click", turn(1));
  $("zoom-close").addEventListener("click", () => $("zoom").close());
  $("zoom").addEventListener("click", (event) => {
    if (event.target === event.currentTarget) event.currentTarget.close();  // the backdrop
  });
  update();
})();
"""
