"""The first detector: text and high-contrast marks in the border bands.

Corner watermarks (handles, URLs, "© name") share cues that ordinary photo content rarely has
all at once: a row of character-sized blobs of one height on one baseline, drawn in one flat
colour, with a consistent stroke width, standing isolated on a background that carries little
other fine detail, close to an image border. The detector finds candidate strokes with
morphological top-hat / black-hat filters (bright and dark text), groups them into lines and
scores each line on those cues. Everything runs on a reduced working copy of the image; the
stroke mask is then rebuilt at full resolution inside the accepted regions only.

All functions are pure functions of arrays and a frozen ``DetectorConfig``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib.resources import files
from typing import Any

import cv2
import numpy as np

from ._folder import Match, SharedMark, mark_mask, mark_region, match_shared_mark, working_gray
from ._regions import Detection, Region, merge_regions, regions_to_mask


@dataclass(frozen=True)
class DetectorConfig:
    """Tunable detector settings; small, frozen and picklable, so it travels to workers."""

    working_side: int = 1024  # long side of the working copy; text 2.5 % high stays >= 12 px
    band: float = 0.22  # share of the height searched at the top and at the bottom
    min_text_height: float = 0.012  # character heights, as a share of the image height
    max_text_height: float = 0.09
    min_chars: int = 3  # a "line" needs this many character-like blobs
    threshold: float = 0.5  # line score at and above which an image counts as watermarked
    pad: float = 0.25  # region padding, as a share of the line height

    def __post_init__(self) -> None:
        if self.working_side < 64:
            raise ValueError("working_side must be at least 64")
        if not 0 < self.band <= 0.5:
            raise ValueError("band must be in (0, 0.5]")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError("threshold must be in [0, 1]")


DEFAULT_CONFIG = DetectorConfig()


@dataclass(frozen=True)
class _Line:
    """A candidate text line at working scale: its box, its stroke polarity and its score."""

    x: int
    y: int
    width: int
    height: int
    char_height: float
    n_chars: int
    bright: bool
    threshold: float  # the stroke response level the line was cut at
    score: float
    features: tuple[float, ...] = ()  # the cues the score came from (see TextModel)


def detect_array(rgb: np.ndarray, config: DetectorConfig = DEFAULT_CONFIG,
                 marks: Sequence[SharedMark] = ()) -> Detection:
    """Detect watermarks in an RGB image.

    rgb : (H, W, 3) uint8 array, RGB order.
    marks : marks shared by this image's folder (see ``_folder``), looked for as well.
    Returns a ``Detection`` whose regions and mask are in full-resolution pixels.
    """
    _check_rgb(rgb)
    return refine(rgb, find(rgb, (rgb.shape[1], rgb.shape[0]), config, marks))


@dataclass(frozen=True, eq=False)
class Finding:
    """What the cheap pass found on a reduced copy: enough to decide, and to report regions.

    Most images are clean, and a clean image needs nothing more (its bytes are copied), so a
    pipeline decodes it at reduced size only; a watermarked one is then decoded in full and
    ``refine`` draws its mask.
    """

    size: tuple[int, int]  # full width, height
    scale: float  # working pixels per full pixel
    lines: tuple[_Line, ...]
    shared: tuple[tuple[Region, SharedMark, Match], ...]
    regions: tuple[Region, ...]
    score: float

    @property
    def watermarked(self) -> bool:
        return bool(self.regions)

    def to_dict(self) -> dict[str, Any]:
        """The same JSON form as ``Detection.to_dict``."""
        return {"watermarked": self.watermarked, "score": round(self.score, 4),
                "regions": [region.to_dict() for region in self.regions]}


def find(rgb: np.ndarray, size: tuple[int, int], config: DetectorConfig = DEFAULT_CONFIG,
         marks: Sequence[SharedMark] = ()) -> Finding:
    """The cheap pass, on ``rgb``: the image itself or a reduced decode of an image whose full
    size is ``size`` (width, height)."""
    _check_rgb(rgb)
    width, height = size
    target = min(1.0, config.working_side / max(width, height))
    working = (max(1, round(width * target)), max(1, round(height * target)))
    small = rgb if rgb.shape[1::-1] == working else cv2.resize(
        rgb, working, interpolation=cv2.INTER_AREA)
    scale = working[0] / width
    lines = _accept(find_text_lines(small, config), config.threshold, config.min_chars)
    shared = [hit for hit in (_shared_mark(small, size, mark, config) for mark in marks)
              if hit is not None]
    regions = [_to_full_region(line, scale, width, height, config) for line in lines]
    regions += [region for region, _, _ in shared]
    score = max([_image_score(lines), *(region.score for region, _, _ in shared)])
    return Finding(size, scale, tuple(lines), tuple(shared), tuple(merge_regions(regions)),
                   score)


def refine(rgb: np.ndarray, finding: Finding) -> Detection:
    """The full-resolution mask of what ``find`` found; ``rgb`` is the full image."""
    if rgb.shape[1::-1] != finding.size:
        raise ValueError(f"image is {rgb.shape[1]}x{rgb.shape[0]}, the finding is for "
                         f"{finding.size[0]}x{finding.size[1]}")
    height, width = rgb.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    if finding.lines:
        mask |= _stroke_mask(rgb, list(finding.lines), list(finding.regions), finding.scale)
    for _, mark, match in finding.shared:
        mask |= mark_mask(mark, match, width, height)
    return Detection(finding.watermarked, finding.score, finding.regions, mask)


def _shared_mark(small: np.ndarray, size: tuple[int, int], mark: SharedMark,
                 config: DetectorConfig) -> tuple[Region, SharedMark, Match] | None:
    """A folder's shared mark, where this image carries it (maybe shifted a little)."""
    width, height = size
    if abs(width / height - mark.aspect) > 0.01 * mark.aspect:
        return None
    match = match_shared_mark(working_gray(small), mark)
    score = 1.0 / (1.0 + math.exp(-12.0 * (match.score - _FOLDER_MATCH)))
    if score < config.threshold:
        return None
    region = mark_region(mark, match, width, height)
    if region is None:
        return None
    return replace(region, score=round(score, 4)), mark, match


