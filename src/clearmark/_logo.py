"""Low-contrast logos: semi-transparent marks found by the cues an overlay leaves.

A logo blended over a photo, J = a*W + (1 - a)*I, pulls every pixel under it toward one colour
W by the same share a. Two consequences are generic (they hold for any logo shape, any colour
and any photo) and drive this detector:

- In "distance to W" space the overlay is a constant step. Where W is white or black (most
  marks), |J - W| = (1 - a)|I - W| per channel, so log|J - W| drops by the same amount,
  -log(1 - a), everywhere inside the mark, whatever the photo does there: the mark's outline
  is an edge of one height all the way round, and its inside is on the W side of that edge
  all the way round. Photo texture keeps its own (varied) edge heights and sides.
- So the outline *encloses* its inside: walking in from the outline toward W (the side where
  the log distance is lower) always leads into the mark. Each edge point of the log-distance
  image casts a short ray toward its W side; rays from a closed outline meet in the mark's
  middle from every direction, rays from texture scatter. This is a radial-symmetry vote
  (Loy and Zelinsky's fast radial symmetry transform) made one-sided by the overlay's
  polarity, and kept in four direction sectors so that only points enclosed from all sides
  score (a long straight edge or a row of stripes sends rays one way only).

The vote runs on a half-size copy, only where marks are put: a band along the top and one
along the bottom (a third of the short side high) and a square in the centre. Each band has
five windows (its corners, its middle and the two places between, where a logo beside a
handle sits); when the caller found text lines, a window right before and one right after
each line are added (``beside_zones``). Each window's best meeting point becomes a
candidate; its outline is the edge points whose rays met there, followed on along the edges
they lie on (``_followed``: only the middle of a straight side aims at the middle), and its
box comes from that outline. A candidate is then measured at working size:

- the outline's log-step is about constant (an overlay has one opacity; an object's contrast
  with its surroundings varies along its border);
- the opacity each outline point implies, a_i = <J_in - J_out, W - J_out> / |W - J_out|^2,
  is the same all round although the photo under the outline changes (an object's contrast
  with what lies behind it is not), and the colour step points at W (cosine near 1);
- the colour steps also fit one blend with a free W, J_in - J_out = V - a J_out (least
  squares over the outline), so grey and coloured marks are not left out;
- the rays met from every side (a closed shape), and the outline is long for its size.

These cues are weighed by a logistic model (weights below, fitted on bench/'s "tune" set),
which only *proposes* a candidate. Those cues hold for an opaque object too (a coin, a
badge, a sign board has a closed outline of fairly even contrast), so a proposal passes only
if one blend (W, a) also undoes it, I = (J - a W) / (1 - a), as an overlay is undone:

- on thin bands along the outline (``_overlay_cues``) the step across the outline vanishes,
  no inside pixel needs an impossible photo value, the photo's texture carries on across the
  outline at the same strength, and the darker and brighter parts of the background imply
  the same a;
- inside the outline (``_interior_cues``) every pixel is the background predicted from a
  ring around it, with or without the blend on it (a coin's relief, a patch's embroidery
  are neither), and a fair share is with it.

The blends tried are the vote's white or black with the median implied a, and the free-W
fit. The limits were set by looking at the tune set and at opaque objects pasted on its
photos (bench/logo_probe.py ``--objects``). A flat object on a flat or sparse background (a
plain disc on a night sky) is the blind spot left: it looks the same as an overlay.

All functions are pure functions of arrays. The working copy is expected at about
``WORKING_SIDE`` (512 px) on its longer side; larger inputs are reduced first and boxes are
returned in the caller's pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

WORKING_SIDE = 512  # expected longer side of the working copy
WINDOW = 0.34  # band height and window side, as a share of the short side
RADII = (0.03, 0.045, 0.06, 0.08, 0.1, 0.125)  # vote reach, shares of the short side
THRESHOLD = 0.5
MIN_SIDE = 16  # smaller images cannot show a logo's outline

_MARK_COLOURS = (255.0, 0.0)  # W hypotheses of the vote: white and black marks
_LOG_OFFSET = 8.0  # grey levels added before the log: keeps noise near W from exploding
_EDGE_FLOOR = 0.08  # log-gradient (per half-size pixel) below which a point casts no ray
_SECTORS = 4
_FOLLOW_FACING = 0.5  # an outline followed on faces the meeting point within 60 degrees ...
_FOLLOW_STEP = 1.6  # ... with a log-step within this factor of its supporters' median
_SQUARE3 = np.ones((3, 3), np.uint8)
_CUE_POINTS = 300  # outline points the colour cues are measured on, at most
_SIDE_LIMITS = (0.04, 0.32)  # box's longer side, shares of the short side
_TAN_22 = math.tan(math.pi / 8)  # NMS: gradients within 22.5 degrees of an axis
_DISC5, _DISC7, _DISC17 = (cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
                           for k in (5, 7, 17))  # the interior test's erosion and ring


@dataclass(frozen=True)
class LogoFinding:
    """A logo candidate that passed, in the caller's working pixels.

    box : (x, y, w, h). score : 0..1 (0.5 is the decision threshold).
    outline : (n, 2) int32 points (x, y) of the mark's outline, working pixels; its filled
        convex hull is the mark's area (see ``logo_mask``).
    colour, opacity : the blend that undoes the mark (W as RGB 0..255, a); W and a trade off
        a little where the background under the outline is even.
    """

    box: tuple[int, int, int, int]
    score: float
    outline: np.ndarray
    colour: tuple[float, float, float]
    opacity: float


@dataclass(frozen=True)
class _Candidate:
    """A vote peak of one window and one W hypothesis, at working scale, with its cues."""

    window: str
    mark: float  # the W hypothesis (255 white, 0 black)
    box: tuple[int, int, int, int]
    outline: np.ndarray  # (n, 2) x, y working pixels
    features: dict[str, float]
    colour: tuple[float, float, float] = (0.0, 0.0, 0.0)
    opacity: float = 0.0


def find_logos(rgb: np.ndarray, threshold: float = THRESHOLD,
               beside: Sequence[tuple[float, float, float, float]] = ()) -> list[LogoFinding]:
    """Semi-transparent logos along the top and bottom and in the centre of an RGB image.

    rgb : (H, W, 3) uint8, RGB; about ``WORKING_SIDE`` px on its longer side (a larger one is
        reduced first; boxes are still in ``rgb``'s pixels).
    beside : boxes (x, y, w, h, in ``rgb``'s pixels) of text lines found in the image; a logo
        is also looked for right beside each (see ``beside_zones``).
    Returns the candidates scoring at least ``threshold``, best first.
    """
    _check_rgb(rgb)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError("threshold must be in [0, 1]")
    work, factor = _to_working(rgb)
    found = []
    lines = [(x / factor, y / factor, w / factor, h / factor) for x, y, w, h in beside]
    for cand in candidates(work, lines):
        score = _score(cand.features)
        if score >= threshold:
            found.append(_to_caller(cand, score, factor))
    return sorted(found, key=lambda f: -f.score)


def logo_mask(finding: LogoFinding, scale: float, width: int, height: int,
              grow: int = 2) -> np.ndarray:
    """The mark's pixels at full resolution: (height, width) uint8 0/255.

    scale : working pixels per full pixel (as ``_detect.Finding.scale``). The outline's filled
    hull is grown by one working pixel plus ``grow`` full pixels (anti-aliasing, blur).
    """
    if scale <= 0 or width <= 0 or height <= 0:
        raise ValueError("scale, width and height must be positive")
    mask = np.zeros((height, width), np.uint8)
    points = np.asarray(finding.outline, np.float64)
    if len(points) < 3:
        x, y, w, h = finding.box
        points = np.array([(x, y), (x + w, y), (x + w, y + h), (x, y + h)], np.float64)
    hull = cv2.convexHull(np.rint(points / scale).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255)
    radius = max(1, round(1.0 / scale) + grow)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return np.asarray(cv2.dilate(mask, kernel))


# ----------------------------------------------------------------------------- candidates


def candidates(work: np.ndarray,
               beside: Sequence[tuple[float, float, float, float]] = (),
               every_cue: bool = False) -> list[_Candidate]:
    """The proposed candidates (at most one per window and mark hypothesis), with their cues.

    work : (H, W, 3) uint8 RGB at working size. beside : text lines' boxes, working pixels.
    every_cue : measure the interior cues of a blend whose outline already shows it is no
        overlay too (for fitting the limits; the score does not need them: NaN otherwise).
    """
    height, width = work.shape[:2]
    half = cv2.resize(work, (max(1, width // 2), max(1, height // 2)),
                      interpolation=cv2.INTER_AREA)
    luma = _luma(half)
    short = min(half.shape[:2])
    out = []
    areas = zones(half.shape[0], half.shape[1]) + beside_zones(
        [(x / 2, y / 2, w / 2, h / 2) for x, y, w, h in beside], half.shape[0], half.shape[1])
    for (x0, y0, w, h), spots in areas:
        crop = luma[y0:y0 + h, x0:x0 + w]
        for mark in _MARK_COLOURS:
            vote = _vote(crop, mark, short)
            if vote is None:
                continue
            seen = set()
            for name, left, right in spots:
                point = _meeting_point(vote, left, right)
                if point is None or point[:2] in seen:
                    continue  # overlapping windows often share their best point
                seen.add(point[:2])
                peak = _peak(vote, point, short)
                if peak is None:
                    continue
                cand = _candidate(work, name, mark, peak, (x0, y0), short, every_cue)
                if cand is not None:
                    out.append(cand)
    return out


def zones(height: int, width: int) -> list[tuple[tuple[int, int, int, int],
                                                   list[tuple[str, int, int]]]]:
    """Where marks are put: the top and bottom bands and the centre, as (x, y, w, h) areas
    voted on at once, each with its windows (name, left, right: columns within the area),
    of which each gives its best meeting point. A band's windows are the corners, its middle
    and the two places between (a lockup's logo sits inward of its corner)."""
    side = max(8, round(WINDOW * min(height, width)))
    side_w = min(side, width)
    step = (width - side_w) / 4.0
    names = ("l", "ql", "c", "qr", "r")
    spots = [(names[i], round(i * step), round(i * step) + side_w) for i in range(5)]
    centre = ((width - side_w) // 2, (height - side) // 2, side_w, side)
    return [((0, 0, width, side), [("t" + n, lo, hi) for n, lo, hi in spots]),
            ((0, height - side, width, side), [("b" + n, lo, hi) for n, lo, hi in spots]),
            (centre, [("cc", 0, side_w)])]


_BESIDE = 3.0  # side of the window beside a text line, in line heights: an app's logo is
# about two to three times its handle's letters high, and sits just before (or after) them


def beside_zones(lines: Sequence[tuple[float, float, float, float]], height: int,
                 width: int) -> list[tuple[tuple[int, int, int, int], list[tuple[str, int, int]]]]:
    """Windows right before and right after each text line (x, y, w, h at the vote's scale):
    a logo beside its handle shares a band window with the letters, whose closed shapes can
    win that window's vote; a window of its own, where the letters barely reach, lets it be
    the best meeting point there. Same format as ``zones``."""
    out = []
    for x, y, w, h in lines:
        side = round(_BESIDE * h)
        if side < 8:
            continue
        y0 = min(max(0, round(y + h / 2 - side / 2)), max(0, height - side))
        overlap = round(0.2 * h)
        for name, x0 in (("lb", round(x) + overlap - side), ("la", round(x + w) - overlap)):
            x0, x1 = max(0, x0), min(width, x0 + side)
            if x1 - x0 >= 8 and min(side, height) >= 8:
                out.append(((x0, y0, x1 - x0, min(side, height)), [(name, 0, x1 - x0)]))
    return out


@dataclass(frozen=True)
class _Peak:
    """Where rays met in a window (area pixels, half scale) and who sent them."""

    x: int
    y: int
    votes: float  # the weakest sector's vote at the peak
    contrast: float  # that over the window's mean of the same measure
    xs: np.ndarray  # supporters: edge points whose rays met there
    ys: np.ndarray
    steps: np.ndarray  # their log-gradient magnitudes
    normals: np.ndarray  # (n, 2) unit vectors toward W
    sectors: np.ndarray  # supporters per sector


@dataclass(frozen=True)
class _Vote:
    """An area's vote: the weakest sector's (smoothed) count per pixel, and the voters
    (in row order: ``rows`` is sorted)."""

    score: np.ndarray
    xs: np.ndarray
    ys: np.ndarray
    rows: np.ndarray  # ys as integers
    cols: np.ndarray  # xs as integers
    nx: np.ndarray  # unit normals toward W
    ny: np.ndarray
    steps: np.ndarray
    sector: np.ndarray


def _vote(luma: np.ndarray, mark: float, short: int) -> _Vote | None:
    points = _edge_points(luma, mark)
    if points is None:
        return None
    rows, cols, nx, ny, mag = points
    xs, ys = cols.astype(np.float64), rows.astype(np.float64)
    h, w = luma.shape
    angle = np.arctan2(ny, nx)
    angle += math.pi / 4
    np.floor_divide(angle, math.pi / 2, out=angle)
    sector = angle.astype(np.int64) & (_SECTORS - 1)  # % _SECTORS (a power of two)
    reach = np.asarray(RADII)[:, None] * short
    vx = _rounded(reach * nx, xs)
    vy = _rounded(reach * ny, ys)
    ok = (vx >= 0) & (vx < w)
    ok &= vy >= 0
    ok &= vy < h
    vy *= w
    vy += vx
    vy *= _SECTORS
    vy += sector
    weight = np.minimum(mag, 1.0).astype(np.float64)
    acc = np.bincount(vy[ok], np.broadcast_to(weight, ok.shape)[ok], minlength=h * w * _SECTORS)
    stack = cv2.blur(acc.reshape(h, w, _SECTORS).astype(np.float32), (5, 5))
    score = np.minimum(stack[..., 0], stack[..., 1])
    np.minimum(score, np.minimum(stack[..., 2], stack[..., 3]), out=score)  # _SECTORS == 4
    return _Vote(score, xs, ys, rows, cols, nx, ny, mag, sector)


def _rounded(offset: np.ndarray, start: np.ndarray) -> np.ndarray:
    """``np.rint(start + offset)`` as int64, with ``offset`` (float64) as scratch."""
    offset += start
    np.rint(offset, out=offset)
    return offset.astype(np.int64)


def _meeting_point(vote: _Vote, left: int, right: int
                   ) -> tuple[int, int, float, float] | None:
    """The best meeting point in columns left..right of the area: x, y, its vote and that
    over the window's mean; None when no ray met anywhere there."""
    window = vote.score[:, left:right]
    iy, ix = np.unravel_index(int(np.argmax(window)), window.shape)
    best = float(window[iy, ix])
    if best <= 0.0:
        return None
    return int(ix) + left, int(iy), best, best / max(float(window.mean()), 1e-3)


def _peak(vote: _Vote, point: tuple[int, int, float, float], short: int) -> _Peak | None:
    """A meeting point (``_meeting_point``) and its outline: the supporters, followed along
    their edges (``_followed``); None with too few supporters."""
    ix, iy, best, contrast = point
    # supporters: rays passing within 2.5 px of the peak, at a reach in the range; first the
    # points within far + 3 px on both axes (integer positions: within its floor), the rows
    # found by bisection as the points come in row order
    far = 1.2 * RADII[-1] * short
    reach = math.floor(far + 3)
    lo = int(np.searchsorted(vote.rows, iy - reach, "left"))
    hi = int(np.searchsorted(vote.rows, iy + reach, "right"))
    close = np.flatnonzero(np.abs(vote.cols[lo:hi] - ix) <= reach)
    close += lo
    nx, ny = vote.nx[close], vote.ny[close]
    vx, vy = ix - vote.xs[close], iy - vote.ys[close]
    along = vx * nx + vy * ny
    across = np.abs(vx * ny - vy * nx)
    supporting = (across <= 2.5) & (along >= 0.7 * RADII[0] * short) & (along <= far)
    if np.count_nonzero(supporting) < 8:
        return None
    # the outline: the supporters followed on where they lie on a longer edge
    distance = np.hypot(vx, vy)
    facing = along >= _FOLLOW_FACING * distance
    facing &= distance <= far
    ratio = vote.steps[close] / _median(vote.steps[close[supporting]])
    facing &= (ratio <= _FOLLOW_STEP) & (ratio >= 1.0 / _FOLLOW_STEP)
    top, left = max(0, iy - reach), max(0, ix - reach)
    rows, cols = vote.rows[close] - top, vote.cols[close] - left
    near = close[_followed(rows, cols, supporting, facing)]
    counts = np.bincount(vote.sector[near], minlength=_SECTORS).astype(np.float64)
    return _Peak(ix, iy, best, contrast, vote.xs[near], vote.ys[near],
                 vote.steps[near], np.stack([vote.nx[near], vote.ny[near]], 1), counts)


def _followed(rows: np.ndarray, cols: np.ndarray, supporting: np.ndarray,
              alike: np.ndarray) -> np.ndarray:
    """Which points (at rows, cols of a small window) make the outline: the supporters and
    the points ``alike`` them joined to them (8-neighbours, one-pixel gaps bridged).

    Only edge points whose rays pass the meeting point support it: all of a circle's
    outline, but only the middle of each side of a square, a shield or a hexagon and little
    of a star's. The rest of such an outline is the same edge carried on: joined to the
    supporters, facing the meeting point (within 60 degrees: ``_FOLLOW_FACING``) with the
    same log-step (``_FOLLOW_STEP``: an overlay's outline has one step all round, texture
    joined to it has its own)."""
    drawn_at = alike | supporting
    drawn = np.zeros((int(rows.max()) + 1, int(cols.max()) + 1), np.uint8)
    drawn[rows[drawn_at], cols[drawn_at]] = 1
    count, labels = cv2.connectedComponents(cv2.dilate(drawn, _SQUARE3), connectivity=8)
    chains = np.zeros(count, bool)
    chains[labels[rows[supporting], cols[supporting]]] = True
    return drawn_at & chains[labels[rows, cols]]


def _edge_points(luma: np.ndarray, mark: float
                 ) -> tuple[np.ndarray, ...] | None:
    """Thin edge points of the log-distance-to-W image, in row order: rows and columns,
    unit normals toward W (lower log distance) and gradient magnitudes."""
    log = cv2.LUT(luma, _log_table(mark))
    log = cv2.GaussianBlur(log, (0, 0), 0.8)
    gx = cv2.Sobel(log, cv2.CV_32F, 1, 0, ksize=3) * 0.25
    gy = cv2.Sobel(log, cv2.CV_32F, 0, 1, ksize=3) * 0.25
    # not cv2.magnitude: its result differs in the last bit with the arrays' alignment in
    # memory, which made the stage's decisions depend on where numpy put the arrays
    mag = np.sqrt(gx * gx + gy * gy)
    ys, xs = _thin(mag, gx, gy)
    if len(xs) < 8:
        return None
    m = mag[ys, xs]
    return ys, xs, -gx[ys, xs] / m, -gy[ys, xs] / m, m


def _thin(mag: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) of the points above the edge floor that are maxima across the edge (the
    gradient's direction rounded to 0, 45, 90 or 135 degrees)."""
    ax, ay = np.abs(gx), np.abs(gy)
    flat = ay <= _TAN_22 * ax  # within 22.5 degrees of horizontal: compare left and right
    steep = ax <= _TAN_22 * ay  # of vertical: above and below; else along a diagonal
    diagonal = ~(flat | steep)
    rising = gx * gy > 0
    h, w = mag.shape
    pad = np.zeros((h + 2, w + 2), mag.dtype)  # np.pad(mag, 1), without its overhead
    pad[1:-1, 1:-1] = mag

    def at(dx: int, dy: int) -> np.ndarray:
        return pad[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    keep = flat & (mag >= at(1, 0)) & (mag > at(-1, 0))
    keep |= steep & (mag >= at(0, 1)) & (mag > at(0, -1))
    keep |= diagonal & rising & (mag >= at(1, 1)) & (mag > at(-1, -1))
    keep |= diagonal & ~rising & (mag >= at(-1, 1)) & (mag > at(1, -1))
    ys, xs = np.nonzero(keep & (mag > _EDGE_FLOOR))
    return ys, xs


_TABLES: dict[float, np.ndarray] = {}


def _log_table(mark: float) -> np.ndarray:
    table = _TABLES.get(mark)
    if table is None:
        levels = np.arange(256, dtype=np.float32)
        table = np.log(np.abs(levels - mark) + _LOG_OFFSET).astype(np.float32)
        _TABLES[mark] = table
    return table


def _luma(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


# ----------------------------------------------------------------------------- cues


def _candidate(work: np.ndarray, window: str, mark: float, peak: _Peak,
               origin: tuple[int, int], short: int, every_cue: bool = False
               ) -> _Candidate | None:
    """The peak's outline and box at working scale, and the cues that score it."""
    x0, y0 = origin
    xs = (peak.xs + x0) * 2 + 0.5
    ys = (peak.ys + y0) * 2 + 0.5
    left, right = _quantiles(xs, (2, 98))
    top, bottom = _quantiles(ys, (2, 98))
    box = (math.floor(left - 1), math.floor(top - 1), math.ceil(right - left + 3),
           math.ceil(bottom - top + 3))
    height, width = work.shape[:2]
    side = max(box[2], box[3]) / min(height, width)
    if not _SIDE_LIMITS[0] <= side <= _SIDE_LIMITS[1]:
        return None
    perimeter = (box[2] + box[3]) / 2.0  # the box's half perimeter, in half-size pixels
    features = {
        "votes": min(peak.votes / max(perimeter, 1.0), 3.0),
        "contrast": min(math.log(max(peak.contrast, 1e-3)), 5.0),
        "coverage": min(len(peak.xs) / max(perimeter, 1.0), 3.0),
        "balance": float(peak.sectors.min() / max(peak.sectors.max(), 1.0)),
        "step_spread": _spread(peak.steps),
        "step": _median(peak.steps),
        "side": side,
    }
    if _logit(features, bound=True) < _PROPOSAL_LOGIT:  # hopeless whatever the blend says
        return None
    outline = np.stack([xs, ys], 1).astype(np.int32)
    # the colour cues are medians and fits over the outline: a long one is sampled evenly
    every = max(1, math.ceil(len(xs) / _CUE_POINTS))
    xs, ys, normals = xs[::every], ys[::every], peak.normals[::every]
    toward = _toward_mark(work, xs, ys, normals, mark)
    features.update(alpha_spread=toward[0], alpha=toward[1], chroma=toward[2])
    if _logit(features, bound=True) < _PROPOSAL_LOGIT:  # whatever the free-W fit says
        return None
    blend = _blend_fit(work, xs, ys, normals)
    features.update(fit=blend[0])
    if _logit(features) < _PROPOSAL_LOGIT:
        return None
    # is there one blend that undoes the mark? W = the vote's white or black with the median
    # implied opacity, or the free-W fit where that is plausible (grey and coloured marks)
    blends = [(np.full(3, mark), min(max(toward[1], 0.05), 0.9))]
    if blend[1] > 0:
        blends.append((np.asarray(blend[3]), blend[2]))
    tried = []
    bands = _Bands.along(work, xs, ys, normals)
    for shade, opacity in blends:
        cues = _overlay_cues(bands, shade, opacity)
        # an outline that is no overlay's fails whatever the inside shows: the inside (the
        # costly part) is measured only when it can decide
        if every_cue or _within_limits(cues):
            cues.update(_interior_cues(work, xs, ys, shade, opacity))
        else:
            cues.update(unexplained=math.nan, covered=math.nan)
        tried.append((not _is_overlay(cues), cues["residual"], shade, opacity, cues))
    _, _, shade, opacity, cues = min(tried, key=lambda t: (t[0], t[1]))
    features.update(cues)
    colour = (float(shade[0]), float(shade[1]), float(shade[2]))
    return _Candidate(window, mark, box, outline, features, colour, opacity)


@dataclass(frozen=True, eq=False)
class _Bands:
    """What the overlay cues read along an outline, whatever the blend tried: colours 2, 3
    and 4 px inside (toward W) and 2 px outside, and the texture levels on both sides."""

    inside: tuple[np.ndarray, np.ndarray, np.ndarray]
    outside: np.ndarray
    within: float
    without: float

    @classmethod
    def along(cls, work: np.ndarray, xs: np.ndarray, ys: np.ndarray,
              normals: np.ndarray) -> _Bands:
        inside = tuple(_at(work, xs, ys, normals, d) for d in (2.0, 3.0, 4.0))
        within, without = (_texture(work, xs, ys, normals, side) for side in (1.0, -1.0))
        return cls((inside[0], inside[1], inside[2]), _at(work, xs, ys, normals, -2.0), within,
                   without)


def _overlay_cues(bands: _Bands, shade: np.ndarray, a: float) -> dict[str, float]:
    """What separates an overlay from an opaque object, on thin bands along the outline.

    With the blend undone inside, I = (J - a W) / (1 - a), a photo under an overlay carries
    on across the outline; an object's inside is its own content, which no single (W, a)
    turns into its surroundings. Returns:

    residual : median colour step across the outline after the inversion, over the median
        step before it (about 0 for an overlay);
    clip : share of inside samples whose inversion leaves 0..255 (J darker than a W allows
        for a white W, say): an overlay cannot make them;
    texture : log of the texture (tangential differences) just inside over (1 - a) times
        that just outside (about 0 for an overlay: the photo's texture, scaled);
    a_split : how far the opacity implied over the darker half of the background is from
        that over the brighter half, relative to a (one overlay, one opacity);
    ground : the texture level on the busier side of the outline. On a perfectly flat
        ground (a cartoon's, a poster's) nothing shows through to tell an overlay from a
        flat shape of another shade, and flagging such a shape rewrites a clean picture.
    """
    inside, outside = bands.inside, bands.outside
    inverted = [(v - a * shade) / (1.0 - a) for v in inside]
    before = np.linalg.norm(inside[0] - outside, axis=1)
    after = np.linalg.norm(inverted[0] - outside, axis=1)
    residual = _median(after) / max(_median(before), 1.0)
    clip = float(np.mean([((v < -15.0) | (v > 270.0)).any(1).mean() for v in inverted[1:]]))
    return {"residual": min(residual, 3.0), "clip": clip,
            "texture": math.log((bands.within + 4.0) / ((1.0 - a) * bands.without + 4.0)),
            "a_split": _opacity_split(inside[0], outside, shade, a),
            "ground": max(bands.within, bands.without)}


def _texture(work: np.ndarray, xs: np.ndarray, ys: np.ndarray, normals: np.ndarray,
             side: float) -> float:
    """Median colour difference along the outline (3 px apart), 3 and 5 px to one side
    (side 1: the W side)."""
    tangent = np.stack([-normals[:, 1], normals[:, 0]], 1)
    diffs = []
    for d in (3.0, 5.0):
        px, py = xs + side * d * normals[:, 0], ys + side * d * normals[:, 1]
        ahead, behind = _at(work, px, py, tangent, 1.5), _at(work, px, py, tangent, -1.5)
        diffs.append(np.abs(ahead - behind).sum(1))
    return _median(np.concatenate(diffs))


def _opacity_split(inside: np.ndarray, outside: np.ndarray, shade: np.ndarray,
                   a: float) -> float:
    """The opacity implied over the darker half of the background less that over the
    brighter half, relative to a (0 when too few points to tell)."""
    toward = shade - outside
    implied = ((inside - outside) * toward).sum(1) / np.maximum((toward * toward).sum(1), 400.0)
    luma = outside @ np.array([0.299, 0.587, 0.114])
    dark = luma <= _median(luma)
    if dark.sum() < 4 or (~dark).sum() < 4:
        return 0.0
    split = abs(_median(implied[dark]) - _median(implied[~dark])) / max(a, 0.05)
    return min(split, 3.0)


def _interior_cues(work: np.ndarray, xs: np.ndarray, ys: np.ndarray, shade: np.ndarray,
                   a: float) -> dict[str, float]:
    """Whether the inside is the surroundings' photo, with or without the overlay on it.

    The background is predicted inside the outline's hull by a quadratic fitted (per
    channel) to a ring around it; each inside pixel should then be the background (a hole
    knocked out of the mark) or the background under the blend. Returns ``unexplained``: the
    share of inside pixels that are neither, beyond the ring's own roughness (a coin's
    relief, a patch's embroidery); and ``covered``: the share nearer the blended prediction.
    """
    height, width = work.shape[:2]
    pad = 10
    x0, y0 = max(0, int(xs.min()) - pad), max(0, int(ys.min()) - pad)
    x1, y1 = min(width, int(xs.max()) + pad + 1), min(height, int(ys.max()) + pad + 1)
    hull = cv2.convexHull(np.stack([xs - x0, ys - y0], 1).astype(np.int32))
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    inner = cv2.erode(mask, _DISC5)
    ring = cv2.dilate(mask, _DISC17) - cv2.dilate(mask, _DISC7)
    if inner.sum() < 16 or ring.sum() < 16:
        return {"unexplained": 1.0, "covered": 0.0}
    crop = work[y0:y1, x0:x1]
    scale = max(x1 - x0, y1 - y0)
    ring_at, inner_at = ring.astype(bool), inner.astype(bool)
    ring_basis, ring_seen = _quadratic(ring_at, scale), crop[ring_at].astype(np.float64)
    coef, *_ = np.linalg.lstsq(ring_basis, ring_seen, rcond=None)
    rough = _median(np.linalg.norm(ring_seen - ring_basis @ coef, axis=1))
    background = _quadratic(inner_at, scale) @ coef
    seen = crop[inner_at].astype(np.float64)
    off = np.linalg.norm(seen - background, axis=1)
    on = np.linalg.norm(seen - (a * shade + (1.0 - a) * background), axis=1)
    tolerance = max(3.0 * rough, 12.0)
    return {"unexplained": float((np.minimum(on, off) > tolerance).mean()),
            "covered": float((on < off).mean())}


def _quadratic(where: np.ndarray, scale: int) -> np.ndarray:
    """(n, 6) the quadratic terms 1, u, v, u u, u v, v v at the pixels ``where`` (row by
    row), u and v being their column and row over ``scale``, less 0.5."""
    rows, cols = np.nonzero(where)
    u, v = cols / scale - 0.5, rows / scale - 0.5
    return np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], -1)


def _median(values: np.ndarray) -> float:
    """``np.median`` of a 1-D array without NaNs (the same value: the middle element, or the
    mean of the middle two in the array's dtype), without its overhead on short arrays."""
    half = values.size // 2
    if values.size % 2:
        return float(np.partition(values, half)[half])
    part = np.partition(values, (half - 1, half))
    return float((part[half - 1] + part[half]) / 2)


def _at(img: np.ndarray, xs: np.ndarray, ys: np.ndarray, normals: np.ndarray,
        d: float) -> np.ndarray:
    """Colours (n, 3) float at d px along each normal (nearest pixel, clipped to the image)."""
    height, width = img.shape[:2]
    xi = np.clip(np.rint(xs + d * normals[:, 0]), 0, width - 1).astype(np.int64)
    yi = np.clip(np.rint(ys + d * normals[:, 1]), 0, height - 1).astype(np.int64)
    return img[yi, xi].astype(np.float64)


def _quantiles(values: np.ndarray, percents: tuple[float, ...]) -> list[float]:
    """Percentiles with linear interpolation (as np.percentile), cheaper on short arrays."""
    ordered = np.sort(values, axis=None)
    out = []
    for p in percents:
        pos = p / 100.0 * (len(ordered) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(ordered) - 1)
        out.append(float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)))
    return out


def _spread(values: np.ndarray) -> float:
    q25, q50, q75 = _quantiles(values, (25, 50, 75))
    return float(min((q75 - q25) / max(q50, 1e-6), 3.0))


def _blend_fit(work: np.ndarray, xs: np.ndarray, ys: np.ndarray, normals: np.ndarray,
               ) -> tuple[float, float, float, tuple[float, float, float]]:
    """How well one blend explains the colour steps across the outline.

    With J_in on the W side and J_out on the other, J_in - J_out = a (W - J_out) = V - a J_out
    (V = a W): one slope a and one offset per channel for the whole outline, by least squares.
    Returns (share of the step energy explained, 1 if a and W are plausible else 0, a, W).
    """
    inside, outside = _samples(work, xs, ys, normals, 2.5)
    step = inside - outside
    n = len(step)
    # unknowns: a, V0, V1, V2 ; rows: step_c = -a * out_c + V_c
    design = np.zeros((3 * n, 4))
    design[:, 0] = -outside.ravel()
    for c in range(3):
        design[c::3, 1 + c] = 1.0
    target = step.ravel()
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ solution
    energy = float((target**2).sum())
    fit = 1.0 - float((residual**2).sum()) / max(energy, 1e-6)
    a = float(solution[0])
    colour = solution[1:] / a if abs(a) > 1e-3 else np.full(3, -1.0)
    plausible = 0.08 <= a <= 0.7 and bool(np.all((colour > -25) & (colour < 280)))
    shade = tuple(float(v) for v in np.clip(colour, 0, 255))
    return max(fit, -1.0), float(plausible), a, (shade[0], shade[1], shade[2])


def _toward_mark(work: np.ndarray, xs: np.ndarray, ys: np.ndarray, normals: np.ndarray,
                 mark: float) -> tuple[float, float, float]:
    """Per outline point, the opacity its colour step implies toward the hypothesis W.

    a_i = <J_in - J_out, W - J_out> / |W - J_out|^2. Under one overlay a_i is the same all
    round, however the photo under the outline changes; an object's border is not. Returns
    (spread of a_i: IQR over median, median a_i, median cosine between the step and W - J_out:
    an overlay's step points at W in colour, not only in brightness).
    """
    inside, outside = _samples(work, xs, ys, normals, 1.5)
    toward = mark - outside
    step = inside - outside
    reach = (toward * toward).sum(1)
    usable = reach > 900.0
    if usable.sum() < 8:
        return 3.0, 0.0, 0.0
    step, toward, reach = step[usable], toward[usable], reach[usable]
    dot = (step * toward).sum(1)
    alpha = dot / reach
    cosine = dot / np.sqrt(reach * np.maximum((step * step).sum(1), 1e-6))
    q25, q50, q75 = _quantiles(alpha, (25, 50, 75))
    spread = float(min((q75 - q25) / max(abs(q50), 1e-3), 3.0))
    return spread, float(np.clip(q50, -1.0, 1.0)), _median(cosine)


def _samples(work: np.ndarray, xs: np.ndarray, ys: np.ndarray, normals: np.ndarray,
             d: float) -> tuple[np.ndarray, np.ndarray]:
    """Colours d px to the W side and to the other side of each outline point."""
    height, width = work.shape[:2]
    xi = np.clip(np.rint(xs + d * normals[:, 0]), 0, width - 1).astype(np.int64)
    yi = np.clip(np.rint(ys + d * normals[:, 1]), 0, height - 1).astype(np.int64)
    xo = np.clip(np.rint(xs - d * normals[:, 0]), 0, width - 1).astype(np.int64)
    yo = np.clip(np.rint(ys - d * normals[:, 1]), 0, height - 1).astype(np.int64)
    return work[yi, xi].astype(np.float64), work[yo, xo].astype(np.float64)


# ----------------------------------------------------------------------------- scoring

_WEIGHTS: dict[str, float] = {  # fitted on bench/'s tune set (bench/logo_probe.py --features),
    # on the supporters' outlines, before outlines were followed (a refit on followed ones
    # gave lower recall at every false-positive level on held-out tuning photos)
    "contrast": 0.27, "coverage": 2.96, "balance": 2.092, "step_spread": -1.415, "fit": 0.074,
    "alpha_spread": -3.451, "alpha": 0.601,
}
_BIAS = -4.331
# the weights' most favourable values of the cues measured only once the peak looks promising
_BEST_CASE = {"fit": 1.0, "alpha_spread": 0.0, "alpha": 1.0}
_PROPOSAL = 0.7  # the weighted cues propose a candidate from this value on (chosen with the
# followed outlines on 200 tuning logos against 1200 clean, hard clean and pasted-object
# photos, checked on as many others) ...
_PROPOSAL_LOGIT = math.log(_PROPOSAL / (1.0 - _PROPOSAL))
_LIMITS = {  # ... and it passes only if it behaves as an overlay (see _overlay_cues and
    # _interior_cues): cue -> (lowest, highest) value allowed
    "residual": (0.0, 0.12), "clip": (0.0, 0.15), "texture": (-0.6, 0.6), "a_split": (0.0, 0.25),
    "unexplained": (0.0, 0.3), "covered": (0.25, 1.0), "ground": (0.5, math.inf),
}


def _logit(features: dict[str, float], bound: bool = False) -> float:
    """The weighted cues; ``bound``: the largest value the cues not yet measured allow."""
    values = {**_BEST_CASE, **features} if bound else features
    return _BIAS + sum(w * values[name] for name, w in _WEIGHTS.items())


def _is_overlay(features: dict[str, float]) -> bool:
    """Every overlay cue within its limits (NaN, a cue not measured, is not)."""
    return all(lo <= features[name] <= hi for name, (lo, hi) in _LIMITS.items())


def _within_limits(cues: dict[str, float]) -> bool:
    """Every cue measured so far within its limits."""
    return all(lo <= cues[name] <= hi for name, (lo, hi) in _LIMITS.items() if name in cues)


def _score(features: dict[str, float]) -> float:
    """0..1, 0.5 at the decision: a proposed candidate that behaves as an overlay scores
    0.5..1 by the proposal's strength; any other at most 0.25."""
    logit = max(-50.0, min(50.0, _logit(features)))
    proposal = 1.0 / (1.0 + math.exp(-logit))
    if proposal >= _PROPOSAL and _is_overlay(features):
        return 0.5 + 0.5 * (proposal - _PROPOSAL) / (1.0 - _PROPOSAL)
    return 0.25 * min(proposal / _PROPOSAL, 1.0)


def _to_working(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """The image at no more than 1.25 x WORKING_SIDE, and caller pixels per working pixel."""
    height, width = rgb.shape[:2]
    longest = max(height, width)
    if longest <= 1.25 * WORKING_SIDE:
        return rgb, 1.0
    f = WORKING_SIDE / longest
    size = (max(1, round(width * f)), max(1, round(height * f)))
    return np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)), width / size[0]


def _to_caller(cand: _Candidate, score: float, factor: float) -> LogoFinding:
    x, y, w, h = cand.box
    box = (math.floor(x * factor), math.floor(y * factor), math.ceil(w * factor),
           math.ceil(h * factor))
    outline = np.rint(cand.outline * factor).astype(np.int32)
    return LogoFinding(box, round(score, 4), outline, cand.colour, round(cand.opacity, 4))


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise TypeError("image must be a uint8 numpy array")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < MIN_SIDE:
        raise ValueError(f"image must have shape (H, W, 3) with H, W >= {MIN_SIDE}, "
                         f"got {rgb.shape}")
