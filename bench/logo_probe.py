"""Probe of the low-contrast logo detector (clearmark._logo) on its own.

    python bench/logo_probe.py [--set tune|report] [--quick] [--threshold T] [--dump DIR]
                               [--features FILE] [--objects N]

Each item of the set's logo, logo_text, clean and clean_hard kinds (bench/dataset.py) is drawn
from its seed and encoded; the decision pass's decode is imitated (a reduced decode at 1024 px,
as ``_pipeline.glance`` does) and reduced to the logo detector's working size (512 px), where
``find_logos`` runs (timed, one OpenCV thread). Figures:

  detected   at least half of the mark's pixels (alpha > 0.02) inside the found boxes;
  logo part  the same for the pixels of the mark's first element only (logo_text: its logo,
             the part this detector is for; logo: the whole mark);
  precision  share of the found boxes' area within 1 % of the short side of the truth's
             element boxes, averaged over images with a finding;
  flagged    at least one finding; on clean images a false positive (per hard sub-kind too);
  ms         find_logos per image on the working copy (the decode is not counted).

logo_text marks are half text: the logo detector alone covers their logo, and the text
detector the rest, so their "detected" here understates the whole detector's.
``--objects N`` adds N clean images of the set's photos with one to three opaque objects pasted
in (discs, plates and shields of a photo crop, plain or tinted like metal, 8-25 % of the short
side, mostly where marks go): coins and badges, the case an overlay detector must refuse. They
are drawn from the set's seed and never enter bench/dataset.py's sets.
``--features FILE`` writes the cues of every proposed candidate (those the weighted cues put
forward; the others are dropped early) with a label (pickle), to study the overlay tests'
limits; tune on "tune" only.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import dataset  # noqa: E402
from clearmark import _logo  # noqa: E402
from clearmark._imageio import decode_image  # noqa: E402

import synth  # noqa: E402

KINDS = ("logo", "logo_text", "clean", "clean_hard", "objects")
CLEAN = ("clean", "clean_hard", "objects")
MARGIN = 0.01


def working_copy(data: bytes) -> tuple[np.ndarray, tuple[int, int]]:
    """The decision pass's reduced decode (1024 px), then the logo detector's 512 px copy."""
    image = decode_image(data, max_side=1024)
    width, height = image.size
    rgb = image.rgb
    for side in (1024, _logo.WORKING_SIDE):
        f = min(1.0, side / max(width, height))
        size = (max(1, round(width * f)), max(1, round(height * f)))
        if rgb.shape[1::-1] != size:
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb), (width, height)


def objects_image(set_name: str, index: int) -> np.ndarray:
    """A clean photo of the set with one to three opaque objects pasted in (see --objects)."""
    rng = np.random.default_rng([dataset.SET_SEEDS[set_name], 99, index])
    split = dataset.SPLITS[set_name]
    width, height = dataset._size(rng)
    base, _ = dataset._base(rng, split, width, height, textures=0.0)
    out = base.astype(np.float32)
    sources = split.photos + split.textures
    for _ in range(int(rng.integers(1, 4))):
        size = int(rng.uniform(0.08, 0.25) * min(width, height))
        src = dataset.photo(sources[int(rng.integers(len(sources)))])
        face = cv2.resize(synth.variant(src, rng, 2 * size, 2 * size), (size, size),
                          interpolation=cv2.INTER_AREA).astype(np.float32)
        if rng.random() < 0.5:  # metal or paint: the crop's relief in one tint
            face = np.clip(rng.uniform(60, 230, 3) * (0.6 + 0.8 * face.mean(2, keepdims=True)
                                                       / 255.0), 0, 255)
        cover = _object_cover(rng, size)
        where = synth._pick(rng, ("tl", "tr", "bl", "br", "cc"))
        x, y = synth._anchor(rng, (height, width), (size, size), where)
        if rng.random() < 0.2:
            x, y = int(rng.integers(0, width - size)), int(rng.integers(0, height - size))
        roi = out[y:y + size, x:x + size]
        out[y:y + size, x:x + size] = cover * face + (1.0 - cover) * roi
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _object_cover(rng: np.random.Generator, size: int) -> np.ndarray:
    """An anti-aliased disc, rounded plate or shield, (size, size, 1) coverage 0..1."""
    big = np.zeros((4 * size, 4 * size), np.uint8)
    end = 4 * size - 5
    shape = int(rng.integers(3))
    if shape == 0:
        cv2.circle(big, (2 * size, 2 * size), 2 * size - 2, 255, -1)
    elif shape == 1:
        cv2.rectangle(big, (4, 4), (end, end), 255, -1)
    else:
        points = [[4, 4], [end, 4], [end, int(2.2 * size)], [2 * size, end], [4, int(2.2 * size)]]
        cv2.fillPoly(big, [np.array(points, np.int32)], 255)
    cover = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    return cover[..., None] / 255.0


def full_boxes(findings: list[_logo.LogoFinding], scale: float, width: int,
               height: int) -> list[tuple[int, int, int, int]]:
    out = []
    for f in findings:
        x, y, w, h = f.box
        x0, y0 = max(0, int(x / scale)), max(0, int(y / scale))
        x1 = min(width, int(np.ceil((x + w) / scale)))
        y1 = min(height, int(np.ceil((y + h) / scale)))
        out.append((x0, y0, x1 - x0, y1 - y0))
    return out


def measure(mask: np.ndarray, truth_boxes: tuple[tuple[int, int, int, int], ...],
            boxes: list[tuple[int, int, int, int]]) -> tuple[float, float | None]:
    """(recall of the mark's pixels by the boxes, precision of the boxes' area)."""
    h, w = mask.shape
    pred = np.zeros((h, w), bool)
    for x, y, bw, bh in boxes:
        pred[y:y + bh, x:x + bw] = True
    truth = mask > 0
    recall = float((pred & truth).sum()) / max(int(truth.sum()), 1)
    if not pred.any():
        return recall, None
    m = max(1, round(MARGIN * min(h, w)))
    near = np.zeros((h, w), bool)
    for x, y, bw, bh in truth_boxes:
        near[max(0, y - m):y + bh + m, max(0, x - m):x + bw + m] = True
    return recall, float((pred & near).sum()) / float(pred.sum())


def candidate_rows(spec: dataset.ItemSpec, rgb: np.ndarray, scale: float,
                   truth_boxes: tuple[tuple[int, int, int, int], ...], hard: str) -> list[dict]:
    """Every candidate's cues, labelled 1 when its box sits on the mark's (first) element."""
    rows = []
    truth = [tuple(v * scale for v in b) for b in truth_boxes[:1]]
    for cand in _logo.candidates(rgb, every_cue=True):
        x, y, w, h = cand.box
        label = 0
        for tx, ty, tw, th in truth:
            ix = max(0.0, min(x + w, tx + tw) - max(x, tx))
            iy = max(0.0, min(y + h, ty + th) - max(y, ty))
            if ix * iy > 0.5 * w * h and ix * iy > 0.3 * tw * th:
                label = 1
        rows.append({"name": spec.name, "kind": spec.kind, "hard": hard, "label": label,
                     "window": cand.window, "mark": cand.mark, **cand.features})
    return rows


def dump(out: Path, name: str, rgb: np.ndarray, findings: list[_logo.LogoFinding]) -> None:
    img = rgb.copy()
    for f in findings:
        x, y, w, h = f.box
        cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), (255, 0, 0), 1)
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(out / f"{name}.png")


def run(args: argparse.Namespace) -> dict[str, list[dict]]:
    cv2.setNumThreads(1)
    items = dataset.specs(args.set, quick=args.quick, kinds=KINDS[:4])
    items += [dataset.ItemSpec(args.set, "objects", i, i) for i in range(args.objects)]
    results: dict[str, list[dict]] = defaultdict(list)
    rows: list[dict] = []
    for i, spec in enumerate(items):
        if spec.kind == "objects":
            image = objects_image(args.set, spec.index)
            sample = dataset.Sample(spec, synth.no_mark(image), dataset.encode(image, "JPEG", 90),
                                    {})
        else:
            sample = dataset.build(spec)
        rgb, (width, height) = working_copy(sample.data)
        scale = rgb.shape[1] / width
        t0 = time.perf_counter()
        findings = _logo.find_logos(rgb, args.threshold)
        ms = (time.perf_counter() - t0) * 1000
        boxes = full_boxes(findings, scale, width, height)
        recall, precision = measure(sample.comp.mask, sample.comp.boxes, boxes)
        part = recall
        if len(sample.comp.boxes) > 1:
            first = np.zeros_like(sample.comp.mask)
            x, y, w, h = sample.comp.boxes[0]
            first[y:y + h, x:x + w] = sample.comp.mask[y:y + h, x:x + w]
            part = measure(first, sample.comp.boxes, boxes)[0]
        hard = sample.attrs.get("hard", "")
        results[spec.kind].append({"name": spec.name, "hard": hard, "flagged": bool(findings),
                                   "detected": recall >= 0.5, "part": part >= 0.5,
                                   "precision": precision,
                                   "ms": ms})
        if args.features:
            rows += candidate_rows(spec, rgb, scale, sample.comp.boxes, hard)
        failed = (spec.kind in CLEAN) == bool(findings)
        if args.dump and failed:
            dump(Path(args.dump), spec.name, rgb, findings)
        print(f"\r  {i + 1}/{len(items)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if args.features:
        Path(args.features).write_bytes(pickle.dumps(rows))
    return results


def report(results: dict[str, list[dict]], set_name: str, threshold: float) -> str:
    lines = [f"logo probe: set {set_name}, threshold {threshold}", "",
             "| kind | n | detected | logo part | precision | flagged | ms/image (mean, p95) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for kind in KINDS:
        rs = results.get(kind, [])
        if not rs:
            continue
        precisions = [r["precision"] for r in rs if r["precision"] is not None]
        ms = np.array([r["ms"] for r in rs])
        marked = kind in ("logo", "logo_text")
        detected = f"{np.mean([r['detected'] for r in rs]):.0%}" if marked else ""
        part = f"{np.mean([r['part'] for r in rs]):.0%}" if marked else ""
        lines.append(f"| {kind} | {len(rs)} | {detected} | {part} | "
                     f"{np.mean(precisions) if precisions else float('nan'):.2f} | "
                     f"{np.mean([r['flagged'] for r in rs]):.1%} | "
                     f"{ms.mean():.1f}, {np.percentile(ms, 95):.1f} |")
    hard: dict[str, list[bool]] = defaultdict(list)
    for r in results.get("clean_hard", []):
        hard[r["hard"]].append(r["flagged"])
    lines += ["", "clean_hard flagged by sub-kind: " + ", ".join(
        f"{k} {sum(v)}/{len(v)}" for k, v in sorted(hard.items()))]
    flagged = [r["name"] for k in CLEAN for r in results.get(k, []) if r["flagged"]]
    lines += [f"flagged clean images: {', '.join(flagged) or 'none'}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", choices=tuple(dataset.SET_SEEDS), default="tune")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threshold", type=float, default=_logo.THRESHOLD)
    parser.add_argument("--dump", help="folder for PNGs of misses and flagged clean images")
    parser.add_argument("--features", help="pickle every candidate's cues here")
    parser.add_argument("--objects", type=int, default=0, metavar="N",
                        help="add N clean photos with opaque objects pasted in")
    args = parser.parse_args(argv)
    print(report(run(args), args.set, args.threshold))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