def find_text_lines(rgb: np.ndarray, config: DetectorConfig = DEFAULT_CONFIG,
                    model: TextModel | None = None) -> list[_Line]:
    """Scored candidate text lines in the top and bottom bands of an RGB working image."""
    model = model or text_model()
    height, width = rgb.shape[:2]
    band = max(8, round(height * config.band))
    lines: list[_Line] = []
    for top in sorted({0, max(0, height - band)}):
        strip = rgb[top:top + band]
        for bright in (True, False):
            found, blobs = _lines_in_strip(strip, bright, height, config)
            scored = [model.score(_placed(replace(line, y=line.y + top), width, height))
                      for line in found]
            pieces = _pieces([replace(b, y=b.y + top) for b in blobs], scored, config.threshold)
            lines += scored + pieces
    return lines


def _placed(line: _Line, width: int, height: int) -> _Line:
    """Add where the line sits to its cues: marks hug the borders, scene text need not."""
    centre = line.y + line.height / 2
    position = (min(centre, height - centre) / height,
                min(line.x, width - line.x - line.width) / width,
                line.width / width, line.char_height / height)
    return replace(line, features=line.features + position)


@dataclass(frozen=True)
class TextModel:
    """A logistic text-line scorer: weights per named cue, from ``models/text_lines.json``."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float

    def score(self, line: _Line) -> _Line:
        logit = self.bias + sum(w * f for w, f in zip(self.weights, line.features, strict=True))
        return replace(line, score=1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit)))))


TEXT_FEATURES = ("n_chars", "isolation", "height_spread", "stroke_cv", "flatness", "contrast",
                 "edge_distance", "side_distance", "width_share", "height_share")


@cache
def text_model() -> TextModel:
    """The shipped scorer (read once per process)."""
    data = json.loads(files("clearmark.models").joinpath("text_lines.json").read_text("utf-8"))
    if tuple(data["features"]) != TEXT_FEATURES:
        raise ValueError(f"text_lines.json has features {data['features']}, "
                         f"this version computes {list(TEXT_FEATURES)}")
    return TextModel(TEXT_FEATURES, tuple(float(w) for w in data["weights"]),
                     float(data["bias"]))


def _accept(candidates: list[_Line], threshold: float, min_chars: int) -> list[_Line]:
    """Lines of ``min_chars`` or more at or above the threshold, plus weaker pieces (even a
    lone character) continuing one of them on its row.

    A mark's text often splits into pieces (at an underscore, over a changing background);
    a weak piece next to a strong one is the same mark (hysteresis, as in edge linking).
    """
    accepted: list[_Line] = []
    weak = []
    for line in sorted(candidates, key=lambda item: -item.score):
        if line.score >= threshold and line.n_chars >= min_chars:
            # the same text cut at several stroke levels: keep the best cut, whose box does
            # not carry the texture a lower cut glued to it
            if not any(_same_place(line, kept) for kept in accepted):
                accepted.append(line)
        elif line.score >= _PIECE_BAR * threshold:
            weak.append(line)
    grew = True
    while grew and weak:
        grew = False
        for line in list(weak):
            if any(_continues(line, strong) for strong in accepted):
                accepted.append(line)
                weak.remove(line)
                grew = True
    return accepted


def _same_place(a: _Line, b: _Line) -> bool:
    """Boxes of one polarity overlapping by more than half of the smaller one."""
    w = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    h = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    smaller = min(a.width * a.height, b.width * b.height)
    return a.bright == b.bright and w > 0 and h > 0 and w * h > 0.5 * smaller


def _continues(piece: _Line, line: _Line) -> bool:
    """Same row, similar letters, and a gap of at most two letter heights."""
    tall = max(piece.char_height, line.char_height)
    same_row = abs((piece.y + piece.height / 2) - (line.y + line.height / 2)) < 0.5 * tall
    similar = tall <= 1.6 * min(piece.char_height, line.char_height)
    gap = max(piece.x - (line.x + line.width), line.x - (piece.x + piece.width))
    return same_row and similar and gap <= 2 * tall


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise TypeError("image must be a uint8 numpy array")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"image must have shape (H, W, 3), got {rgb.shape}")


def _kernel_size(image_height: int, config: DetectorConfig) -> int:
    """A top-hat kernel wider than the thickest expected stroke (about a fifth of the text)."""
    return max(5, round(image_height * config.max_text_height * 0.3) | 1)


def _stroke_response(strip: np.ndarray, bright: bool, ksize: int) -> np.ndarray:
    """Per-pixel strength of thin bright (top-hat) or dark (black-hat) strokes, the strongest
    over the three channels, so coloured text on a background of similar brightness shows."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (ksize, ksize))
    op = cv2.MORPH_TOPHAT if bright else cv2.MORPH_BLACKHAT
    red, green, blue = cv2.split(cv2.morphologyEx(strip, op, kernel))
    return np.asarray(cv2.max(cv2.max(red, green), blue))  # cv2: far faster than ndarray.max


