"""Fit the text-line scorer (models/text_lines.json) on the tuning set.

    python bench/calibrate.py [--quick] [--fp 0.01] [--scale K]
    python bench/calibrate.py --scale 3 --fp 0       # what made models/text_lines.json

Every candidate line the detector proposes on the tuning set's corner-text, logo+text, clean
and hard-clean images is labelled from the exact truth: a mark's line if at least 15 % of its
box is watermark pixels, background if almost none is (in-between boxes are left out). A
logistic regression (L2, Newton steps) is fitted to the lines' cues; then the bias is moved so
that at most ``--fp`` of the clean photos (and ``--hard-fp`` of the hard clean ones) have any
line scoring 0.5 or more (the issue asks for a calibration of at most 1 %). ``--scale K`` fits
on K times the tuning set's items (new seeds of the same tuning distribution) and moves the
bias on as many clean and hard clean tuning photos again that the fit never saw: a quantile
read off the fitted photos themselves is optimistic (0.7 % on them was 2.7 % on 600 others).
The shipped model asks for no held-out clean photo at all (``--fp 0``), which leaves a margin
for real scene structure such as the launch tower the tests use. The reporting set is never
looked at here.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import dataset  # noqa: E402
from clearmark._detect import (  # noqa: E402
    DEFAULT_CONFIG,
    TEXT_FEATURES,
    TextModel,
    find_text_lines,
    working_size,
)
from clearmark._imageio import decode_image  # noqa: E402

MODEL = HERE.parent / "models" / "text_lines.json"
KINDS = ("corner_text", "logo_text", "clean", "clean_hard")
POSITIVE, NEGATIVE = 0.15, 0.01  # share of a line's box that is watermark pixels


def lines_of(spec: dataset.ItemSpec) -> tuple[str, list[tuple[tuple[float, ...], int]]]:
    """(kind, [(features, label)]) for one tuning image; label -1 means left out."""
    sample = dataset.build(spec, dataset_cjk())
    loaded = decode_image(sample.data, max_side=DEFAULT_CONFIG.working_side)
    width, height = loaded.size
    working = working_size((width, height), DEFAULT_CONFIG.working_side)
    target = working[0] / width
    small = cv2.resize(np.asarray(loaded.rgb), working, interpolation=cv2.INTER_AREA)
    truth = cv2.resize(sample.comp.mask, working, interpolation=cv2.INTER_AREA) > 0
    boxes = _box_mask(sample.comp.boxes, target, working)
    flat = TextModel(TEXT_FEATURES, (0.0,) * len(TEXT_FEATURES), 0.0)
    out = []
    for line in find_text_lines(small, DEFAULT_CONFIG, flat):
        if line.n_chars < DEFAULT_CONFIG.min_chars:
            continue  # pieces never start a line: they are not scored
        window = (slice(line.y, line.y + line.height), slice(line.x, line.x + line.width))
        share, inside = float(truth[window].mean()), float(boxes[window].mean())
        out.append((line.features, _label(share, inside)))
    return spec.kind, out


def _label(share: float, inside: float) -> int:
    """1: the mark's line; 0: background, or a line that glued the mark to the texture next
    to it (the detector should prefer the clean cut); -1: unclear, left out."""
    if share >= POSITIVE and inside >= 0.8:
        return 1
    if share <= NEGATIVE or inside < 0.5:
        return 0
    return -1


def _box_mask(boxes: tuple[tuple[int, int, int, int], ...], scale: float,
              working: tuple[int, int]) -> np.ndarray:
    """The mark's element boxes at working scale, grown by a few pixels (line boxes pad)."""
    mask = np.zeros(working[::-1], bool)
    for x, y, w, h in boxes:
        grow = max(2, round(0.3 * h * scale))
        x0, y0 = max(0, round(x * scale) - grow), max(0, round(y * scale) - grow)
        mask[y0:round((y + h) * scale) + grow, x0:round((x + w) * scale) + grow] = True
    return mask


def dataset_cjk() -> str | None:
    font = dataset.synth.find_cjk_font()
    return None if font is None else str(font)


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1.0, steps: int = 30) -> np.ndarray:
    """Logistic regression by Newton's method; the last weight is the bias (not penalised)."""
    design = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ w, -50, 50)))
        grad = design.T @ (p - y) + penalty * w
        hess = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty + 1e-9)
        w -= np.linalg.solve(hess, grad)
    return w


