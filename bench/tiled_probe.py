"""Probe of the tiled-mark detector (clearmark._tiled) alone, on a benchmark set.

    python bench/tiled_probe.py [--set tune|report] [--quick] [--kinds tiled,clean,clean_hard]

Each item is drawn from its seed (bench/dataset.py), encoded, decoded as the decision pass
decodes it (clearmark's decoder at the detector's working size), turned gray and reduced
to ``_tiled.WORKING_SIDE`` (INTER_AREA); then ``find_tiled`` decides, and ``tiled_mask`` draws
the full-resolution mask of the images found. One process, one OpenCV thread. Definitions as
in bench/detect.py:
  flagged    find_tiled's finding is watermarked (score >= 0.5); on clean images, a false
             positive;
  recall     share of the watermark's pixels (alpha > 0.02) inside the mask;
  detected   flagged and recall >= 0.5;
  precision  share of the mask within 1 % of the short side of the truth, over flagged images.
Times per image: "decide" is gray conversion + reduction + find_tiled on the decoded copy;
"mask" is tiled_mask at full size (flagged images only). Tune on "tune"; "report" is for the
figures only.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import dataset  # noqa: E402
from clearmark import _tiled  # noqa: E402
from clearmark._detect import DetectorConfig  # noqa: E402
from clearmark._imageio import decode_image  # noqa: E402

DECODE_SIDE = DetectorConfig().working_side  # the decision pass's reduced decode
MARGIN = 0.01  # precision margin, share of the short side


@dataclass(frozen=True)
class Probe:
    name: str
    group: str  # kind, or clean_hard/<sub-kind>
    flagged: bool
    score: float
    recall: float | None
    precision: float | None
    t_decide: float
    t_mask: float


def working_gray(rgb: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    height, width = gray.shape
    factor = _tiled.WORKING_SIDE / max(height, width)
    if factor >= 1:
        return gray
    size = (round(width * factor), round(height * factor))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def probe(spec: dataset.ItemSpec) -> Probe:
    sample = dataset.build(spec)
    rgb = decode_image(sample.data, max_side=DECODE_SIDE).rgb
    t0 = time.perf_counter()
    finding = _tiled.find_tiled(working_gray(rgb))
    t1 = time.perf_counter()
    flagged = finding is not None and finding.watermarked
    group = spec.kind if spec.kind != "clean_hard" else f"clean_hard/{sample.attrs['hard']}"
    recall = precision = None
    t_mask = 0.0
    truth = sample.comp.mask > 0
    if flagged:
        assert finding is not None
        height, width = truth.shape
        t2 = time.perf_counter()
        mask = _tiled.tiled_mask(finding, width, height) > 0
        t_mask = time.perf_counter() - t2
        m = max(1, round(MARGIN * min(height, width)))
        near = cv2.dilate(sample.comp.mask, np.ones((2 * m + 1, 2 * m + 1), np.uint8)) > 0
        precision = float(near[mask].mean()) if mask.any() else 0.0
        recall = float(mask[truth].mean()) if truth.any() else None
    elif truth.any():
        recall = 0.0
    return Probe(spec.name, group, flagged, finding.score if finding else 0.0, recall,
                 precision, t1 - t0, t_mask)


def report(results: list[Probe]) -> None:
    groups: dict[str, list[Probe]] = defaultdict(list)
    for r in results:
        groups[r.group].append(r)
        if r.group.startswith("clean_hard/"):
            groups["clean_hard"].append(r)
    print(f"{'group':22s} {'n':>4s} {'flagged':>8s} {'detected':>9s} {'recall':>7s} "
          f"{'precision':>9s} {'decide ms':>10s} {'p95 ms':>7s}")
    for group in sorted(groups, key=lambda g: (not g.startswith("tiled"), g)):
        rs = groups[group]
        flagged = np.mean([r.flagged for r in rs])
        marked = [r for r in rs if r.recall is not None]
        detected = (f"{np.mean([r.flagged and r.recall >= 0.5 for r in marked]):9.1%}"
                    if marked else f"{'':9s}")
        recall = f"{np.mean([r.recall for r in marked]):7.3f}" if marked else f"{'':7s}"
        precs = [r.precision for r in rs if r.precision is not None]
        precision = f"{np.mean(precs):9.3f}" if precs else f"{'':9s}"
        times = np.array([r.t_decide for r in rs]) * 1000
        print(f"{group:22s} {len(rs):4d} {flagged:8.1%} {detected} {recall} {precision} "
              f"{times.mean():10.2f} {np.percentile(times, 95):7.2f}")
    masks = [r.t_mask * 1000 for r in results if r.flagged]
    if masks:
        print(f"mask drawing (flagged images): {np.mean(masks):.1f} ms mean at full size")
    times = np.array([r.t_decide for r in results]) * 1000
    print(f"decision over all {len(results)} images: {times.mean():.2f} ms mean, "
          f"{np.median(times):.2f} ms median")
    for r in results:
        if r.group == "tiled" and not (r.flagged and (r.recall or 0) >= 0.5):
            print(f"  missed {r.name}: score {r.score:.3f}, recall {r.recall}")
        if r.group.startswith("clean") and r.flagged:
            print(f"  false positive {r.name} ({r.group}): score {r.score:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", choices=tuple(dataset.SET_SEEDS), default="tune")
    parser.add_argument("--quick", action="store_true", help="the set's quick subset")
    parser.add_argument("--kinds", default="tiled,clean,clean_hard",
                        help="comma-separated kinds (default: tiled,clean,clean_hard)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    kinds = tuple(args.kinds.split(","))
    specs = dataset.specs(args.set, quick=args.quick, cjk=False,
                          kinds=tuple(k for k in kinds if k != "folder"))
    print(f"tiled probe: set {args.set}{' (quick)' if args.quick else ''}, {len(specs)} images, "
          f"working side {_tiled.WORKING_SIDE}")
    report([probe(spec) for spec in specs])


if __name__ == "__main__":
    main()
