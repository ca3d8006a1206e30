"""Detection benchmark: quality per watermark kind, false positives on clean photos, and speed.

    python bench/detect.py [--set report|tune] [--quick] [--out bench/detect-report.md]
                           [--threshold T] [--sweep] [--kinds K,...] [--jobs N] [--dump DIR]
                           [--src DIR] [--note TEXT] [--no-install]

Each item of the set (bench/dataset.py) is drawn from its seed, encoded (JPEG/PNG/WebP),
decoded with clearmark's own decoder and detected; only numbers come back from the workers.
Definitions (also written into the report):
  recall     share of the watermark's pixels (alpha > 0.02) inside the union of the predicted
             boxes ("boxes") or inside Detection.mask ("mask");
  detected   recall >= 0.5;
  precision  share of the predicted area within a margin (1 % of the short side) of the truth:
             boxes against the truth's element boxes, mask against the truth's pixel mask;
             averaged over the images with at least one region;
  flagged    at least one region; on clean images this is a false positive.
Speed: decode-only against clearmark's decision pass (working-size decode + find) on the same
encoded bytes in the same run, one OpenCV thread per process (as clearmark's pipeline runs);
the issue's target is on 1-MP JPEGs, timed apart in the main process (best of three per file).
Folders run as a folder run does (`_pipeline.run` learning as it goes): each image is decided
alone, the shared mark is learned from the decision pass's working copies, and each decision is
finished with it.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _src_dir(argv: Sequence[str]) -> Path:
    """--src DIR (read before the imports): which clearmark to measure; default this tree's."""
    for i, arg in enumerate(argv):
        if arg == "--src" and i + 1 < len(argv):
            return Path(argv[i + 1]).resolve()
        if arg.startswith("--src="):
            return Path(arg.split("=", 1)[1]).resolve()
    return ROOT / "src"


def _load_models(models: Path) -> None:
    """clearmark ships top-level models/ as clearmark.models (pyproject's package-dir); a tree
    given with --src must use its own models/, not the installed package's."""
    if "clearmark.models" in sys.modules or not (models / "__init__.py").is_file():
        return
    import clearmark  # the parent package, from SRC

    spec = importlib.util.spec_from_file_location(
        "clearmark.models", models / "__init__.py", submodule_search_locations=[str(models)])
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["clearmark.models"] = module
    spec.loader.exec_module(module)
    clearmark.models = module


SRC = _src_dir(sys.argv[1:])
sys.path.insert(0, str(SRC))
_load_models(SRC.parent / "models")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import dataset  # noqa: E402
from clearmark import _folder as evidence  # noqa: E402
from clearmark._detect import (  # noqa: E402
    DetectorConfig,
    Finding,
    find,
    refine,
    with_marks,
    working_copy,
)
from clearmark._imageio import LoadedImage, LoadLimits, decode_image  # noqa: E402
from clearmark._pipeline import full_image, glance  # noqa: E402
from clearmark._regions import Detection, Region, regions_to_mask  # noqa: E402

import synth  # noqa: E402

SWEEP = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MARGIN = 0.01  # precision margin, share of the short side
SPEED_FILES = {False: 48, True: 16}  # 1-MP JPEGs timed apart (full, quick)
SPEED_REPEATS = 3
DETECT_TARGET = {"corner_text": 0.95, "logo": 0.85, "logo_text": 0.85, "folder": 0.98,
                 "tiled": 0.80}
FP_TARGET = {"clean": 0.02, "clean_hard": 0.10}
PRECISION_TARGET = 0.8
SPEED_TARGET = 0.5
CJK_PACKAGE = "fonts-wqy-microhei"


# ----------------------------------------------------------------------------- per image