_FOLDER_MATCH = 0.3  # gradient correlation that scores 0.5 (shared marks score 0.3-0.8,
# other photos below 0.2 on the synthetic folders of bench/)
_PIECE_BAR = 0.2  # a piece may extend a line if it scores this share of the threshold
_STROKE_LEVELS = (24.0, 40.0, 64.0, 100.0)  # response thresholds tried, faint to strong


def _stroke_thresholds(response: np.ndarray) -> list[float]:
    """Thresholds to cut strokes at: a faint mark needs a low one, a mark over texture a high
    one (a low cut glues it to the texture), so several are tried; those below twice the
    strip's texture level would only find texture and are skipped."""
    floor = 2.0 * float(np.mean(response))
    return [level for level in _STROKE_LEVELS if level >= floor] or [_STROKE_LEVELS[-1]]


def _lines_in_strip(strip: np.ndarray, bright: bool, image_height: int,
                    config: DetectorConfig) -> tuple[list[_Line], list[_Line]]:
    """Unscored candidate lines (their cues computed) and every character-like blob."""
    response = _stroke_response(strip, bright, _kernel_size(image_height, config))
    lines: list[_Line] = []
    blobs: list[_Line] = []
    for threshold in _stroke_thresholds(response):
        binary = (response > threshold).astype(np.uint8)
        _, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        chars = _character_components(stats[1:], image_height, config)
        for group in _group_into_lines(stats[1:], chars):
            if len(group) >= config.min_chars:
                lines.append(_score_line(strip, binary, response, stats[1:], group, bright,
                                         threshold))
        blobs += [_blob(stats[1 + i], bright, threshold) for i in chars]
    return lines, blobs