def image_scores(per_image: list[list[tuple[tuple[float, ...], int]]], w: np.ndarray
                 ) -> np.ndarray:
    """Each image's best line logit (-inf for an image without candidates)."""
    best = []
    for lines in per_image:
        logits = [float(np.dot(w[:-1], f) + w[-1]) for f, _ in lines]
        best.append(max(logits, default=-np.inf))
    return np.array(best)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--fp", type=float, default=0.01, help="target FP rate on clean photos")
    parser.add_argument("--hard-fp", type=float, default=0.08,
                        help="target FP rate on hard clean photos (signs, pages, textures)")
    parser.add_argument("--drop", nargs="*", default=["width_share"], metavar="CUE",
                        help="cues left out of the fit (weight 0); width_share by default: it "
                        "rewards lines glued to the texture beside a mark")
    parser.add_argument("--bias-only", action="store_true",
                        help="keep the shipped weights; move only the bias to the FP targets")
    parser.add_argument("--evaluate", action="store_true",
                        help="only score the shipped models/text_lines.json on the tuning set")
    parser.add_argument("--dry-run", action="store_true", help="print, do not write the model")
    parser.add_argument("--scale", type=int, default=1, metavar="K",
                        help="K times the tuning set's items of each kind (more of the same "
                        "tuning distribution, new seeds; never the reporting set)")
    args = parser.parse_args(argv)
    specs = tuning_specs(args.quick, args.scale)
    with ProcessPoolExecutor() as pool:
        results = list(pool.map(lines_of, specs, chunksize=4))
    rows = [(f, label) for _, lines in results for f, label in lines if label >= 0]
    x = np.array([f for f, _ in rows])
    y = np.array([label for _, label in rows], float)
    shipped = json.loads(MODEL.read_text(encoding="utf-8"))
    if args.evaluate:  # the shipped model as it is, on the same lines
        _report(results, np.array([*shipped["weights"], shipped["bias"]]), len(rows),
                int(y.sum()))
        return 0
    if args.bias_only:  # keep the shipped weights, only recalibrate the threshold
        w = np.array([*shipped["weights"], shipped["bias"]], float)
    else:
        keep = np.array([name not in args.drop for name in TEXT_FEATURES])
        w = np.zeros(len(TEXT_FEATURES) + 1)
        w[np.append(keep, True)] = fit(x[:, keep], y)
    # move the bias so that the (1 - fp) quantile of clean images' best logit sits at 0, and
    # the (1 - hard_fp) quantile of hard clean ones: on clean photos the weights were not
    # fitted on when there are such (--scale), since a quantile read off the fitted photos
    # themselves is optimistic (0.7 % in-sample was 2.7 % on 600 new photos)
    held = held_out(args.quick, args.scale) if args.scale > 1 else []
    if held:
        with ProcessPoolExecutor() as pool:
            calibration = list(pool.map(lines_of, held, chunksize=4))
    else:
        calibration = results
    shift = max(_quantile(calibration, "clean", w, 1 - args.fp),
                _quantile(calibration, "clean_hard", w, 1 - args.hard_fp), 0.0)
    w[-1] -= shift + 1e-6
    _report(results, w, len(rows), int(y.sum()))
    if held:
        print("held-out clean photos (the bias was set on these):")
        _report(calibration, w, 0, 0, weights=False)
    if not args.dry_run:
        made = "bench/calibrate.py" + (f" --scale {args.scale}" if args.scale > 1 else "")
        which = "held-out" if held else "its"
        MODEL.write_text(json.dumps({
            "about": "Logistic weights of the text-line score (see clearmark/_detect.py), "
                     f"fitted by {made} on the tuning set; the bias puts the threshold 0.5 at "
                     f"<= {args.fp:.0%} false positives on {which} clean photos and "
                     f"<= {args.hard_fp:.0%} on {which} hard clean ones.",
            "features": list(TEXT_FEATURES),
            "weights": [round(float(v), 5) for v in w[:-1]],
            "bias": round(float(w[-1]), 5),
        }, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {MODEL}")
    return 0


def tuning_specs(quick: bool, scale: int) -> list[dataset.ItemSpec]:
    """The tuning set's items of the kinds fitted on; with ``scale`` K > 1, K times as many
    of each kind (the first ones are the set's own)."""
    cjk = dataset_cjk() is not None
    specs = dataset.specs("tune", quick=quick, kinds=KINDS, cjk=cjk)
    if scale <= 1:
        return specs
    counts = dataset.QUICK_COUNTS if quick else dataset.FULL_COUNTS
    for kind in KINDS:
        for i in range(counts[kind], scale * counts[kind]):
            if kind == "corner_text" and dataset.is_cjk(i) and not cjk:
                continue
            specs.append(dataset.ItemSpec("tune", kind, i, dataset.seed_of("tune", kind, i)))
    return specs


def held_out(quick: bool, scale: int) -> list[dataset.ItemSpec]:
    """Clean and hard clean tuning photos beyond those ``tuning_specs`` fits on: as many
    again of each."""
    counts = dataset.QUICK_COUNTS if quick else dataset.FULL_COUNTS
    return [dataset.ItemSpec("tune", kind, i, dataset.seed_of("tune", kind, i))
            for kind in ("clean", "clean_hard")
            for i in range(scale * counts[kind], 2 * scale * counts[kind])]


def _quantile(results: list[tuple[str, list[tuple[tuple[float, ...], int]]]], kind: str,
              w: np.ndarray, q: float) -> float:
    scores = image_scores([lines for k, lines in results if k == kind], w)
    finite = scores[np.isfinite(scores)]
    # images without any candidate count as passing: the quantile is over all images
    padded = np.concatenate([finite, np.full(len(scores) - len(finite), -1e9)])
    return float(np.quantile(padded, q, method="higher")) if len(padded) else 0.0


def _report(results: list[tuple[str, list[tuple[tuple[float, ...], int]]]], w: np.ndarray,
            n_lines: int, n_pos: int, weights: bool = True) -> None:
    if weights:
        print(f"{n_lines} labelled lines ({n_pos} watermark), {len(results)} images")
        for name, value in zip([*TEXT_FEATURES, "bias"], w, strict=True):
            print(f"  {name:14s} {value:+.3f}")
    for kind in KINDS:
        if not any(k == kind for k, _ in results):
            continue
        scores = image_scores([lines for k, lines in results if k == kind], w)
        rate = float((scores >= 0).mean()) if len(scores) else float("nan")
        print(f"  {kind:12s} n={len(scores):3d}  flagged (any line >= 0.5): {rate:6.1%}")


if __name__ == "__main__":
    raise SystemExit(main())