@dataclass(frozen=True)
class Result:
    """What a worker measured on one image (small: no pixels)."""

    name: str
    kind: str
    attrs: dict[str, Any]
    width: int
    height: int
    flagged: bool
    score: float
    regions: tuple[tuple[int, int, int, int, float], ...]
    recall_box: float
    recall_mask: float
    precision_box: float | None
    precision_mask: float | None
    t_decode: float  # full decode only (the floor)
    t_detect: float  # decode at working size + find: the decision, as `clearmark detect` runs
    t_refine: float  # full decode + mask, watermarked images only (what removal needs)
    sweep: tuple[tuple[float, bool, bool], ...] = ()  # (threshold, detected, flagged)
    t_learn: float = 0.0  # this image's share of its folder's learning pass
    alone: bool | None = None  # folder images: detected without folder evidence
    t_alone: float = 0.0  # decision time without folder evidence

    @property
    def detected(self) -> bool:
        return self.recall_box >= 0.5

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


def _grow(boxes: Iterable[tuple[int, int, int, int]], m: int, h: int, w: int) -> np.ndarray:
    out = np.zeros((h, w), bool)
    for x, y, bw, bh in boxes:
        out[max(y - m, 0):max(y + bh + m, 0), max(x - m, 0):max(x + bw + m, 0)] = True
    return out


def _share(part: np.ndarray, whole: np.ndarray) -> float | None:
    n = int(whole.sum())
    return float((part & whole).sum()) / n if n else None


def measure(comp: synth.Composite, regions: Sequence[Region],
            mask: np.ndarray | None = None) -> dict[str, Any]:
    """Recall and precision of predicted regions (and mask) against the exact truth."""
    h, w = comp.mask.shape
    truth = comp.mask > 0
    boxes = regions_to_mask(regions, h, w) > 0
    m = max(1, round(MARGIN * min(h, w)))
    out = {"recall_box": _share(boxes, truth) or 0.0,
           "precision_box": _share(_grow(comp.boxes, m, h, w), boxes)}
    if mask is not None:
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * m + 1, 2 * m + 1))
        pmask = mask > 0
        out.update(recall_mask=_share(pmask, truth) or 0.0,
                   precision_mask=_share(cv2.dilate(comp.mask, kernel) > 0, pmask))
    return out


def decide(data: bytes, config: DetectorConfig,
           marks: tuple[Any, ...] = ()) -> tuple[LoadedImage, Finding]:
    """clearmark's decision pass (`_pipeline.glance`): decode at working size, then find."""
    return glance(data, config, LoadLimits(), lambda size: marks)


def finish(data: bytes, small: LoadedImage, finding: Finding) -> Detection:
    """The full Detection as `clearmark.detect` returns it: decode in full and draw the mask
    only when something was found."""
    if not finding.watermarked:
        width, height = finding.size
        return Detection(False, finding.score, (), np.zeros((height, width), np.uint8))
    return refine(full_image(data, small, LoadLimits()).rgb, finding)


@dataclass(frozen=True)
class Decision:
    """One image's decision pass: the working-size decode, the finding and its time."""

    small: LoadedImage
    finding: Finding
    seconds: float
    learn_seconds: float = 0.0  # its share of its folder's learning


def learn_folder(samples: Sequence[dataset.Sample], config: DetectorConfig
                 ) -> tuple[list[Decision], tuple[Any, ...], list[Decision]]:
    """A folder as `_pipeline.run(..., learn=store)` does it: each image decided alone, its
    working gray kept; the mark estimated from those grays (`_marks.settle`); each
    decision finished with the mark (`_detect.with_marks`) where it adds something. Returns
    (decisions alone, (mark,) or (), decisions with folder evidence, learning timed)."""
    alone, grays, t_gray = [], [], []
    for sample in samples:
        t0 = time.perf_counter()
        small, finding = decide(sample.data, config)
        t1 = time.perf_counter()
        gray = evidence.working_gray(working_copy(small.rgb, small.size, config))
        grays.append(gray.astype(np.uint8).astype(np.float32))  # as it travels from a worker
        t_gray.append(time.perf_counter() - t1)
        alone.append(Decision(small, finding, t1 - t0))
    t0 = time.perf_counter()
    mark = evidence.estimate_shared_mark(grays[:evidence.MAX_SAMPLE])
    t_estimate = (time.perf_counter() - t0) / len(samples)
    marks = (mark,) if mark is not None else ()
    finished = []
    for decision, gray, seconds in zip(alone, grays, t_gray, strict=True):
        t0 = time.perf_counter()
        finding = decision.finding
        if marks:
            seen = with_marks(finding, gray, marks, config)
            finding = finding if seen.regions == finding.regions else seen
        learn_seconds = seconds + t_estimate + time.perf_counter() - t0
        finished.append(replace(decision, finding=finding, learn_seconds=learn_seconds))
    return alone, marks, finished