def _blob(stat: np.ndarray, bright: bool, threshold: float) -> _Line:
    x, y, w, h = (int(v) for v in stat[:4])
    return _Line(x, y, w, h, float(h), 1, bright, threshold, 0.0)


def _pieces(blobs: list[_Line], lines: list[_Line], threshold: float) -> list[_Line]:
    """Character blobs (from any stroke threshold) that continue a promising line on its row.

    A mark's text often splits (at an underscore, over a changing background, where a low cut
    glues it to texture and a high cut loses faint letters); a blob right beside a line is
    part of it. Pieces take the line's score but never start a line themselves.
    """
    anchors = [line for line in lines if line.score >= _PIECE_BAR * threshold]
    pieces = []
    for blob in blobs:
        for anchor in anchors:
            if blob.bright == anchor.bright and _continues(blob, anchor):
                pieces.append(replace(blob, score=anchor.score))
                break
    return pieces


def _character_components(stats: np.ndarray, image_height: int,
                          config: DetectorConfig) -> np.ndarray:
    """Indices of components whose size and shape could be one character (or a few joined)."""
    w, h, area = stats[:, 2], stats[:, 3], stats[:, 4]
    lo, hi = config.min_text_height * image_height, config.max_text_height * image_height
    fill = area / np.maximum(w * h, 1)
    # wide blobs are letters joined by an underscore or a tight bold face
    ok = (h >= lo) & (h <= hi) & (w <= 10 * h) & (fill > 0.12) & (fill < 0.95)
    return np.flatnonzero(ok)


def _group_into_lines(stats: np.ndarray, chars: np.ndarray) -> list[list[int]]:
    """Chain character blobs left to right when they share a centre line, a height and are near."""
    order = chars[np.argsort(stats[chars, 0], kind="stable")]
    parent = {int(i): int(i) for i in order}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for pos, a in enumerate(order):
        xa, ya, wa, ha = (int(v) for v in stats[a, :4])
        for b in order[pos + 1:]:
            xb, yb, _, hb = (int(v) for v in stats[b, :4])
            tall = max(ha, hb)
            if xb - (xa + wa) > 1.2 * tall:
                break
            same_row = abs((ya + ha / 2) - (yb + hb / 2)) < 0.45 * tall
            if same_row and max(ha, hb) <= 2.2 * min(ha, hb):
                parent[find(int(a))] = find(int(b))
    groups: dict[int, list[int]] = {}
    for i in order:
        groups.setdefault(find(int(i)), []).append(int(i))
    return list(groups.values())


def _score_line(strip: np.ndarray, binary: np.ndarray, response: np.ndarray,
                stats: np.ndarray, group: list[int], bright: bool, threshold: float) -> _Line:
    boxes = stats[group, :4]
    x0, y0 = int(boxes[:, 0].min()), int(boxes[:, 1].min())
    x1 = int((boxes[:, 0] + boxes[:, 2]).max())
    y1 = int((boxes[:, 1] + boxes[:, 3]).max())
    heights = boxes[:, 3].astype(np.float64)
    char_height = float(np.median(heights))
    cues = _line_cues(strip, binary, response, (x0, y0, x1, y1), char_height, heights,
                      len(group))
    features = (min(cues["n_chars"], 12.0), cues["isolation"], cues["height_spread"],
                cues["stroke_cv"], cues["flatness"], min(cues["contrast"] / 40.0, 2.5))
    return _Line(x0, y0, x1 - x0, y1 - y0, char_height, len(group), bright, threshold, 0.0,
                 features)


def _line_cues(strip: np.ndarray, binary: np.ndarray, response: np.ndarray,
               box: tuple[int, int, int, int], char_height: float, heights: np.ndarray,
               n_chars: int) -> dict[str, float]:
    x0, y0, x1, y1 = box
    stroke = binary[y0:y1, x0:x1].astype(bool)
    core = _stroke_core(binary[y0:y1, x0:x1])
    pixels = strip[y0:y1, x0:x1]
    contrast = float(np.mean(response[y0:y1, x0:x1][stroke])) if stroke.any() else 0.0
    return {
        "n_chars": float(n_chars),
        "height_spread": _robust_spread(heights),
        "isolation": _ring_density(binary, box, char_height) / max(float(stroke.mean()), 1e-3),
        "flatness": max(_iqr(pixels[core][:, c]) for c in range(3)) / max(contrast, 1.0)
        if core.any() else 1.0,
        "contrast": contrast,
        "stroke_cv": _stroke_width_cv(binary[y0:y1, x0:x1]),
    }


