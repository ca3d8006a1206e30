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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib.resources import files
from typing import Any, NamedTuple

import cv2
import numpy as np

from ._folder import (
    MATCHED,
    WORKING_WIDTH,
    Match,
    SharedMark,
    TemplateHit,
    find_template,
    mark_mask,
    mark_region,
    match_shared_mark,
    template_mask,
    template_region,
    working_gray,
)
from ._logo import MIN_SIDE as LOGO_MIN_SIDE
from ._logo import LogoFinding, find_logos, logo_mask
from ._marks import load_template
from ._regions import Detection, Region, mask_to_regions, merge_regions, regions_to_mask
from ._tiled import TiledFinding, find_tiled, tiled_mask


@dataclass(frozen=True)
class DetectorConfig:
    """Tunable detector settings; small, frozen and picklable, so it travels to workers."""

    working_side: int = 576  # the working copy's long side is 1x to 2x this (``working_size``)
    band: float = 0.22  # share of the height searched at the top and at the bottom
    min_text_height: float = 0.012  # character heights, as a share of the image height
    max_text_height: float = 0.09
    min_chars: int = 3  # a "line" needs this many character-like blobs
    threshold: float = 0.5  # line score at and above which an image counts as watermarked
    pad: float = 0.25  # region padding, as a share of the line height
    templates: tuple[str, ...] = ()  # mark files (``clearmark learn``) looked for anywhere

    def __post_init__(self) -> None:
        if self.working_side < 64:
            raise ValueError("working_side must be at least 64")
        if not 0 < self.band <= 0.5:
            raise ValueError("band must be in (0, 0.5]")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError("threshold must be in [0, 1]")
        if not isinstance(self.templates, tuple) or not all(
                isinstance(path, str) for path in self.templates):
            raise ValueError("templates must be a tuple of file paths")


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
    recut: bool = False  # found by cutting a line again by its colour (``_recut``)


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
    tiled: TiledFinding | None  # a mark repeated over the image, when one was found
    logos: tuple[LogoFinding, ...]  # semi-transparent logos, boxes in working pixels
    templates: tuple[tuple[Region, SharedMark, TemplateHit], ...]  # users' marks found
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
    small = working_copy(rgb, size, config)
    scale = small.shape[1] / size[0]
    lines = _accept(find_text_lines(small, config), config.threshold, config.min_chars)
    gray = working_gray(small) if marks or config.templates else None  # for both, once
    finding = Finding(size, scale, tuple(lines), (), _tiled(small, config),
                      _logos(small, config, lines), _templates(gray, size, config), (), 0.0)
    return with_marks(finding, gray, marks, config) if marks else _assembled(finding, config)


def working_copy(rgb: np.ndarray, size: tuple[int, int],
                 config: DetectorConfig = DEFAULT_CONFIG) -> np.ndarray:
    """``rgb`` (the image whose full size is ``size``, or a reduced decode of it) at the
    size detection works at (``working_size``)."""
    working = working_size(size, config.working_side)
    return rgb if rgb.shape[1::-1] == working else cv2.resize(
        rgb, working, interpolation=cv2.INTER_AREA)


def with_marks(finding: Finding, gray: np.ndarray | None, marks: Sequence[SharedMark],
               config: DetectorConfig = DEFAULT_CONFIG) -> Finding:
    """``finding`` with a folder's shared ``marks`` looked for in its image (``gray``, the
    image's ``working_gray``) instead of those it had: what ``find`` with these marks gives.

    A run that learns a folder's mark from the same pass that decides its images finishes
    the decision of the images it learned from this way, without decoding them again."""
    shared = tuple(hit for hit in (_shared_mark(gray, finding.size, mark, config)
                                   for mark in marks) if hit is not None)
    return _assembled(replace(finding, shared=shared), config)


def _assembled(finding: Finding, config: DetectorConfig) -> Finding:
    """The finding's regions (merged, at most 50) and score, from what each stage found."""
    size, scale = finding.size, finding.scale
    lines, shared, tiled = list(finding.lines), finding.shared, finding.tiled
    logos, templates = finding.logos, finding.templates
    regions = [_to_full_region(line, scale, *size, config) for line in lines]
    regions += [region for region, _, _ in (*shared, *templates)]
    regions += _tiled_regions(tiled, size) if tiled is not None else []
    regions += [_box_region(logo.box, logo.score, scale, size, "logo") for logo in logos]
    score = max([_image_score(lines), *(region.score for region, _, _ in (*shared, *templates)),
                 tiled.score if tiled is not None else 0.0, *(logo.score for logo in logos)])
    return replace(finding, regions=tuple(merge_regions(regions)), score=score)


def _tiled(small: np.ndarray, config: DetectorConfig) -> TiledFinding | None:
    """A mark tiled over the image, when one scores at least the threshold."""
    tiled = find_tiled(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY),  # reduced to its size inside
                       floor=config.threshold)
    return tiled if tiled is not None and tiled.score >= config.threshold else None