@dataclass(frozen=True)
class Worker:
    """Builds, encodes, decodes and detects one unit: an image, or a whole folder (learned
    as a run over a folder learns it). Picklable: runs in worker processes."""

    config: DetectorConfig
    cjk_font: str | None
    sweep: tuple[float, ...] = ()
    dump: str | None = None

    def __call__(self, unit: Sequence[dataset.ItemSpec]) -> list[Result]:
        samples = [dataset.build(spec, self.cjk_font) for spec in unit]
        if unit[0].kind != "folder":
            return [self.one(s) for s in samples]
        alone, marks, finished = learn_folder(samples, self.config)
        return [self.one(s, marks, done, first) for s, first, done
                in zip(samples, alone, finished, strict=True)]

    def one(self, sample: dataset.Sample, marks: tuple[Any, ...] = (),
            decision: Decision | None = None, alone: Decision | None = None) -> Result:
        """Measure one image; a folder's image comes with its decisions (``learn_folder``)."""
        data, kind = sample.data, sample.spec.kind
        t0 = time.perf_counter()
        decode_image(data)
        t1 = time.perf_counter()
        if decision is None:
            small, finding = decide(data, self.config, marks)
            t_detect, t_learn = time.perf_counter() - t1, 0.0
        else:
            small, finding = decision.small, decision.finding
            t_detect, t_learn = decision.seconds, decision.learn_seconds
        t2 = time.perf_counter()
        det = finish(data, small, finding)
        t3 = time.perf_counter()
        attrs = {**sample.attrs, **({"evidence": bool(marks)} if kind == "folder" else {})}
        width, height = finding.size
        result = Result(sample.spec.name, kind, attrs, width, height, bool(det.regions),
                        det.score,
                        tuple((r.x, r.y, r.width, r.height, r.score) for r in det.regions),
                        t_decode=t1 - t0, t_detect=t_detect, t_refine=t3 - t2, t_learn=t_learn,
                        **measure(sample.comp, det.regions, det.mask))
        if alone is not None:
            result = replace(result, **self._alone(sample, alone))
        if self.sweep:
            result = replace(result, sweep=self._sweep(sample, small, marks))
        if self.dump and _is_failure(result):
            _dump_overlay(Path(self.dump), result, decode_image(data).rgb, sample.comp)
        return result

    @staticmethod
    def _alone(sample: dataset.Sample, alone: Decision) -> dict[str, Any]:
        """The same folder image decided without folder evidence (single-image detection)."""
        return {"alone": measure(sample.comp, alone.finding.regions)["recall_box"] >= 0.5,
                "t_alone": alone.seconds}

    def _sweep(self, sample: dataset.Sample, small: LoadedImage, marks: tuple[Any, ...],
               ) -> tuple[tuple[float, bool, bool], ...]:
        """The decision at each threshold, on the same working-size decode."""
        out = []
        for t in self.sweep:
            finding = find(small.rgb, small.size, replace(self.config, threshold=t), marks)
            out.append((t, measure(sample.comp, finding.regions)["recall_box"] >= 0.5,
                        bool(finding.regions)))
        return tuple(out)


def _is_failure(r: Result) -> bool:
    return r.flagged if r.kind in dataset.CLEAN else not r.detected


def _dump_overlay(out: Path, r: Result, rgb: np.ndarray, comp: synth.Composite) -> None:
    """A PNG to look at: truth outlined green, predicted boxes red, at most 1280 px wide."""
    out.mkdir(parents=True, exist_ok=True)
    img = np.ascontiguousarray(rgb.copy())
    contours, _ = cv2.findContours(comp.mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    thick = max(1, min(img.shape[:2]) // 400)
    cv2.drawContours(img, contours, -1, (0, 255, 0), thick)
    for x, y, w, h, _ in r.regions:
        cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), (255, 0, 0), thick)
    f = min(1.0, 1280 / img.shape[1])
    if f < 1:
        img = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    Image.fromarray(img).save(out / f"{r.name}.png")