def _stroke_core(stroke: np.ndarray) -> np.ndarray:
    """Stroke pixels away from the anti-aliased edge (all of them for hairline strokes)."""
    core = cv2.erode(stroke, np.ones((3, 3), np.uint8)).astype(bool)
    return core if core.sum() >= 0.2 * stroke.sum() else stroke.astype(bool)


def _ring_density(binary: np.ndarray, box: tuple[int, int, int, int], char_height: float) -> float:
    """Share of stroke-like pixels in a ring around the line: text stands on a quiet ground."""
    x0, y0, x1, y1 = box
    margin = max(2, round(char_height * 0.8))
    rx0, ry0 = max(0, x0 - margin), max(0, y0 - margin)
    rx1, ry1 = min(binary.shape[1], x1 + margin), min(binary.shape[0], y1 + margin)
    ring = binary[ry0:ry1, rx0:rx1].astype(bool).copy()
    ring[y0 - ry0:y1 - ry0, x0 - rx0:x1 - rx0] = False
    ring_area = (ry1 - ry0) * (rx1 - rx0) - (y1 - y0) * (x1 - x0)
    return float(ring.sum()) / max(ring_area, 1)


def _robust_spread(values: np.ndarray) -> float:
    """Median absolute deviation over the median: descenders and '@' do not count as spread."""
    median = float(np.median(values))
    return float(np.median(np.abs(values - median))) / max(median, 1.0)


def _iqr(values: np.ndarray) -> float:
    q25, q75 = np.percentile(values, [25, 75])
    return float(q75 - q25)


def _stroke_width_cv(stroke: np.ndarray) -> float:
    """Spread of stroke widths along the stroke ridges; printed text keeps it low."""
    dist = cv2.distanceTransform(stroke, cv2.DIST_L2, 3)
    ridge = (dist > 0) & (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)))
    widths = dist[ridge]
    if widths.size < 4:
        return 1.0
    return float(np.std(widths) / max(float(np.mean(widths)), 1e-6))


def _image_score(lines: list[_Line]) -> float:
    """The image's score is its best line's score (0 when no line was a candidate)."""
    return max((line.score for line in lines), default=0.0)


def _to_full_region(line: _Line, scale: float, width: int, height: int,
                    config: DetectorConfig) -> Region:
    pad = line.char_height * config.pad
    x0 = math.floor((line.x - pad) / scale)
    y0 = math.floor((line.y - pad) / scale)
    x1 = math.ceil((line.x + line.width + pad) / scale)
    y1 = math.ceil((line.y + line.height + pad) / scale)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    return Region(x0, y0, x1 - x0, y1 - y0, score=round(line.score, 4), kind="text")


def _stroke_mask(rgb: np.ndarray, lines: list[_Line], regions: list[Region],
                 scale: float) -> np.ndarray:
    """Rebuild the stroke mask at full resolution, only inside the accepted regions."""
    height, width = rgb.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    inside = regions_to_mask(regions, height, width)
    for line in lines:
        x0 = max(0, math.floor(line.x / scale) - 2)
        y0 = max(0, math.floor(line.y / scale) - 2)
        x1 = min(width, math.ceil((line.x + line.width) / scale) + 2)
        y1 = min(height, math.ceil((line.y + line.height) / scale) + 2)
        char_height = line.char_height / scale
        ksize = max(5, round(char_height * 0.6) | 1)
        crop = rgb[max(0, y0 - ksize):min(height, y1 + ksize),
                    max(0, x0 - ksize):min(width, x1 + ksize)]
        response = _stroke_response(crop, line.bright, ksize)
        strokes = (response > line.threshold).astype(np.uint8)
        oy, ox = y0 - max(0, y0 - ksize), x0 - max(0, x0 - ksize)
        mask[y0:y1, x0:x1] |= strokes[oy:oy + (y1 - y0), ox:ox + (x1 - x0)] * 255
    grow = max(1, round(max(line.char_height for line in lines) / scale * 0.08))
    grown = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                       (2 * grow + 1, 2 * grow + 1)))
    return np.where(inside > 0, grown, 0).astype(np.uint8)