def _logos(small: np.ndarray, config: DetectorConfig,
           lines: Sequence[_Line] = ()) -> tuple[LogoFinding, ...]:
    """Semi-transparent logos (none in an image too small to show one's outline), also right
    beside the accepted text lines (an app's logo before its handle)."""
    if min(small.shape[:2]) < LOGO_MIN_SIDE:
        return ()
    beside = [(line.x, line.y, line.width, line.height) for line in lines
              if _strong(line, config.threshold, config.min_chars)]
    return tuple(find_logos(small, config.threshold, beside))


_TEMPLATE_MATCH = 0.72  # gradient correlation that scores 0.5 for a template searched
# anywhere at any scale. Over the 163 clean and hard clean photos of bench/'s reporting set the
# best chance match of a logo-and-word template was 0.47 (the same mark on other photos, sizes
# and places: 0.75-0.94), but that of a bare ring and bar 0.71: a plain shape finds itself in
# many photos, so a template should carry some detail.


def _templates(gray: np.ndarray | None, size: tuple[int, int], config: DetectorConfig
               ) -> tuple[tuple[Region, SharedMark, TemplateHit], ...]:
    """The user's marks (``config.templates``) wherever and however large this image (its
    ``working_gray``) has them."""
    if gray is None or not config.templates:
        return ()
    found = []
    for path in config.templates:
        mark = load_template(path)
        hit = find_template(gray, mark)
        score = _sigmoid(12.0 * (hit.score - _TEMPLATE_MATCH))
        region = template_region(mark, hit, *size, gray.shape[1])
        if score >= config.threshold and region is not None:
            found.append((replace(region, score=round(score, 4)), mark, hit))
    return tuple(found)


def _box_region(box: tuple[int, int, int, int], score: float, scale: float,
                size: tuple[int, int], kind: str) -> Region:
    """A box in working pixels as a region in full pixels (rounded outwards)."""
    x, y, w, h = box
    x0, y0 = max(0, math.floor(x / scale)), max(0, math.floor(y / scale))
    x1, y1 = min(size[0], math.ceil((x + w) / scale)), min(size[1], math.ceil((y + h) / scale))
    return Region(x0, y0, x1 - x0, y1 - y0, score=round(score, 4), kind=kind)


def _tiled_regions(tiled: TiledFinding, size: tuple[int, int]) -> list[Region]:
    """Boxes around a tiled mark's copies, from its mask at working size (the mask itself is
    what removal uses; the boxes say where it is, at most 50 of them)."""
    height, width = tiled.shape
    mask = tiled_mask(tiled, width, height)
    sx, sy = size[0] / width, size[1] / height
    out = []
    for r in mask_to_regions(mask, kind="tiled"):
        x0, y0 = math.floor(r.x * sx), math.floor(r.y * sy)
        x1 = min(size[0], math.ceil(r.x2 * sx))
        y1 = min(size[1], math.ceil(r.y2 * sy))
        out.append(Region(x0, y0, x1 - x0, y1 - y0, score=round(tiled.score, 4), kind="tiled"))
    return out