def _init_worker() -> None:
    cv2.setNumThreads(1)


def run_items(items: Sequence[dataset.ItemSpec], worker: Worker, jobs: int) -> list[Result]:
    """Measure every item in parallel (folders as whole units); progress on stderr."""
    results: list[Result] = []
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"),
                             initializer=_init_worker) as pool:
        for unit in pool.map(worker, dataset.units(list(items))):
            if len(results) // 50 != (len(results) + len(unit)) // 50 or \
                    len(results) + len(unit) == len(items):
                print(f"\r  {len(results) + len(unit)}/{len(items)} images", end="",
                      file=sys.stderr, flush=True)
            results += unit
    print(file=sys.stderr)
    order = {k: i for i, k in enumerate(dataset.KINDS)}
    return sorted(results, key=lambda r: (order[r.kind], r.name))


# ----------------------------------------------------------------------------- speed


@dataclass(frozen=True)
class Speed:
    label: str
    n: int
    megapixels: float
    t_decode: float  # seconds summed over files: full decode only
    t_detect: float  # the decision (working-size decode + find)
    t_mask: float  # the decision plus, when watermarked, full decode + mask

    @property
    def ratio(self) -> float:
        """Decide throughput as a share of decode-only throughput."""
        return self.t_decode / self.t_detect if self.t_detect else 0.0


def _best_times(data: bytes, config: DetectorConfig) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    decode_image(data)
    t1 = time.perf_counter()
    small, finding = decide(data, config)
    t2 = time.perf_counter()
    finish(data, small, finding)
    return t1 - t0, t2 - t1, time.perf_counter() - t1


def speed_1mp(set_name: str, quick: bool, config: DetectorConfig) -> Speed:
    """Best of SPEED_REPEATS timings per 1-MP JPEG, in this process, one OpenCV thread."""
    cv2.setNumThreads(1)
    files = [dataset.build(s).data for s in dataset.speed_specs(set_name, SPEED_FILES[quick])]
    best = np.full((len(files), 3), np.inf)
    for _ in range(SPEED_REPEATS):
        for i, data in enumerate(files):
            best[i] = np.minimum(best[i], _best_times(data, config))
    w, h = dataset.SPEED_SIZE
    dec, det, full = (float(v) for v in best.sum(0))
    return Speed("1-MP JPEGs (1152x864, q 80-95)", len(files), len(files) * w * h / 1e6,
                 dec, det, full)


def evidence_rows(results: Sequence[Result]) -> list[list[str]]:
    """Folder evidence's cost: deciding with the learned mark (learning pass included)
    against deciding on the same images alone."""
    rs = [r for r in results if r.kind == "folder"]
    if not rs:
        return []
    alone = sum(r.t_alone for r in rs)
    learned = sum(r.t_learn for r in rs)
    with_it = sum(r.t_detect for r in rs) + learned
    extra = with_it / alone - 1
    return [[f"folder images ({len({r.attrs['folder'] for r in rs})} folders)", str(len(rs)),
             f"{len(rs) / alone:.1f}", f"{len(rs) / with_it:.1f}",
             f"{100 * learned / with_it:.0f} %", f"{100 * extra:+.0f} %", "≤ +25 %",
             _verdict(extra, 0.25, at_most=True)]]


EVIDENCE_HEADER = ("files", "n", "alone img/s", "with evidence img/s", "learning share",
                   "extra time", "target", "result")


def speed_of(results: Sequence[Result], label: str) -> Speed:
    return Speed(label, len(results), sum(r.megapixels for r in results),
                 sum(r.t_decode for r in results), sum(r.t_detect for r in results),
                 sum(r.t_detect + r.t_refine for r in results))


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _rate(flags: Iterable[bool]) -> float | None:
    vals = list(flags)
    return sum(vals) / len(vals) if vals else None


def _verdict(value: float | None, target: float, at_most: bool = False) -> str:
    if value is None:
        return "n/a"
    ok = value <= target if at_most else value >= target
    return "PASS" if ok else "FAIL"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A markdown table (it reads in a terminal too)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


