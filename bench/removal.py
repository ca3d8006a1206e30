"""Removal benchmark: how close does each remover bring the watermark zone to the clean photo?

Every item is a real photo with a synthetic mark composited at known alpha (bench/synth.py),
JPEG-encoded at quality 85-95 and decoded, so removers see the noise they meet in the wild.
Scores are PSNR and SSIM inside the *zone*: the true mark's pixels dilated by ``ZONE_GROW``
px, against the clean original. Rows:

- ``input``: the watermarked JPEG untouched (the floor);
- ``telea-oracle``: OpenCV Telea inpainting given the true mask (the baseline to beat);
- ``clearmark-truth``: ``LocalRemover`` given a Detection built from the truth (mask = the
  true mask, regions = the mark's boxes);
- ``clearmark-e2e``: ``detect_array`` then ``LocalRemover``; an image the detector misses
  counts as untouched;
- ``known-mark``: the blend inverted with the true colour and alpha through the remover's
  known-mark hook (the ceiling that folder evidence could reach).

A folder section follows (``--folders N``, of ``--folder-set``; bench/dataset.py's folders):
each folder is 12-20 photos sharing one mark (corner_text, logo or logo_text), encoded as
JPEG, PNG or WebP and written to a temporary folder, which clearmark's runner
(``_pipeline.run`` with a ``MarkStore``, as ``clearmark clean`` runs it) cleans with folder
evidence. Every member image is scored, with these rows:

- ``input``, ``telea-oracle``, ``clearmark-truth``: as above, on the decoded file;
- ``clearmark-alone``: ``detect_array`` then ``LocalRemover`` on the image alone (no folder
  evidence; a miss counts as untouched);
- ``clearmark-folder-no-matte``: the runner with folder evidence and a remover without the
  known-mark hook, so the folder's mark only gives the mask and each image is matted alone;
- ``clearmark-folder``: the runner as shipped: the folder's mark, its colour and alpha
  estimated from the folder's photos ("folder matte"), inverted in each image;
- ``known-mark``: the true colour and alpha inverted, as above (the ceiling).

The runner rows are read back from the files it wrote, so a lossy format's re-encoding counts
against them (as it does for a user).

Items use seeds from ``--seed`` on (the report set starts at 0; tune on another base, e.g.
``--seed 100000``, so tuning and reporting sets stay apart); folders come from dataset.py's
"report" set unless ``--folder-set tune``. Run:
``python bench/removal.py [--quick] [--report bench/removal-report.md]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from skimage.metrics import structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dataset  # bench/dataset.py (ruff sorts it with third-party modules)
from clearmark._detect import detect_array
from clearmark._marks import MarkStore
from clearmark._pipeline import CleanTask, find_inputs, run
from clearmark._regions import Detection, Region
from clearmark._remove import LocalRemover

import synth

KINDS = ("corner_text", "logo", "logo_text", "tiled")
SIZES = ((640, 480), (800, 600), (1024, 768), (1280, 960))
ZONE_GROW = 3  # px the true mask is dilated by to make the scored zone
TELEA_RADIUS = 5  # the oracle's radius (5 scored a little better than 3 on the tuning set)
METHODS = ("input", "telea-oracle", "clearmark-truth", "clearmark-e2e", "known-mark")
FOLDER_METHODS = ("input", "telea-oracle", "clearmark-truth", "clearmark-alone",
                  "clearmark-folder-no-matte", "clearmark-folder", "known-mark")
FOLDER_COLUMNS = (*dataset.FOLDER_MARKS, "all")
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}  # by Sample.attrs["format"]
SPEED_SIZE = (1152, 864)  # about 1 MP


@dataclass(frozen=True)
class Item:
    """One benchmark case: a composite and the JPEG-decoded watermarked image."""

    kind: str
    seed: int
    composite: synth.Composite
    image: np.ndarray  # what the removers see
    quality: int


def make_item(kind: str, seed: int) -> Item:
    """A composite of ``kind`` at a size and JPEG quality drawn from ``seed``."""
    rng = np.random.default_rng(seed + 7919)
    width, height = SIZES[int(rng.integers(len(SIZES)))]
    composite = synth.random_composite(seed, width, height, kind)
    quality = int(rng.integers(85, 96))
    return Item(kind, seed, composite, jpeg(composite.image, quality), quality)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG (OpenCV's default 4:2:0 chroma) and decode back to RGB."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def truth_detection(item: Item) -> Detection:
    """The truth as a detector would hand it over: the true mask and the mark's boxes."""
    return composite_detection(item.composite, item.kind)