def working_size(size: tuple[int, int], working_side: int) -> tuple[int, int]:
    """The size detection works at: the image halved until its long side is below twice
    ``working_side``. A JPEG decodes straight to that size (libjpeg scales by 1/2, 1/4, 1/8
    while decoding, rounding up, as ``_imageio`` asks it to), so a 1-MP JPEG is looked at
    as 576 px for about two thirds of a full decode; an 800x600 image is looked at as it is,
    so small text keeps all its pixels."""
    width, height = size
    factor = 1
    while max(width, height) >= 2 * factor * working_side:
        factor *= 2
    return -(-width // factor), -(-height // factor)


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
    if finding.tiled is not None:
        mask |= tiled_mask(finding.tiled, width, height)
    for logo in finding.logos:
        mask |= logo_mask(logo, finding.scale, width, height)
    for _, mark, hit in finding.templates:
        mask |= template_mask(mark, hit, width, height, WORKING_WIDTH)
    return Detection(finding.watermarked, finding.score, finding.regions, mask)


def _shared_mark(gray: np.ndarray | None, size: tuple[int, int], mark: SharedMark,
                 config: DetectorConfig) -> tuple[Region, SharedMark, Match] | None:
    """A folder's shared mark, where this image (its ``working_gray``) carries it (maybe
    shifted a little)."""
    width, height = size
    if gray is None or abs(width / height - mark.aspect) > 0.01 * mark.aspect:
        return None
    match = match_shared_mark(gray, mark)
    score = _sigmoid(12.0 * (match.score - MATCHED))
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
    signs: list[_Line] = []
    for top in sorted({0, max(0, height - band)}):
        strip = rgb[top:top + band]
        for bright in (True, False):
            scored, blobs, plates = _lines_in_strip(strip, bright, top, (width, height), config,
                                                    model)
            lines += scored + _pieces(blobs, [line for line in scored if not line.recut],
                                      config.threshold)
            signs += plates
    # a sign's text cut at another stroke level, or seen with the other polarity, is the same
    # sign even where that cut does not show the plate; and a re-cut beside a mark of the other
    # polarity is the ground seen between its letters, not a second mark
    return [line for line in lines if not any(_overlaps(line, sign) for sign in signs)
            and not (line.recut and any(_ground_of(line, other) for other in lines))]


def _ground_of(recut: _Line, other: _Line) -> bool:
    """A re-cut line on a stronger line of the other polarity, or on its row within a re-cut
    window of it, is that line's ground seen between its letters."""
    if other.bright == recut.bright:
        return False
    return other.score > recut.score and (_overlaps(recut, other)
                                          or _continues(recut, other, _RECUT_SIDE))


def _position(line: _Line, width: int, height: int) -> dict[str, float]:
    """Where the line sits, as cues: marks hug the borders, scene text need not."""
    centre = line.y + line.height / 2
    return {"edge_distance": min(centre, height - centre) / height,
            "side_distance": min(line.x, width - line.x - line.width) / width,
            "width_share": line.width / width, "height_share": line.char_height / height}


@dataclass(frozen=True)
class TextModel:
    """A logistic text-line scorer: weights per named cue, from ``models/text_lines.json``."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float

    def score(self, line: _Line) -> _Line:
        logit = self.bias + sum(w * f for w, f in zip(self.weights, line.features, strict=True))
        return replace(line, score=_sigmoid(logit))

    def best_score(self, known: dict[str, float]) -> float:
        """The highest score a line with these cues can reach, the others anywhere in their
        range (``_CUE_RANGES``)."""
        logit = self.bias
        for name, weight in zip(self.features, self.weights, strict=True):
            if name in known:
                logit += weight * known[name]
            else:
                low, high = _CUE_RANGES[name]
                logit += max(weight * low, weight * high) if weight else 0.0
        return _sigmoid(logit)


def _sigmoid(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit))))


TEXT_FEATURES = ("n_chars", "isolation", "height_spread", "stroke_cv", "flatness", "contrast",
                 "edge_distance", "side_distance", "width_share", "height_share")
_CUE_RANGES = {"stroke_cv": (0.0, math.inf), "flatness": (0.0, math.inf)}  # the costly cues


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
    lone character) continuing one of them on its row (a piece of the other polarity only
    beside it, not over it: see ``_over``).

    A mark's text often splits into pieces (at an underscore, over a changing background);
    a weak piece next to a strong one is the same mark (hysteresis, as in edge linking).
    """
    accepted: list[_Line] = []
    weak = []
    for line in sorted(candidates, key=lambda item: -item.score):
        if _strong(line, threshold, min_chars):
            # the same text cut at several stroke levels: keep the best cut, whose box does
            # not carry the texture a lower cut glued to it
            if not any(_same_place(line, kept) and not _extends(line, kept)
                       for kept in accepted):
                accepted.append(line)
        elif line.score >= _PIECE_BAR * threshold:
            weak.append(line)
    # the other polarity of a strong line sees its background between and around the letters
    # (a dark "line" of the gaps between bright letters): only a near rival is a second mark,
    # such as the dark outline of outlined text
    accepted = [line for line in accepted if not any(
        other.bright != line.bright and other.score >= line.score + _RIVAL
        and _overlaps(line, other) for other in accepted)]
    grew = True
    while grew and weak:
        grew = False
        for line in list(weak):
            if any(_same_place(line, strong) for strong in accepted):
                weak.remove(line)  # another cut of text already accepted, not a continuation
            elif any(_continues(line, strong) and (line.bright == strong.bright
                                                   or not _over(line, strong))
                     for strong in accepted):
                accepted.append(line)
                weak.remove(line)
                grew = True
    return accepted


def _strong(line: _Line, threshold: float, min_chars: int) -> bool:
    """A line that stands on its own (not a piece that only continues one)."""
    return line.score >= threshold and line.n_chars >= min_chars


def _over(piece: _Line, line: _Line) -> bool:
    """Whether most of ``piece``'s width lies over ``line``'s. A piece of the other polarity
    there is the line's own background seen between its letters, not more of the mark (a
    grey mark's polarity flips only where the background changes, further along the row)."""
    overlap = min(piece.x + piece.width, line.x + line.width) - max(piece.x, line.x)
    return overlap > 0.5 * piece.width


def _extends(recut: _Line, kept: _Line) -> bool:
    """A re-cut that reaches a letter or more past a kept cut of the same text along its row:
    letters the kept cut lost where they were glued to something of another colour. Both
    are kept (the mask is their union), so neither cut's letters are lost."""
    reach = max(kept.x - recut.x, (recut.x + recut.width) - (kept.x + kept.width))
    return recut.recut and not kept.recut and recut.n_chars > kept.n_chars \
        and reach >= kept.char_height


def _same_place(a: _Line, b: _Line) -> bool:
    """Boxes of one polarity overlapping by more than half of the smaller one."""
    return a.bright == b.bright and _overlaps(a, b)


def _overlaps(a: _Line, b: _Line) -> bool:
    """Boxes overlapping by more than half of the smaller one."""
    w = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    h = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    smaller = min(a.width * a.height, b.width * b.height)
    return w > 0 and h > 0 and w * h > 0.5 * smaller


def _continues(piece: _Line | _Blob, line: _Line, gap_heights: float = 2.0) -> bool:
    """Same row, similar letters, and a gap of at most ``gap_heights`` letter heights."""
    tall = max(piece.char_height, line.char_height)
    same_row = abs((piece.y + piece.height / 2) - (line.y + line.height / 2)) < 0.5 * tall
    similar = tall <= 1.6 * min(piece.char_height, line.char_height)
    gap = max(piece.x - (line.x + line.width), line.x - (piece.x + piece.width))
    return same_row and similar and gap <= gap_heights * tall


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


_PIECE_BAR = 0.2  # a piece may extend a line if it scores this share of the threshold
_RIVAL = 0.2  # a line of the other polarity this much stronger at the same place wins
_MIN_LETTER_ASPECT = 0.3  # most letters of a line are wider than this share of their height
_MAX_STROKE = 0.45  # letters' strokes are thinner than this share of their height
_STROKE_LEVELS = (24.0, 40.0, 64.0, 100.0)  # response thresholds tried, faint to strong
_BUSY_FLOOR = 60.0  # a strip whose floor (below) passes this is busy texture (grass, gravel) ...
_BUSY_LEVEL = 120.0  # ... where strokes may part from the texture only at this higher cut


def _stroke_thresholds(response: np.ndarray) -> list[float]:
    """Thresholds to cut strokes at: a faint mark needs a low one, a mark over texture a high
    one (a low cut glues it to the texture), so several are tried; those below twice the
    strip's texture level would only find texture and are skipped. Over busy texture one more,
    higher cut is tried: on the tuning set's grass, strong text glued to the blades at 100
    and came apart at 120 (corner text 270 -> 278 of 300 tuning items, hard clean photos
    flagged 23 -> 23 of 300; a fresh 300: 289 -> 292, 22 -> 22)."""
    # np.mean's value: the exact sum of whole numbers over the count (cv2 sums faster)
    floor = 2.0 * (cv2.sumElems(response)[0] / response.size)
    levels = [level for level in _STROKE_LEVELS if level >= floor] or [_STROKE_LEVELS[-1]]
    return [*levels, _BUSY_LEVEL] if floor > _BUSY_FLOOR else levels


def _lines_in_strip(strip: np.ndarray, bright: bool, top: int, size: tuple[int, int],
                    config: DetectorConfig, model: TextModel
                    ) -> tuple[list[_Line], Iterable[_Blob], list[_Line]]:
    """Scored candidate lines, every character-like blob and the lines found on a sign's plate
    (``_on_plate``) of one strip, in image rows (the strip starts at row ``top`` of an image
    of ``size``); lines in a block of stacked lines (``_stacked_lines``) are dropped."""
    height = size[1]
    response = _stroke_response(strip, bright, _kernel_size(height, config))
    floor = _PIECE_BAR * config.threshold
    lines: list[_Line] = []
    cuts: list[tuple[float, list[list[int]]]] = []  # each level's character blobs' boxes
    plates: list[_Line] = []
    levels = _stroke_thresholds(response)
    for threshold in levels:
        # response > threshold as 0/1 (cv2 floors the level: the same for whole-number pixels)
        binary = cv2.threshold(response, threshold, 1, cv2.THRESH_BINARY)[1]
        stats = _components(binary)
        chars = _character_components(stats, height, config)
        groups = _group_into_lines(stats, chars)
        rows = _group_boxes(stats, [group for group in groups if len(group) >= config.min_chars])
        for group in groups:
            # a group's advances never outnumber its blobs
            if len(group) < config.min_chars or _advances(stats, group) < config.min_chars:
                continue
            line = _score_line(strip, binary, response, stats, group, bright, threshold,
                               top, size, model, floor)
            if line is None:
                continue
            if line.score >= floor:
                in_strip = replace(line, y=line.y - top)
                if _stacked_lines(in_strip, rows) >= _STACKED:
                    continue
                if _on_plate(strip, binary, in_strip):
                    plates.append(line)
                    continue
            lines.append(line)
        cuts.append((threshold, stats[chars, :4].tolist()))
    lines += _recut_lines(strip, response, lines, levels[0], top, size, config, model, floor)
    # the blobs are made only when asked for (by ``_pieces``, when a line can take pieces)
    blobs = (_Blob(x, y + top, w, h, float(h), bright, threshold)
             for threshold, boxes in cuts for x, y, w, h in boxes)
    return lines, blobs, plates


class _Blob(NamedTuple):
    """A character blob: a one-letter ``_Line`` with no score yet, light to make (a strip has
    hundreds; few become pieces, see ``_pieces``)."""

    x: int
    y: int
    width: int
    height: int
    char_height: float
    bright: bool
    threshold: float


# Re-cutting by colour. A mark is one colour blended over the photo, so its strokes keep one
# colour (give or take the photo showing through) wherever they go; a low stroke cut glues
# them to whatever crosses them (a truss, branches, a texture) and a high cut breaks them up.
# A line that fell short is cut again keeping only the strokes of its own commonest colour,
# and only where that colour really is the text's: something else must be glued to it, and
# nothing else of its colour around it (page text and textures are one colour too, and come
# in crowds; a mark stands alone in its colour).
_RECUT_MAX = 3  # lines re-cut per strip and polarity, best first ...
_RECUT_BAR = 0.01  # ... of those scoring at least this
_RECUT_TOLERANCE = 24.0  # a stroke pixel is of the text's colour within this much per channel
_RECUT_BIN = 16  # colour histogram bin, levels
_RECUT_SAMPLE = 400  # stroke pixels the colour is taken from, at most
_RECUT_GLUED = 0.2  # at least this share of the line's strokes is of another colour
_RECUT_ROWS = 4.0  # the window: letter heights above and below the line ...
_RECUT_SIDE = 6.0  # ... and to its left and right (pieces lost by the first cut come back)
_RECUT_CROWD = 3  # more letter-like blobs of the text's colour above or below: not alone


def _recut_lines(strip: np.ndarray, response: np.ndarray, lines: list[_Line], level: float,
                 top: int, size: tuple[int, int], config: DetectorConfig, model: TextModel,
                 floor: float) -> list[_Line]:
    """The best lines of one strip and polarity, cut again by colour at stroke ``level``
    (``_recut``): the lines found that way. Which lines are re-cut does not depend on the
    threshold, so a lower threshold never loses a line a higher one finds."""
    done: list[_Line] = []
    out: list[_Line] = []
    for line in sorted(lines, key=lambda item: -item.score):
        if len(done) >= _RECUT_MAX:
            break
        if (line.score < _RECUT_BAR or line.n_chars < config.min_chars
                or any(_overlaps(line, other) for other in done)):
            continue
        done.append(line)
        out += _recut(strip, response, line, level, top, size, config, model, floor)
    return out


def _text_colour(pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """The commonest colour of (n, 3) ``pixels`` (the peak of a coarse histogram, refined to
    the mean of the pixels near it) and the share of pixels not near it (both from at most
    ``_RECUT_SAMPLE`` of them)."""
    pixels = pixels[::-(-len(pixels) // _RECUT_SAMPLE)]
    bins = 256 // _RECUT_BIN
    q = pixels.astype(np.int32) // _RECUT_BIN
    codes = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
    pixels = pixels.astype(np.float32)
    centre = pixels[codes == int(np.argmax(np.bincount(codes)))].mean(axis=0)
    for _ in range(2):
        near = np.abs(pixels - centre).max(axis=1) < _RECUT_TOLERANCE
        centre = pixels[near].mean(axis=0)
    near = np.abs(pixels - centre).max(axis=1) < _RECUT_TOLERANCE
    return centre, 1.0 - float(np.mean(near))


def _recut(strip: np.ndarray, response: np.ndarray, line: _Line, level: float, top: int,
           size: tuple[int, int], config: DetectorConfig, model: TextModel,
           floor: float) -> list[_Line]:
    """Lines in a window around ``line`` cut at the strip's lowest stroke ``level`` keeping
    only the strokes of the line's own commonest colour, scored as any line is (the window
    reaches a few letters past the line, for the pieces its cut lost); none when the line's
    strokes are nearly all of one colour already (nothing glued to re-cut away)."""
    h = line.char_height
    ly0, ly1 = line.y - top, line.y - top + line.height  # the line, in the strip's rows
    lx0, lx1 = line.x, line.x + line.width
    own = response[ly0:ly1, lx0:lx1] > line.threshold
    if np.count_nonzero(own) < 20:
        return []
    centre, glued = _text_colour(strip[ly0:ly1, lx0:lx1][own])
    if glued < _RECUT_GLUED:
        return []
    y0 = max(0, ly0 - round(_RECUT_ROWS * h))
    y1 = min(strip.shape[0], ly1 + round(_RECUT_ROWS * h))
    x0 = max(0, lx0 - round(_RECUT_SIDE * h))
    x1 = min(strip.shape[1], lx1 + round(_RECUT_SIDE * h))
    window, resp = strip[y0:y1, x0:x1], response[y0:y1, x0:x1]
    plain = (resp > level).astype(np.uint8)  # all strokes: a sign's plate is judged on them
    low = np.clip(np.ceil(centre - _RECUT_TOLERANCE), 0, 255).astype(np.uint8)
    high = np.clip(np.floor(centre + _RECUT_TOLERANCE), 0, 255).astype(np.uint8)
    binary = plain & (np.asarray(cv2.inRange(window, low, high)) > 0).astype(np.uint8)
    stats = _components(binary)
    chars = _character_components(stats, size[1], config)
    centres = stats[chars, 1] + stats[chars, 3] / 2
    out = []
    for group in _group_into_lines(stats, chars):
        if len(group) < config.min_chars:  # fewer advances than that (``_advances``)
            continue
        gy0, gy1 = stats[group, 1].min(), (stats[group, 1] + stats[group, 3]).max()
        if (gy1 < ly0 - y0 or gy0 > ly1 - y0  # another row of the window
                or _advances(stats, group) < config.min_chars
                or np.count_nonzero((centres < gy0) | (centres > gy1)) > _RECUT_CROWD):
            continue
        cut = _score_line(window, binary, resp, stats, group, line.bright, level, top + y0,
                          size, model, floor, left=x0)
        if cut is not None and not (cut.score >= floor and _on_plate(
                window, plain, replace(cut, x=cut.x - x0, y=cut.y - top - y0))):
            # the full-size mask has no colour test: it keeps the first cut's level, which
            # does not spill into the ground around the strokes
            out.append(replace(cut, threshold=line.threshold, recut=True))
    return out


def _components(binary: np.ndarray) -> np.ndarray:
    """(n, 5) int32 x, y, width, height and area of the 8-connected components of a 0/1
    ``binary``, in label order: ``connectedComponentsWithStats``'s stats without the
    background row. OpenCV's own statistics cost four times its labelling, so they are taken
    from the foreground pixels' labels instead (sorted by label, each label's pixels stay in
    raster order: the first is its top row, the last its bottom row)."""
    height, width = binary.shape
    small = ((height + 1) // 2) * ((width + 1) // 2) < 65535  # bounds the label count
    count, labels = cv2.connectedComponentsWithAlgorithm(
        binary, 8, cv2.CV_16U if small else cv2.CV_32S, cv2.CCL_BBDT)
    stats = np.empty((count - 1, 5), np.int32)
    if count == 1:
        return stats
    index = np.flatnonzero(binary.view(bool))
    label = labels.ravel()[index]
    order = np.argsort(label, kind="stable")
    label, index = label[order], index[order]
    change = np.empty(label.size, bool)  # where a label's pixels start
    change[0] = True
    np.not_equal(label[1:], label[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], label.size)
    xs = index % width
    x0, y0 = np.minimum.reduceat(xs, starts), index[starts] // width
    stats[:, 0] = x0
    stats[:, 1] = y0
    stats[:, 2] = np.maximum.reduceat(xs, starts) - x0 + 1
    stats[:, 3] = index[ends - 1] // width - y0 + 1
    stats[:, 4] = ends - starts
    return stats


def _advances(stats: np.ndarray, group: list[int]) -> int:
    """Letters in a row each start past the middle of the one before (an accent, a dot or a
    character's second part may sit above another one; blobs of texture pile up anywhere)."""
    count, reach = 0, -math.inf
    for x, w in sorted(stats[group, 0:3:2].tolist()):
        if x >= reach:
            count += 1
            reach = x + w / 2
    return count


def _group_boxes(stats: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    """(n, 5) float array: x0, y0, x1, y1 and median character height of each group."""
    out = np.zeros((len(groups), 5))
    for i, group in enumerate(groups):
        x, y, w, h = zip(*stats[group, :4].tolist(), strict=True)
        out[i] = (min(x), min(y), max(map(int.__add__, x, w)), max(map(int.__add__, y, h)),
                  _median(sorted(h)))
    return out


# Scene text has layouts watermarks do not have: a block of lines of one size stacked above one
# another (a page, a menu, a poster), and text on an opaque plate (a sign, a label), where the
# ground right around the letters is one flat colour that stops, a little further out, at the
# sign's edge. A mark's ground is the photo itself, alike just around the text and further out.
_STACKED = 2  # a line with this many similar lines just above or below it is a page of text
_PLATE_FLAT = 30.0  # the ground right around a sign's text varies less than this (IQR, levels)
_PLATE_STEP = 40.0  # ... and differs from the scene around the sign by this much


def _stacked_lines(line: _Line, rows: np.ndarray) -> int:
    """Other lines of about the same letter height, overlapping this one horizontally, within
    a few letter heights above or below it (``line`` and ``rows`` in the strip's rows)."""
    h = line.char_height
    x0, x1 = line.x, line.x + line.width
    centre = line.y + line.height / 2
    overlap = np.minimum(rows[:, 2], x1) - np.maximum(rows[:, 0], x0)
    narrower = np.minimum(rows[:, 2] - rows[:, 0], x1 - x0)
    distance = np.abs((rows[:, 1] + rows[:, 3]) / 2 - centre)
    near = ((np.abs(rows[:, 4] - h) <= 0.3 * h) & (overlap >= 0.3 * narrower)
            & (distance >= 0.8 * h) & (distance <= 6.5 * h))
    return int(np.count_nonzero(near))


def _on_plate(strip: np.ndarray, binary: np.ndarray, line: _Line) -> bool:
    """The text's near ground is flat and unlike the scene a little further out (``line`` in
    the strip's rows). Works on the window the outer ring reaches, plus a pixel for the
    dilation."""
    reach = max(1, round(1.6 * line.char_height)) + 1
    y0, x0 = max(0, line.y - reach), max(0, line.x - reach)
    y1, x1 = line.y + line.height + reach, line.x + line.width + reach
    strip, binary = strip[y0:y1, x0:x1], binary[y0:y1, x0:x1]
    line = replace(line, x=line.x - x0, y=line.y - y0)
    inner = _ring(strip.shape[:2], line, 0.15, 0.45)
    outer = _ring(strip.shape[:2], line, 1.0, 1.6)
    strokes = cv2.dilate(binary, np.ones((3, 3), np.uint8)).astype(bool)
    near, far = strip[inner & ~strokes], strip[outer & ~strokes]
    if len(near) < 20 or len(far) < 20:
        return False
    q_near = _percentiles(near, (0.25, 0.5, 0.75))
    flat = float((q_near[2] - q_near[0]).max())
    step = float(np.abs(q_near[1] - _percentiles(far, (0.5,))[0]).max())
    return flat <= _PLATE_FLAT and step >= _PLATE_STEP


def _ring(shape: tuple[int, int], line: _Line, inner: float, outer: float) -> np.ndarray:
    """Pixels between the line's box grown by ``inner`` and by ``outer`` letter heights."""
    def grown(by: float) -> np.ndarray:
        pad = max(1, round(by * line.char_height))
        box = np.zeros(shape, bool)
        box[max(0, line.y - pad):line.y + line.height + pad,
            max(0, line.x - pad):line.x + line.width + pad] = True
        return box

    return grown(outer) & ~grown(inner)


def _pieces(blobs: Iterable[_Blob], lines: list[_Line], threshold: float) -> list[_Line]:
    """Character blobs (from any stroke threshold) that continue a promising line on its row.

    A mark's text often splits (at an underscore, over a changing background, where a low cut
    glues it to texture and a high cut loses faint letters); a blob right beside a line is
    part of it. Pieces take the line's score but never start a line themselves.
    """
    anchors = [line for line in lines if line.score >= _PIECE_BAR * threshold]
    if not anchors:
        return []
    pieces = []
    for blob in blobs:
        for anchor in anchors:
            if blob.bright == anchor.bright and _continues(blob, anchor):
                pieces.append(_Line(blob.x, blob.y, blob.width, blob.height, blob.char_height,
                                    1, blob.bright, blob.threshold, anchor.score))
                break
    return pieces


def _character_components(stats: np.ndarray, image_height: int,
                          config: DetectorConfig) -> np.ndarray:
    """Indices of components whose size and shape could be one character (or a few joined)."""
    lo, hi = config.min_text_height * image_height, config.max_text_height * image_height
    tall = np.flatnonzero((stats[:, 3] >= lo) & (stats[:, 3] <= hi))  # few: test them only
    w, h, area = stats[tall, 2], stats[tall, 3], stats[tall, 4]
    fill = area / np.maximum(w * h, 1)
    # wide blobs are letters joined by an underscore or a tight bold face
    ok = (w <= 10 * h) & (fill > 0.12) & (fill < 0.95)
    return tall[ok]


def _group_into_lines(stats: np.ndarray, chars: np.ndarray) -> list[list[int]]:
    """Chain character blobs left to right when they share a centre line, a height and are near.

    Blob ``b`` (to the right of ``a`` in x order) joins ``a`` when their centres are within
    0.45 of the taller one's height and their heights within 2.2x; ``a`` looks rightwards only
    until the first blob starting more than 1.2 heights past its end (a few blobs: a plain
    loop beats pair matrices); a union-find joins them.
    """
    if chars.size == 0:
        return []
    order = chars[np.argsort(stats[chars, 0], kind="stable")]
    xs, ys, ws, hs = stats[order, :4].T.tolist()
    centres = [y + h / 2 for y, h in zip(ys, hs, strict=True)]
    parent = list(range(order.size))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a in range(order.size - 1):
        ha, centre, end = hs[a], centres[a], xs[a] + ws[a]
        for b in range(a + 1, order.size):
            hb = hs[b]
            tall, short = (ha, hb) if ha >= hb else (hb, ha)
            if xs[b] - end > 1.2 * tall:
                break
            if abs(centre - centres[b]) < 0.45 * tall and tall <= 2.2 * short:
                parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for i, index in enumerate(order.tolist()):
        groups.setdefault(root(i), []).append(index)
    return list(groups.values())


def _score_line(strip: np.ndarray, binary: np.ndarray, response: np.ndarray,
                stats: np.ndarray, group: list[int], bright: bool, threshold: float,
                top: int, size: tuple[int, int], model: TextModel, floor: float,
                left: int = 0) -> _Line | None:
    """The line of a group of blobs, scored; None when it cannot score ``floor`` whatever its
    stroke-width and flatness cues, which are the costly ones and are then never computed, or
    when its blobs are not letters. The blobs' rows start at image row ``top``, their columns
    at image column ``left``."""
    # a few blobs each: plain Python beats numpy's per-call cost (same arithmetic, in doubles)
    xs, ys, ws, hs = zip(*stats[group, :4].tolist(), strict=True)
    x0, y0 = min(xs), min(ys)
    x1, y1 = max(map(int.__add__, xs, ws)), max(map(int.__add__, ys, hs))
    heights = sorted(hs)
    char_height = _median(heights)
    if _median(sorted(map(int.__truediv__, ws, hs))) < _MIN_LETTER_ASPECT:
        return None  # a row of bars (posts, railings, a truss), not of letters
    box = (x0, y0, x1, y1)
    stroke = binary[y0:y1, x0:x1]
    count = cv2.countNonZero(stroke)
    covered = max(count / stroke.size, 1e-3)
    contrast = float(cv2.mean(response[y0:y1, x0:x1], mask=stroke)[0]) if count else 0.0
    place = (x0 + left, y0 + top, x1 - x0, y1 - y0, char_height, len(group), bright, threshold)
    line = _Line(*place, 0.0)
    cues = {"n_chars": min(float(len(group)), 12.0),
            "height_spread": _robust_spread(heights),
            "isolation": _ring_density(binary, box, char_height) / covered,
            "contrast": min(contrast / 40.0, 2.5),
            **_position(line, *size)}
    if model.best_score(cues) < floor:
        return None
    pixels = strip[y0:y1, x0:x1]
    core = _stroke_core(stroke)
    width, cues["stroke_cv"] = _stroke_widths(stroke)
    if width > _MAX_STROKE * char_height:
        return None  # blobs, not letters: the gaps of a lattice, leaves, windows
    if core.any():
        q25, q75 = _percentiles(pixels[core], (0.25, 0.75))
        cues["flatness"] = float((q75 - q25).max()) / max(contrast, 1.0)
    else:
        cues["flatness"] = 1.0
    return model.score(_Line(*place, 0.0, tuple(cues[name] for name in TEXT_FEATURES)))


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
    ring = cv2.countNonZero(binary[ry0:ry1, rx0:rx1]) - cv2.countNonZero(binary[y0:y1, x0:x1])
    ring_area = (ry1 - ry0) * (rx1 - rx0) - (y1 - y0) * (x1 - x0)
    return float(ring) / max(ring_area, 1)


def _robust_spread(values: Sequence[float]) -> float:
    """Median absolute deviation over the median: descenders and '@' do not count as spread
    (``values`` sorted)."""
    median = _median(values)
    return _median(sorted(abs(value - median) for value in values)) / max(median, 1.0)


def _percentiles(pixels: np.ndarray, quantiles: tuple[float, ...]) -> list[np.ndarray]:
    """``np.percentile(pixels, 100 * q, axis=0)`` (its "linear" method; the median at 0.5) of
    (n, 3) uint8 ``pixels``, for each of ``quantiles`` (quarters), without its overhead: every
    step is exact on whole numbers and quarter weights, so the values are the same."""
    n = len(pixels)
    spots = []
    for q in quantiles:
        virtual = (n - 1) * q
        low = math.floor(virtual)
        spots.append((low, min(low + 1, n - 1), virtual - low))
    channels = np.ascontiguousarray(pixels.T)
    channels.partition(sorted({i for low, high, _ in spots for i in (low, high)}), axis=1)
    out = []
    for low, high, weight in spots:
        a, b = channels[:, low].astype(np.float64), channels[:, high].astype(np.float64)
        out.append(a + (b - a) * weight)
    return out


def _median(values: Sequence[float]) -> float:
    """``np.median`` of sorted ``values``, as a float: the middle one, or the mean of the two
    middle ones."""
    middle = len(values) // 2
    if len(values) % 2:
        return float(values[middle])
    return (values[middle - 1] + values[middle]) / 2


def _stroke_widths(stroke: np.ndarray) -> tuple[float, float]:
    """Mean and coefficient of variation of the stroke widths along the stroke ridges; printed
    text has thin strokes of one width."""
    dist = cv2.distanceTransform(stroke, cv2.DIST_L2, 3)
    ridge = (dist > 0) & (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)))
    widths = dist[ridge]
    if widths.size < 4:
        return 0.0, 1.0
    mean = float(np.mean(widths))
    return 2.0 * mean, float(np.std(widths) / max(mean, 1e-6))


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