QUALITY_HEADER = ("kind", "n", "detected (boxes)", "detected (mask)", "recall (boxes)",
                  "recall (mask)", "precision (boxes)", "precision (mask)", "flagged",
                  "target", "result")


def quality_rows(results: Sequence[Result]) -> list[list[str]]:
    rows = []
    for kind in dataset.KINDS:
        rs = [r for r in results if r.kind == kind]
        if rs:
            rows.append(_kind_row(kind, rs))
        if kind == "folder" and rs:
            rows.append(["folder, image alone (no folder evidence)", str(len(rs)),
                         _pct(_rate(bool(r.alone) for r in rs)), *["–"] * 6, "–", "–"])
    marked = [r for r in results if r.kind in dataset.WATERMARKED]
    if marked:
        prec = _mean(r.precision_box for r in marked)
        rows.append(["all watermarked", str(len(marked)), _pct(_rate(r.detected for r in marked)),
                     _pct(_rate(r.recall_mask >= 0.5 for r in marked)),
                     _num(_mean(r.recall_box for r in marked)),
                     _num(_mean(r.recall_mask for r in marked)), _num(prec),
                     _num(_mean(r.precision_mask for r in marked)),
                     _pct(_rate(r.flagged for r in marked)),
                     f"precision ≥ {PRECISION_TARGET}", _verdict(prec, PRECISION_TARGET)])
    return rows


def _kind_row(kind: str, rs: Sequence[Result]) -> list[str]:
    flagged = _rate(r.flagged for r in rs)
    if kind in dataset.CLEAN:
        target = FP_TARGET[kind]
        return [kind, str(len(rs)), "–", "–", "–", "–", "–", "–", _pct(flagged),
                f"FP ≤ {100 * target:.0f} %", _verdict(flagged, target, at_most=True)]
    det = _rate(r.detected for r in rs)
    return [kind, str(len(rs)), _pct(det), _pct(_rate(r.recall_mask >= 0.5 for r in rs)),
            _num(_mean(r.recall_box for r in rs)), _num(_mean(r.recall_mask for r in rs)),
            _num(_mean(r.precision_box for r in rs)), _num(_mean(r.precision_mask for r in rs)),
            _pct(flagged), f"detected ≥ {100 * DETECT_TARGET[kind]:.0f} %",
            _verdict(det, DETECT_TARGET[kind])]


SPEED_HEADER = ("files", "n", "MP", "decode img/s", "decode MP/s", "detect img/s",
                "detect MP/s", "ratio", "detect + mask img/s", "ratio with mask", "target",
                "result")


def speed_rows(speeds: Sequence[Speed]) -> list[list[str]]:
    rows = []
    for s in speeds:
        is_target = s.label.startswith("1-MP")
        rows.append([s.label, str(s.n), f"{s.megapixels:.0f}", f"{s.n / s.t_decode:.1f}",
                     f"{s.megapixels / s.t_decode:.1f}", f"{s.n / s.t_detect:.1f}",
                     f"{s.megapixels / s.t_detect:.1f}", f"{100 * s.ratio:.0f} %",
                     f"{s.n / s.t_mask:.1f}", f"{100 * s.t_decode / s.t_mask:.0f} %",
                     "≥ 50 % of decode-only" if is_target else "–",
                     _verdict(s.ratio, SPEED_TARGET) if is_target else "–"])
    return rows


def sweep_rows(results: Sequence[Result]) -> list[list[str]]:
    """Detection rate per watermarked kind and FP rates per threshold."""
    rows = []
    for i, t in enumerate(SWEEP):
        row = [f"{t:.1f}"]
        for kind in (*dataset.WATERMARKED, "all watermarked"):
            rs = [r for r in results if (r.kind == kind or (kind == "all watermarked" and
                                         r.kind in dataset.WATERMARKED))]
            row.append(_pct(_rate(r.sweep[i][1] for r in rs)))
        for kind in dataset.CLEAN:
            row.append(_pct(_rate(r.sweep[i][2] for r in results if r.kind == kind)))
        rows.append(row)
    return rows


SWEEP_HEADER = ("threshold", *(f"det {k}" for k in (*dataset.WATERMARKED, "all")),
                "FP clean", "FP clean_hard")