def composite_detection(comp: synth.Composite, kind: str) -> Detection:
    """A composite's truth as a Detection: the true mask, one region of ``kind`` per box."""
    regions = tuple(Region(*box, kind=kind) for box in comp.boxes)
    return Detection(True, 1.0, regions, comp.mask.copy())


def zone_of(mask: np.ndarray) -> np.ndarray:
    """The scored pixels: the true mask dilated by ZONE_GROW px (anti-aliasing, JPEG halo)."""
    size = 2 * ZONE_GROW + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    return cv2.dilate(mask, kernel) > 0


def psnr(out: np.ndarray, clean: np.ndarray, zone: np.ndarray) -> float:
    """PSNR over the zone's pixels (all three channels), capped at 99 dB for exact results."""
    diff = out[zone].astype(np.float64) - clean[zone]
    mse = float(np.mean(diff * diff))
    return 99.0 if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def ssim(out: np.ndarray, clean: np.ndarray, zone: np.ndarray) -> float:
    """Mean SSIM map over the zone, computed on the zone's bounding box plus a margin."""
    ys, xs = np.nonzero(zone)
    pad = 8
    y0, y1 = max(0, ys.min() - pad), min(zone.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(zone.shape[1], xs.max() + pad + 1)
    _, full = structural_similarity(out[y0:y1, x0:x1], clean[y0:y1, x0:x1], channel_axis=2,
                                    data_range=255, full=True)
    return float(full.mean(axis=2)[zone[y0:y1, x0:x1]].mean())


def run_methods(item: Item, remover: LocalRemover) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    """Every row's output for one item, with per-row extras (detector misses, timings)."""
    image, comp = item.image, item.composite
    telea = cv2.inpaint(image, comp.mask, TELEA_RADIUS, cv2.INPAINT_TELEA)
    started = time.perf_counter()
    truth = remover.remove(image, truth_detection(item))
    truth_time = time.perf_counter() - started
    detection = detect_array(image)
    e2e = remover.remove(image, detection) if detection.watermarked else image.copy()
    recall = float((detection.mask[comp.mask > 0] > 0).mean()) if detection.watermarked else 0.0
    known = remover.remove_known(image, _colour_of(comp), comp.alpha, 0, 0) \
        if hasattr(remover, "remove_known") else image.copy()
    return {
        "input": (image, {}),
        "telea-oracle": (telea, {}),
        "clearmark-truth": (truth, {"seconds": truth_time}),
        "clearmark-e2e": (e2e, {"missed": not detection.watermarked, "recall": recall}),
        "known-mark": (known, {}),
    }


def _colour_of(comp: synth.Composite) -> np.ndarray:
    """The mark's colour layer as it was drawn (synth keeps it): also where two of its
    colours blend, on the anti-aliased seam between letters and their outline or shadow."""
    assert comp.colour is not None, "synth composites carry their colour layer"
    return comp.colour


def evaluate(job: tuple[str, int]) -> list[dict[str, Any]]:
    """Score every row on one item; a worker runs this (pure, picklable arguments)."""
    kind, seed = job
    cv2.setNumThreads(1)
    item = make_item(kind, seed)
    zone = zone_of(item.composite.mask)
    opacity = float(item.composite.params.get("opacity", 1.0))
    rows = []
    for method, (out, extra) in run_methods(item, LocalRemover()).items():
        rows.append({"kind": kind, "seed": seed, "opacity": opacity, "method": method,
                     "psnr": psnr(out, item.composite.clean, zone),
                     "ssim": ssim(out, item.composite.clean, zone), **extra})
    return rows


def buckets(row: dict[str, Any]) -> list[str]:
    """The table columns a row counts in: its kind, its opacity bucket, and all."""
    return [row["kind"], "opacity<=0.6" if row["opacity"] <= 0.6 else "opacity>0.6", "all"]


COLUMNS = (*KINDS, "opacity<=0.6", "opacity>0.6", "all")


def summarise(rows: list[dict[str, Any]], metric: str,
              stat: Callable[[Iterable[float]], float]) -> dict[tuple[str, str], float]:
    """``stat`` of ``metric`` per (method, column)."""
    cells: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        for column in buckets(row):
            cells.setdefault((row["method"], column), []).append(row[metric])
    return {key: stat(values) for key, values in cells.items()}


def table(rows: list[dict[str, Any]], metric: str, stat_name: str, digits: int,
          methods: tuple[str, ...] = METHODS, columns: tuple[str, ...] = COLUMNS) -> str:
    """A markdown table: methods down, columns across."""
    stat = statistics.median if stat_name == "median" else statistics.fmean
    values = summarise(rows, metric, stat)
    lines = [f"| {metric} ({stat_name}) | " + " | ".join(columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for method in methods:
        cells = [f"{values[(method, c)]:.{digits}f}" if (method, c) in values else "-"
                 for c in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def counts(rows: list[dict[str, Any]]) -> str:
    """Items per column, detector misses and mask recall of the end-to-end row."""
    lines = ["| column | items | detector missed | detector pixel recall (median) |",
             "|---|---|---|---|"]
    e2e = [r for r in rows if r["method"] == "clearmark-e2e"]
    for column in COLUMNS:
        sel = [r for r in e2e if column in buckets(r)]
        if sel:
            missed = sum(r["missed"] for r in sel)
            recall = statistics.median(r["recall"] for r in sel)
            lines.append(f"| {column} | {len(sel)} | {missed} ({missed / len(sel):.0%}) | "
                         f"{recall:.2f} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- folders


class NoKnown:
    """``LocalRemover`` without its known-mark hook (no ``remove_known``): the runner then
    fits no folder matte and leaves the folder mark's mask to the single-image matte."""

    def __init__(self) -> None:
        self._remover = LocalRemover()

    def remove(self, rgb: np.ndarray, detection: Detection) -> np.ndarray:
        return self._remover.remove(rgb, detection)

    def remove_explained(self, rgb: np.ndarray,
                         detection: Detection) -> tuple[np.ndarray, list[dict[str, Any]]]:
        return self._remover.remove_explained(rgb, detection)


@dataclass(frozen=True)
class FolderMember:
    """One photo of a benchmark folder: its truth and the image as clearmark decodes it."""

    name: str  # file name in the folder
    sample: dataset.Sample
    image: np.ndarray  # RGB, decoded from the encoded file


def write_folder(set_name: str, group: int, src: Path) -> list[FolderMember]:
    """Write folder ``group`` of ``set_name`` into ``src`` as encoded files; its members."""
    members = []
    for spec in dataset.folder_specs(set_name, group):
        sample = dataset.build(spec, None)  # folder marks draw no CJK text
        name = spec.name + EXTENSIONS[sample.attrs["format"]]
        (src / name).write_bytes(sample.data)
        encoded = np.frombuffer(sample.data, np.uint8)
        image = cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        members.append(FolderMember(name, sample, image))
    return members


def run_folder(src: Path, work: Path, remover: Any | None
               ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
    """Clean the folder ``src`` as ``clearmark clean`` does (folder evidence learned as it
    goes, one process), into ``work``/dst with its mark store in ``work``/marks; the outputs
    read back and the records, by file name. ``remover`` None: the default one."""
    dst, store = work / "dst", work / "marks"
    extra = {} if remover is None else {"remover": remover}
    task = CleanTask(src=src, dst=dst, marks=store, **extra)
    outputs, records = {}, {}
    for record in run(task, find_inputs([src]), jobs=1, learn=MarkStore(store)):
        if record.get("status") not in ("cleaned", "copied"):  # never score a missing output
            raise RuntimeError(f"clearmark did not clean {record.get('path')}: "
                               f"{record.get('status')} ({record.get('error')})")
        rel = record["rel"]
        bgr = cv2.imread(str(dst / rel), cv2.IMREAD_COLOR)
        if bgr is None:
            raise RuntimeError(f"cannot read clearmark's output {dst / rel}")
        outputs[rel], records[rel] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), record
    return outputs, records


def used_folder_matte(record: dict[str, Any]) -> bool:
    """Whether any region of a runner record was removed with the folder's matte."""
    return any(region.get("method") == "folder-matte" for region in record.get("regions", []))


def single_image_rows(member: FolderMember, remover: LocalRemover
                      ) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    """The rows that see one image alone: input, the oracles and clearmark without folder
    evidence."""
    image, comp = member.image, member.sample.comp
    kind = member.sample.attrs["mark_kind"]
    detection = detect_array(image)
    alone = remover.remove(image, detection) if detection.watermarked else image.copy()
    return {
        "input": (image, {}),
        "telea-oracle": (cv2.inpaint(image, comp.mask, TELEA_RADIUS, cv2.INPAINT_TELEA), {}),
        "clearmark-truth": (remover.remove(image, composite_detection(comp, kind)), {}),
        "clearmark-alone": (alone, {"detected": detection.watermarked}),
        "known-mark": (remover.remove_known(image, _colour_of(comp), comp.alpha, 0, 0), {}),
    }


def evaluate_folder(job: tuple[str, int]) -> list[dict[str, Any]]:
    """Score every folder row on every image of one folder; a worker runs this."""
    set_name, group = job
    cv2.setNumThreads(1)
    remover = LocalRemover()
    with tempfile.TemporaryDirectory(prefix="clearmark-bench-") as tmp:
        src = Path(tmp, "src")
        src.mkdir()
        members = write_folder(set_name, group, src)
        # separate outputs and mark stores: the second run must learn its folder afresh
        started = time.process_time()
        no_matte, no_matte_records = run_folder(src, Path(tmp, "no-matte"), NoKnown())
        middle = time.process_time()
        shipped, shipped_records = run_folder(src, Path(tmp, "folder"), None)
        cpu = {"clearmark-folder-no-matte": (middle - started) / len(members),
               "clearmark-folder": (time.process_time() - middle) / len(members)}
    rows = []
    for member in members:
        outputs = single_image_rows(member, remover)
        no_matte_record, record = no_matte_records[member.name], shipped_records[member.name]
        outputs["clearmark-folder-no-matte"] = (
            no_matte[member.name], {"detected": bool(no_matte_record["watermarked"]),
                                    "cpu": cpu["clearmark-folder-no-matte"]})
        outputs["clearmark-folder"] = (shipped[member.name], {
            "detected": bool(record["watermarked"]), "folder_matte": used_folder_matte(record),
            "cpu": cpu["clearmark-folder"]})
        rows += score_member(member, group, outputs)
    return rows


def score_member(member: FolderMember, group: int,
                 outputs: dict[str, tuple[np.ndarray, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per method for a folder member, in FOLDER_METHODS order."""
    comp = member.sample.comp
    zone = zone_of(comp.mask)
    common = {"kind": member.sample.attrs["mark_kind"], "folder": group,
              "image": member.name, "opacity": float(comp.params.get("opacity", 1.0))}
    rows = []
    for method in FOLDER_METHODS:
        out, extra = outputs[method]
        rows.append({**common, "method": method, "psnr": psnr(out, comp.clean, zone),
                     "ssim": ssim(out, comp.clean, zone), **extra})
    return rows


def folder_section(set_name: str, folders: int, workers: int) -> str:
    """The folder tables: median PSNR and SSIM per mark kind, and how the images were done."""
    started = time.perf_counter()
    jobs = [(set_name, group) for group in range(folders)]
    with get_context("spawn").Pool(min(workers, folders)) as pool:
        rows = [row for result in pool.imap_unordered(evaluate_folder, jobs) for row in result]
    elapsed = time.perf_counter() - started
    shipped = [r for r in rows if r["method"] == "clearmark-folder"]
    by_matte = sum(r["folder_matte"] for r in shipped)

    def detected(method: str) -> str:
        sel = [r["detected"] for r in rows if r["method"] == method]
        return f"{sum(sel) / len(sel):.0%}"

    def cpu(method: str) -> float:  # ms per image of the runner's CPU (it runs in one process)
        return 1000 * statistics.fmean(r["cpu"] for r in rows if r["method"] == method)

    return "\n".join([
        f"Folders: {folders} folders of 12-20 photos sharing one mark (set {set_name}), "
        f"{len(shipped)} images; zone = true mask dilated {ZONE_GROW} px.", "",
        table(rows, "psnr", "median", 2, FOLDER_METHODS, FOLDER_COLUMNS), "",
        table(rows, "ssim", "median", 4, FOLDER_METHODS, FOLDER_COLUMNS), "",
        f"clearmark-folder removed {by_matte} of {len(shipped)} images "
        f"({by_matte / len(shipped):.0%}) with the folder matte (\"folder-matte\"); detected: "
        f"{detected('clearmark-alone')} alone, {detected('clearmark-folder-no-matte')} / "
        f"{detected('clearmark-folder')} in the folder runs; {elapsed:.0f} s on "
        f"{min(workers, folders)} workers.", "",
        f"The runner's CPU time per image (one process: learning, detection, removal, "
        f"encoding): {cpu('clearmark-folder-no-matte'):.0f} ms without the folder matte, "
        f"{cpu('clearmark-folder'):.0f} ms with it "
        f"({cpu('clearmark-folder') / cpu('clearmark-folder-no-matte') - 1:+.0%}: every photo "
        "of these folders is in its folder's sample, so each is done again once the matte "
        "is known, and up to 16 are decoded again to estimate it).",
    ])


def speed(count: int) -> str:
    """CPU ms per 1 MP corner-text image for decode, detect and remove (one thread), and the
    wall-clock throughput of 2 worker processes doing all three."""
    cv2.setNumThreads(1)
    items = [make_item("corner_text", 900_000 + i) for i in range(count)]
    images = [jpeg(_resize(i.composite.image), i.quality) for i in items]
    remover = LocalRemover()
    encoded = [cv2.imencode(".jpg", cv2.cvtColor(i, cv2.COLOR_RGB2BGR))[1] for i in images]
    decode = _cpu(lambda k: cv2.imdecode(encoded[k], cv2.IMREAD_COLOR), count)
    detections = [detect_array(i) for i in images]
    detect = _cpu(lambda k: detect_array(images[k]), count)
    remove = _cpu(lambda k: remover.remove(images[k], detections[k]), count)
    found = sum(d.watermarked for d in detections)
    with get_context("spawn").Pool(2) as pool:
        pool.map(_end_to_end, encoded[:2])  # warm the workers up
        started = time.perf_counter()
        pool.map(_end_to_end, encoded * 2)
        wall = time.perf_counter() - started
    rate = 2 * count / wall
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return "\n".join([
        f"Speed on {count} corner-text images of {SPEED_SIZE[0]}x{SPEED_SIZE[1]} "
        f"({found} detected), CPU time of one thread:",
        "",
        "| stage | CPU ms per image (median) |",
        "|---|---|",
        f"| JPEG decode (the floor) | {decode:.1f} |",
        f"| detect_array | {detect:.1f} |",
        f"| LocalRemover.remove | {remove:.1f} |",
        f"| decode + detect + remove | {decode + detect + remove:.1f} "
        f"(= {2000 / (decode + detect + remove):.1f} images/s on 2 idle cores) |",
        "",
        f"Measured wall clock, 2 worker processes (1 OpenCV thread each) doing decode + detect "
        f"+ remove: {rate:.1f} images/s ({rate * SPEED_SIZE[0] * SPEED_SIZE[1] / 1e6:.1f} "
        f"MP/s), with the machine's 1-minute load average at {load:.1f} (other jobs share it).",
    ])


def _resize(rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(rgb, SPEED_SIZE, interpolation=cv2.INTER_AREA)


def _end_to_end(data: np.ndarray) -> int:
    cv2.setNumThreads(1)
    rgb = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    detection = detect_array(rgb)
    if detection.watermarked:
        rgb = LocalRemover().remove(rgb, detection)
    return int(rgb[0, 0, 0])


def _cpu(call: Callable[[int], object], count: int) -> float:
    """Median CPU milliseconds of ``call(k)`` over k < count (robust to a busy machine)."""
    times = []
    for k in range(count):
        started = time.process_time()
        call(k)
        times.append(time.process_time() - started)
    return 1000.0 * statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="8 items per kind, 2 folders, short speed run")
    parser.add_argument("--count", type=int, default=48, help="items per kind (default 48)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (report set: 0)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--report", type=Path, help="write the markdown report here")
    parser.add_argument("--kinds", nargs="*", default=list(KINDS), choices=KINDS)
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--folders", type=int, default=12,
                        help="folders scored with folder evidence (default 12; 0 skips; "
                             "--quick: 2)")
    parser.add_argument("--folder-set", choices=tuple(dataset.SET_SEEDS), default="report",
                        help="dataset.py set the folders come from (default report)")
    args = parser.parse_args(argv)
    count = 8 if args.quick else args.count
    jobs = [(kind, args.seed + 1000 * k + i) for k, kind in enumerate(args.kinds)
            for i in range(count)]
    started = time.perf_counter()
    with get_context("spawn").Pool(args.workers) as pool:
        rows = [row for result in pool.imap(evaluate, jobs, chunksize=2) for row in result]
    elapsed = time.perf_counter() - started
    parts = [f"{len(jobs)} items ({count} per kind), seeds from {args.seed}, sizes 640x480 to "
             f"1280x960, JPEG q 85-95; zone = true mask dilated {ZONE_GROW} px; "
             f"{elapsed:.0f} s on {args.workers} workers.", "",
             table(rows, "psnr", "median", 2), "", table(rows, "psnr", "mean", 2), "",
             table(rows, "ssim", "median", 4), "", table(rows, "ssim", "mean", 4), "",
             counts(rows)]
    folders = min(args.folders, 2) if args.quick else args.folders
    if folders > 0:
        parts += ["", folder_section(args.folder_set, folders, args.workers)]
    if not args.no_speed:
        parts += ["", speed(6 if args.quick else 30)]
    text = "\n".join(parts)
    print(text)
    if args.report:
        args.report.write_text(_report_head() + text + "\n")


def _report_head() -> str:
    return ("# Removal benchmark\n\nGenerated by `python bench/removal.py --report "
            "bench/removal-report.md`; see the script's docstring for the rows.\n\n")


if __name__ == "__main__":
    main()