BREAKDOWN = {"corner_text": ("position", "colour", "opacity", "text_height", "effect", "style",
                             "format", "photo"),
             "logo": ("position", "colour", "opacity", "logo_size", "format", "photo"),
             "logo_text": ("position", "colour", "opacity", "format", "photo"),
             "tiled": ("colour", "opacity", "format", "photo"),
             "folder": ("folder", "evidence", "mark_kind", "position", "colour", "opacity",
                        "photo")}
BINS = {"opacity": (0.15, 0.25, 0.35, 0.45, 0.6, 0.8, 1.01),
        "text_height": (0.0, 0.03, 0.04, 0.05, 0.061), "logo_size": (0.08, 0.12, 0.16, 0.2, 0.26)}


def _bucket(key: str, value: Any) -> str:
    if key not in BINS or value is None:
        return str(value)
    edges = BINS[key]
    for lo, hi in itertools.pairwise(edges):
        if lo <= value < hi:
            return f"{lo:g}–{min(hi, 1):g}"
    return str(value)


def breakdown(results: Sequence[Result]) -> list[str]:
    """One line per (kind, attribute): detected/total per value; FP per photo/sub-kind."""
    lines = []
    for kind, keys in BREAKDOWN.items():
        rs = [r for r in results if r.kind == kind]
        for key in keys:
            groups: dict[str, list[bool]] = {}
            for r in rs:
                groups.setdefault(_bucket(key, r.attrs.get(key)), []).append(r.detected)
            parts = [f"{v} {sum(g)}/{len(g)}" for v, g in sorted(groups.items())]
            if parts:
                lines.append(f"- {kind} by {key}: " + ", ".join(parts))
    for kind, key in (("clean", "photo"), ("clean_hard", "hard"), ("clean_hard", "photo")):
        groups = {}
        for r in (r for r in results if r.kind == kind):
            groups.setdefault(str(r.attrs.get(key)), []).append(r.flagged)
        parts = [f"{v} {sum(g)}/{len(g)}" for v, g in sorted(groups.items())]
        if parts:
            lines.append(f"- {kind} flagged by {key}: " + ", ".join(parts))
    return lines


def flagged_clean(results: Sequence[Result], limit: int = 25) -> list[str]:
    """The clean images that got a region, with what was flagged."""
    lines = []
    for r in (r for r in results if r.kind in dataset.CLEAN and r.flagged):
        boxes = "; ".join(f"{x},{y} {w}x{h} ({s:.2f})" for x, y, w, h, s in r.regions[:4])
        lines.append(f"- `{r.name}` {r.width}x{r.height} {r.attrs.get('hard', 'ordinary')} "
                     f"({r.attrs.get('photo')}, {r.attrs.get('format')}): {boxes}")
    return lines[:limit] + ([f"- ... and {len(lines) - limit} more"] if len(lines) > limit
                            else [])


# ----------------------------------------------------------------------------- run settings


def ensure_cjk_font(install: bool) -> tuple[str | None, str]:
    """A CJK font path (installing fonts-wqy-microhei with apt as root if allowed) and a note
    for the report saying what happened."""
    found = synth.find_cjk_font()
    if found:
        return str(found), f"CJK font: {found.name}"
    if install and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {CJK_PACKAGE} (apt-get) for the CJK corner-text items...",
              file=sys.stderr)
        for cmd in (["apt-get", "install", "-y", "-q", CJK_PACKAGE],
                    ["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", CJK_PACKAGE]):
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False, timeout=600)
            if found := synth.find_cjk_font():
                return str(found), f"CJK font: {found.name} (installed by this run)"
    return None, ("CJK: SKIPPED: no CJK font found (install fonts-wqy-microhei or "
                  "fonts-noto-cjk); the CJK corner-text items are left out")


def machine() -> dict[str, str]:
    import PIL
    import skimage

    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                            capture_output=True, text=True, check=False).stdout.strip()
    versions = {name: str(getattr(module, "__version__", "?")) for name, module in
                (("numpy", np), ("opencv", cv2), ("Pillow", PIL), ("scikit-image", skimage))}
    return {"cores (nproc)": str(os.cpu_count()), "cpu": cpu,
            "python": platform.python_version(), **versions,
            "repository (git describe)": commit or "?"}


# ----------------------------------------------------------------------------- main


@dataclass
class Run:
    args: argparse.Namespace
    config: DetectorConfig
    cjk_note: str
    items: list[dataset.ItemSpec]
    results: list[Result] = field(default_factory=list)
    speeds: list[Speed] = field(default_factory=list)
    seconds: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at start and end


def render(run: Run) -> str:
    """The whole report (markdown)."""
    a, rs = run.args, run.results
    counts = {k: sum(r.kind == k for r in rs) for k in dataset.KINDS}
    folders = len({r.attrs.get("folder") for r in rs if r.kind == "folder"})
    clean_share = (counts["clean"] + counts["clean_hard"]) / max(len(rs), 1)
    split = dataset.SPLITS[a.set]
    photos = ", ".join(dict.fromkeys(split.photos + split.textures + (split.sky, split.dark) +
                                     ((split.paper,) if split.paper else ())))
    settings = [["set", f"{a.set}{' (quick)' if a.quick else ''}"],
                ["seed", str(dataset.SET_SEEDS[a.set])],
                ["photos", photos],
                ["images", f"{len(rs)} ({', '.join(f'{k} {n}' for k, n in counts.items())}; "
                           f"{folders} folders; clean share {100 * clean_share:.0f} %)"],
                ["detector", f"DetectorConfig(threshold={run.config.threshold}, "
                             f"working_side={run.config.working_side})"],
                ["CJK", run.cjk_note], ["jobs", str(a.jobs)],
                ["folder evidence", "learned per folder from the decision pass's working "
                 f"copies (its first {evidence.MAX_SAMPLE} images), matched in each image"],
                ["clearmark source", f"{SRC} " + ("(this working tree)" if SRC == ROOT / "src"
                                                  else "(given with --src)")],
                ["runtime", f"{run.seconds:.0f} s wall (generation, encoding, decoding, "
                            f"detection{', sweep' if a.sweep else ''})"],
                ["load average (1 min)", f"{run.load[0]:.1f} at start, {run.load[1]:.1f} at "
                 "the end (other work on the machine slows both timings alike; the ratios "
                 "hold better than the absolute rates)"]]
    settings += [[k, v] for k, v in machine().items()]
    out = [f"# Detection benchmark: {a.set} set{' (quick)' if a.quick else ''}", "",
           f"Made by `python bench/detect.py {' '.join(sys.argv[1:])}`. "
           "bench/README.md describes the sets; the definitions are at the end.", "",
           *([a.note, ""] if a.note else []),
           "## Quality per kind", "", table(QUALITY_HEADER, quality_rows(rs)), "",
           "## Speed", "", table(SPEED_HEADER, speed_rows(run.speeds)), "",
           *(["Folder evidence (the decision per image, plus the folder's learning pass):", "",
               table(EVIDENCE_HEADER, evidence_rows(rs)), ""] if evidence_rows(rs) else [])]
    if a.sweep:
        out += ["## Threshold sweep", "", table(SWEEP_HEADER, sweep_rows(rs)), ""]
    out += ["## Breakdown (detected / n; for clean kinds flagged / n)", "", *breakdown(rs), "",
            "## Clean images flagged", "", *(flagged_clean(rs) or ["none"]), "",
            "## Settings", "", table(("setting", "value"), settings), "", DEFINITIONS]
    return "\n".join(out) + "\n"


DEFINITIONS = """## Definitions

- **detected**: at least half of the watermark's pixels (alpha > 0.02) lie inside the union
  of the predicted regions' boxes ("boxes", the figure the targets use) or inside
  `Detection.mask` ("mask").
- **recall**: that covered share, averaged over the kind's images.
- **precision**: share of the predicted area within a margin of 1 % of the short side of the
  truth: the boxes' union against the truth's element boxes grown by the margin, the mask
  against the truth's pixel mask dilated by the margin. Averaged over images with at least one
  region (– when none had one). The target is checked on the boxes over all watermarked images.
- **flagged**: at least one region; on clean images that is a false positive (FP).
- **speed**: decode-only = `clearmark._imageio.decode_image` of the whole file, the floor.
  detect = clearmark's decision pass as `clearmark detect` runs it (`_pipeline.glance`: a
  decode at the detector's working size, reduced by libjpeg for large JPEGs, then
  `_detect.find`). detect + mask adds, for the images found watermarked, the full decode and
  `_detect.refine` (what `clearmark.detect()` and removal need). One OpenCV thread per
  process. "all files" sums per-image times measured in the worker processes during the
  quality run (per core); the 1-MP row times separate 1152x864 JPEGs in the main process,
  best of three per file. ratio = decode-only time / detect time = detect throughput as a
  share of decode-only throughput (the target: at least 50 %).
- **folder evidence**: as clearmark's local runner does it (`_pipeline.run` with a mark
  store), each image of a folder is decided alone and its working copy kept as a gray image;
  the folder's mark is estimated from the first 32 of those (`_folder.estimate_shared_mark`),
  and each decision is finished with it (`_detect.with_marks`). "image alone" is the decision
  without it. Its extra time is the grays, the estimate and the finishing, against the
  decisions alone (target: at most +25 %). A `clean` run also redoes the removal of an image
  whose decision the mark changed; that is not counted here."""


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Detection benchmark (see bench/README.md).")
    p.add_argument("--set", choices=tuple(dataset.SET_SEEDS), default="report")
    p.add_argument("--quick", action="store_true", help="about 60 images, a smoke run")
    p.add_argument("--out", type=Path, help="also write the report (markdown) here")
    p.add_argument("--threshold", type=float, help="DetectorConfig(threshold=...)")
    p.add_argument("--working-side", type=int, help="DetectorConfig(working_side=...)")
    p.add_argument("--sweep", action="store_true",
                   help=f"detection vs false-positive rate over thresholds {SWEEP[0]}..{SWEEP[-1]}")
    p.add_argument("--kinds", default=",".join(dataset.KINDS),
                   help="comma-separated kinds to run (default: all)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--dump", type=Path, metavar="DIR",
                   help="write missed watermarks and flagged clean images as PNG overlays")
    p.add_argument("--note", default="", help="a line for the report saying what was measured")
    p.add_argument("--src", type=Path, metavar="DIR",
                   help="import clearmark from DIR (default: this working tree's src/)")
    p.add_argument("--no-install", action="store_true",
                   help="never apt-get install a CJK font (CJK items are then skipped)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    if unknown := set(kinds) - set(dataset.KINDS):
        raise SystemExit(f"unknown kinds: {sorted(unknown)}")
    settings = {"threshold": args.threshold, "working_side": args.working_side}
    config = DetectorConfig(**{k: v for k, v in settings.items() if v is not None})
    cjk, note = ensure_cjk_font(not args.no_install)
    items = dataset.specs(args.set, quick=args.quick, cjk=cjk is not None, kinds=kinds)
    run = Run(args, config, note, items)
    print(f"{args.set} set{' (quick)' if args.quick else ''}: {len(items)} images; {note}",
          file=sys.stderr)
    start, load = time.perf_counter(), os.getloadavg()[0]
    worker = Worker(config, cjk, SWEEP if args.sweep else (),
                    str(args.dump) if args.dump else None)
    run.results = run_items(items, worker, args.jobs)
    run.speeds = [speed_of(run.results, "all files of the set (per core)"),
                  *(speed_of(g, f"{fmt} files") for fmt, g in _by_format(run.results)),
                  speed_1mp(args.set, args.quick, config)]
    run.seconds, run.load = time.perf_counter() - start, (load, os.getloadavg()[0])
    report = render(run)
    print(report)
    if args.out:
        args.out.write_text(report, encoding="utf-8")
        print(f"report written to {args.out}", file=sys.stderr)
    return 0


def _by_format(results: Sequence[Result]) -> list[tuple[str, list[Result]]]:
    groups: dict[str, list[Result]] = {}
    for r in results:
        groups.setdefault(str(r.attrs.get("format")), []).append(r)
    return sorted(groups.items())


if __name__ == "__main__":
    raise SystemExit(main())
