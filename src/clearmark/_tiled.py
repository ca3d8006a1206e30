"""Tiled watermarks: one faint mark repeated on a lattice over the whole image.

Stock-photo previews stamp a text or a logo again and again on a grid (often staggered, often
rotated), semi-transparent, in white, light grey or dark grey. No single copy is strong enough
to find on its own, and fifty boxes would help no remover; but together the copies are
unmistakable, because they are the *same* pattern at every point of a lattice while the photo
beneath them changes from copy to copy. Everything here works on that, in three steps on a gray
working copy (long side ``WORKING_SIDE``):

1. **Scan** (every image, 1.5-2 ms on one core). At ``SCAN_SIDE`` pixels, the autocorrelation of
   a high-pass copy shows a tiled mark as a lattice of sharp peaks. It is computed with one
   real DFT on a padded, windowed copy; the power spectrum is square-rooted first, which
   flattens the photo's few strong edges and sharpens the mark's peaks. Pairs of the strongest
   peaks propose lattice bases, and a basis scores by the weakest peak among its shortest
   lattice points: chance peaks in a photo do not line up on a lattice. Most photos stop
   here (on the benchmark's photos, 78-95 % of clean ones).
2. **Verify** (candidates only, 15-40 ms). At working scale the lattice is refined to
   sub-pixel by a least-squares fit to the peaks at all its points in reach. Peaks that hold up
   from copy to copy but are not lattice points make the lattice finer (a staggered grid's
   in-between rows; a brick wall seen through too coarse a lattice), and a lattice finer than
   any mark's is a texture's. Then four cues, each a logistic whose midpoint is its threshold
   (the score is the weakest):

   - *strength*: the median peak height (a robust z-score) at the lattice points;
   - *exactness*: the fit's residual. A stamped mark repeats exactly; bricks, tiles, fabric and
     window rows in photos drift with perspective and uneven laying, so their far lattice
     points miss the fit by pixels. Plain autocorrelation or spectral peaks cannot tell a
     tiled mark from a brick wall; this can. With two lattice points only it cannot be
     judged, and the peaks must be stronger instead;
   - *coverage*: the image is folded onto one lattice cell (each pixel lands in a bin of the
     cell, the way folder evidence stacks a folder's photos: Dekel et al., "On the
     Effectiveness of Visible Watermarks", CVPR 2017), and each copy is correlated with the
     mean of the others. A mark agrees everywhere, over sky and over objects alike; a fence or
     a shelf repeats only where it is;
   - *straightness*: how much of the folded cell pattern survives a shift by a quarter or a
     half of a lattice vector. Mortar joints, grout and wires are lines along the lattice and
     survive; letters and logos do not.

   The cues are measured cheapest first, and a caller's threshold (``floor``) stops a lattice
   as soon as the ones measured put it below: a photo texture's lattice usually fails on
   strength or coverage before the cell pattern is made (the working copy's peak map is
   made once for all candidates).
3. **Mask**. The fold's mean of a local-contrast copy is the mark's cell pattern; its bins that
   are strongly and consistently lighter (or darker: the mark is one colour, so one polarity)
   form the cell mask, and the lattice places it at every copy at any resolution: one
   ``cv2.warpAffine`` of the cell with a wrap-around border.

Limits: marks with fewer than about two copies along each lattice direction (very long texts
on small images) leave too few peaks to find, and so do marks too faint to see on busy
texture. An exactly periodic digital pattern (a wallpaper, a drawn grid) is indistinguishable
from a tiled mark and is flagged.

All functions are pure functions of arrays; ``TiledFinding`` is a small frozen value that
pickles to workers.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

WORKING_SIDE = 512  # long side find_tiled works at; larger inputs are reduced to it
SCAN_SIDE = 256  # long side of the cheap lattice scan
MIN_SIDE = 64  # shorter images cannot hold two copies of a readable mark

_PAD = 1.5  # DFT size over image size: shifts up to half the image do not wrap onto others
_OVERLAP = 0.1  # window overlap below which an autocorrelation value is too noisy to use
_MIN_PERIOD = 0.06  # shortest lattice vector, as a share of the short side
_SIGMA = 1.0 / SCAN_SIDE  # high-pass scale, as a share of the long side (1 px at scan size)
_SCAN_PEAKS = 6  # strongest peaks whose pairs propose lattices
_SCAN_PASS = 5.0  # scan score (z) from which a lattice is verified
_CANDIDATES = 2  # lattices verified per image at most
_CONTRAST_SIGMA = 3.0  # local-contrast scale of the mark's pattern, working px
_GROW = 1  # mask margin, working px (anti-aliasing and sub-pixel lattice error; 2 px cost
# removal 2 dB in bench/removal.py: inversion undoes a faint rim better than a fill does)

# (midpoint, width) of each cue's logistic: a cue at its midpoint scores 0.5
_STRENGTH = (7.5, 0.6)  # median z at the lattice points
_COVERAGE = (0.7, 0.06)  # share of the image whose copy agrees with the others
_RESIDUAL = (0.4, 0.07)  # median lattice-fit residual, working px (judged from 3 points up)
_STRAIGHTNESS = (0.3, 0.05)  # share of the cell pattern kept under part-period shifts
_UNJUDGED_EXTRA = 3.5  # strength asked on top when exactness cannot be judged (2 points)

_KERNEL3 = np.ones((3, 3), np.uint8)
_KERNEL5 = np.ones((5, 5), np.uint8)


@dataclass(frozen=True, eq=False)
class TiledFinding:
    """A lattice of copies of one mark, measured on a working copy of ``shape``.

    score : 0..1; 0.5 is the decision threshold (see ``watermarked``).
    basis : the two shortest lattice vectors ((x, y), (x, y)), in working pixels.
    shape : (height, width) of the working copy.
    cell : (n2, n1) uint8 0/255, the mark's pixels in one lattice cell: bin (k2, k1) holds the
        points whose lattice coordinates have fractional parts in [k1/n1, (k1+1)/n1) along the
        first vector and [k2/n2, (k2+1)/n2) along the second.
    polarity : +1 when the mark is lighter than the photo beneath it, -1 when darker.
    strength, coverage, residual, straightness : the cues the score came from (see the
        module docstring).
    """

    score: float
    basis: tuple[tuple[float, float], tuple[float, float]]
    shape: tuple[int, int]
    cell: np.ndarray
    polarity: int
    strength: float
    coverage: float
    residual: float
    straightness: float

    @property
    def watermarked(self) -> bool:
        return self.score >= 0.5


def find_tiled(gray: np.ndarray, floor: float = 0.0) -> TiledFinding | None:
    """Look for a tiled mark in a gray image.

    gray : (H, W) uint8, a reduced working copy of the image (long side ``WORKING_SIDE``
        expected; larger copies are reduced, smaller ones used as they are, down to
        ``MIN_SIDE`` on the short side).
    floor : lattices whose score is sure to fall below this are dropped as soon as the
        cheaper cues show it, before the costly ones are measured (a caller that keeps only
        findings scoring at least its threshold passes that threshold: same decisions,
        less time on photos whose texture the scan took for a lattice).
    Returns None when the image shows no lattice at all (nearly every photo) or none scores
    ``floor``, else the best verified lattice, watermarked or not (see
    ``TiledFinding.score``).
    """
    _check_gray(gray)
    if min(gray.shape) < MIN_SIDE:
        return None
    work = _reduce(gray, WORKING_SIDE)
    scan = _reduce(work, SCAN_SIDE)
    factor = work.shape[1] / scan.shape[1]
    best: TiledFinding | None = None
    peaks: _WorkPeaks | None = None  # the working copy's peak map, shared by the candidates
    for _, basis in _scan(scan)[:_CANDIDATES]:
        if peaks is None:
            peaks = _WorkPeaks.of(work)
        finding = _verify(work, basis * factor, peaks, floor)
        if finding is not None and (best is None or finding.score > best.score):
            best = finding
        if best is not None and best.watermarked:
            break
    return best


def tiled_mask(finding: TiledFinding, width: int, height: int) -> np.ndarray:
    """The mark's pixels in a ``width`` x ``height`` image (the finding's image at any size),
    as uint8 0/255, with a margin of about ``_GROW`` working pixels."""
    if width < 1 or height < 1:
        raise ValueError(f"mask size must be positive, got {width}x{height}")
    if not finding.cell.any():
        return np.zeros((height, width), np.uint8)
    cell = _grow_wrapped(finding.cell, _GROW)
    rows, cols = cell.shape
    work_h, work_w = finding.shape
    to_cell = np.diag([cols, rows]) @ np.linalg.inv(np.array(finding.basis).T)
    scale = np.diag([work_w / width, work_h / height])
    # dst pixel centre -> working pixel -> lattice coordinates -> cell bin centre
    linear = to_cell @ scale
    offset = to_cell @ (0.5 * np.diag(scale) - 0.5) - 0.5
    warp = np.hstack([linear, offset[:, None]]).astype(np.float64)
    out = cv2.warpAffine(cell, warp, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_WRAP)
    return np.where(out >= 128, 255, 0).astype(np.uint8)


def _check_gray(gray: np.ndarray) -> None:
    if not isinstance(gray, np.ndarray) or gray.ndim != 2:
        shape = getattr(gray, "shape", None)
        raise ValueError(f"expected a 2-D gray image, got shape {shape}")
    if gray.dtype != np.uint8:
        raise ValueError(f"expected uint8 gray, got {gray.dtype}")


def _reduce(gray: np.ndarray, side: int) -> np.ndarray:
    height, width = gray.shape
    factor = side / max(height, width)
    if factor >= 1:
        return gray
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def _highpass(gray: np.ndarray) -> np.ndarray:
    """Fine detail, in units of its mean magnitude and clipped, so no few strong photo edges
    outweigh the many faint edges of the copies."""
    image = gray.astype(np.float32)
    detail = image - cv2.GaussianBlur(image, (0, 0), _SIGMA * max(gray.shape))
    detail /= float(np.mean(np.abs(detail))) + 1e-3
    return np.clip(detail, -2.5, 2.5)


# ----------------------------------------------------------------------------- autocorrelation


@dataclass(frozen=True, eq=False)
class _Geometry:
    """What the autocorrelation of an (h, w) image needs that depends on its size only.

    Shifts are centred: shift (dx, dy) is at [rows // 2 + dy, cols // 2 + dx].
    """

    window: np.ndarray  # (h, w) Hann window
    size: tuple[int, int]  # padded DFT rows, cols
    overlap: np.ndarray  # (rows, cols) the window's own autocorrelation, 1 at zero shift
    usable: np.ndarray  # (rows, cols) bool: enough overlap, beyond the shortest period
    usable_u8: np.ndarray  # the same as a uint8 mask, for OpenCV
    search_u8: np.ndarray  # usable, in one half-plane (the autocorrelation is symmetric)
    near_u8: np.ndarray  # shifts from 3 px on with enough overlap, in that half-plane
    min_period: float  # px


@lru_cache(maxsize=16)
def _geometry(height: int, width: int) -> _Geometry:
    window = cv2.createHanningWindow((width, height), cv2.CV_32F)
    rows = cv2.getOptimalDFTSize(math.ceil(height * _PAD))
    cols = cv2.getOptimalDFTSize(math.ceil(width * _PAD))
    overlap = _autocorrelate(_padded(window, rows, cols))
    overlap /= overlap[rows // 2, cols // 2]
    dy, dx = np.mgrid[-(rows // 2):rows - rows // 2, -(cols // 2):cols - cols // 2]
    min_period = _MIN_PERIOD * min(height, width)
    usable = (overlap > _OVERLAP) & (dx * dx + dy * dy >= min_period**2)
    half = (dy > 0) | ((dy == 0) & (dx > 0))
    near = half & (overlap > _OVERLAP) & (dx * dx + dy * dy >= 9)
    return _Geometry(window, (rows, cols), overlap, usable, usable.astype(np.uint8),
                     (usable & half).astype(np.uint8), near.astype(np.uint8), min_period)


def _padded(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.zeros((rows, cols), np.float32)
    out[:image.shape[0], :image.shape[1]] = image
    return out


def _autocorrelate(padded: np.ndarray, compress: bool = False) -> np.ndarray:
    """Circular autocorrelation, zero shift centred; ``compress`` square-roots the power
    spectrum first (its magnitude, not its power, then weighs each frequency)."""
    spectrum = cv2.dft(padded)  # real input: packed (CCS) spectrum
    power = cv2.mulSpectrums(spectrum, spectrum, 0, conjB=True)
    if compress:
        power = np.sqrt(np.maximum(power, 0))  # the packed imaginary parts are zero
    ac = cv2.idft(power, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)
    return np.roll(ac, (padded.shape[0] // 2, padded.shape[1] // 2), (0, 1))


def _peak_map(detail: np.ndarray, geo: _Geometry) -> np.ndarray:
    """How far each shift's autocorrelation stands above its neighbourhood, in robust units
    (z-scores over all usable shifts)."""
    rows, cols = geo.size
    ac = _autocorrelate(_padded((detail - detail.mean()) * geo.window, rows, cols), True)
    ac /= np.maximum(geo.overlap, 1e-3)
    z = ac - cv2.blur(ac, (9, 9))
    _, std = cv2.meanStdDev(z, mask=geo.usable_u8)
    return z / (float(std[0, 0]) + 1e-12)


def _peaks(z: np.ndarray, geo: _Geometry, count: int,
           where: np.ndarray | None = None) -> np.ndarray:
    """(k, 2) shifts (dx, dy) of the ``count`` highest local maxima among the shifts ``where``
    (uint8 mask; default: the searched half-plane), highest first."""
    local_max = cv2.compare(z, cv2.dilate(z, _KERNEL5), cv2.CMP_GE)
    high = np.greater(z, 2.0).view(np.uint8)
    where = geo.search_u8 if where is None else where
    points = cv2.findNonZero(cv2.bitwise_and(cv2.bitwise_and(local_max, high), where))
    if points is None:
        return np.zeros((0, 2))
    xs, ys = points.reshape(-1, 2).T
    order = np.argsort(-z[ys, xs], kind="stable")[:count]
    rows, cols = geo.size
    return np.stack([xs[order] - cols // 2, ys[order] - rows // 2], 1).astype(np.float64)


# ----------------------------------------------------------------------------- lattices


def reduced_basis(u: np.ndarray, v: np.ndarray, min_sine: float = 0.3) -> np.ndarray | None:
    """The two shortest vectors of the lattice u, v span (Lagrange-Gauss reduction) as rows,
    or None when u and v are nearly parallel (the sine of their angle below ``min_sine``)."""
    cross = abs(u[0] * v[1] - u[1] * v[0])
    if cross < min_sine * math.hypot(*u) * math.hypot(*v):
        return None
    for _ in range(32):
        if v @ v < u @ u:
            u, v = v, u
        m = round(float(u @ v) / float(u @ u))
        if m == 0:
            break
        v = v - m * u
    return np.array([u, v] if u @ u <= v @ v else [v, u])


def _lattice_points(basis: np.ndarray, geo: _Geometry, reach: int,
                    margin: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Integer coordinates (n, 2) and centred pixel positions (n, 2) of the lattice points
    (one of each +- pair) at usable shifts, nearest first."""
    i, j = np.mgrid[-reach:reach + 1, 0:reach + 1].reshape(2, -1)
    keep = (j > 0) | (i > 0)
    ij = np.stack([i[keep], j[keep]], 1)
    shifts = ij @ basis
    rows, cols = geo.size
    pos = np.rint(shifts + np.array([cols // 2, rows // 2])).astype(np.int64)
    inside = ((pos[:, 0] >= margin) & (pos[:, 0] < cols - margin)
              & (pos[:, 1] >= margin) & (pos[:, 1] < rows - margin))
    ij, shifts, pos = ij[inside], shifts[inside], pos[inside]
    keep = geo.usable[pos[:, 1], pos[:, 0]]
    order = np.argsort(np.hypot(*shifts[keep].T), kind="stable")
    return ij[keep][order], pos[keep][order]


def _scan(scan: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """Lattices the scan copy's autocorrelation supports, (score, basis) best first, those
    scoring at least ``_SCAN_PASS`` only."""
    geo = _geometry(*scan.shape)
    z = _peak_map(_highpass(scan), geo)
    near_max = cv2.dilate(z, _KERNEL3)  # tolerate the basis' rounding
    pairs = (reduced_basis(a, b) for a, b in itertools.combinations(_peaks(z, geo, _SCAN_PEAKS), 2))
    bases = [basis for basis in pairs if basis is not None]
    if not bases:
        return []
    found: list[tuple[float, np.ndarray]] = []
    for score, basis in zip(_supports(np.stack(bases), near_max, geo), bases, strict=True):
        if score >= _SCAN_PASS:
            score, basis = _finest(basis, float(score), near_max, geo)
            too_fine = math.hypot(*basis[0]) < geo.min_period  # a texture, not a mark
            if not too_fine and not any(_same(basis, other) for _, other in found):
                found.append((score, basis))
    return sorted(found, key=lambda item: -item[0])


_NEAR_POINTS = np.array([(i, j) for j in range(4) for i in range(-3, 4) if j > 0 or i > 0])


def _supports(bases: np.ndarray, near_max: np.ndarray, geo: _Geometry) -> np.ndarray:
    """For (n, 2, 2) bases: the weakest peak among each lattice's (up to) four shortest
    points in reach; 0 for a lattice with too short a vector or under two points in reach."""
    rows, cols = geo.size
    shifts = np.einsum("pk,nkd->npd", _NEAR_POINTS, bases)
    pos = np.rint(shifts + np.array([cols // 2, rows // 2])).astype(np.int64)
    inside = ((pos[..., 0] >= 0) & (pos[..., 0] < cols) & (pos[..., 1] >= 0)
              & (pos[..., 1] < rows))
    pos[~inside] = 0
    ok = inside & geo.usable[pos[..., 1], pos[..., 0]]
    length = np.where(ok, np.hypot(shifts[..., 0], shifts[..., 1]), np.inf)
    nearest = np.argsort(length, axis=1, kind="stable")[:, :4]
    heights = np.take_along_axis(np.where(ok, near_max[pos[..., 1], pos[..., 0]], np.inf),
                                 nearest, 1)
    enough = (ok.sum(1) >= 2) & (np.hypot(*bases[:, 0].T) >= geo.min_period)
    return np.where(enough, heights.min(1), 0.0)


def _finest(basis: np.ndarray, score: float, near_max: np.ndarray,
            geo: _Geometry) -> tuple[float, np.ndarray]:
    """The finest lattice on the peaks. A staggered grid's copies also form a coarser,
    rectangular lattice (every other row), which can outscore the true one when the
    in-between copies' peaks are weaker; and a fine texture (bricks, cloth) seen through too
    coarse a lattice would pass for a mark. So while some lattice 2 or 3 times finer keeps a
    peak at each of its new points, take it."""
    for _ in range(3):
        finer = [b for b in _finer(basis) if b is not None]
        scores = _new_supports(np.stack(finer), basis, near_max, geo)
        best = int(np.argmax(scores))  # the first of the best, as max() would take
        new_score, new_basis = float(scores[best]), finer[best]
        if new_score < max(_SCAN_PASS, 0.4 * score):
            break
        score, basis = min(score, new_score), new_basis
    return score, basis


def _finer(basis: np.ndarray) -> list[np.ndarray | None]:
    """Every lattice holding ``basis``' lattice with index 2 or 3 (reduced)."""
    u, v = basis
    out = []
    for n in (2, 3):
        out.append(reduced_basis(u / n, v))
        out += [reduced_basis(u, (t * u + v) / n) for t in range(n)]
    return out


_FINE_POINTS = np.array([(i, j) for j in range(3) for i in range(-2, 3) if j > 0 or i > 0])


def _new_supports(fines: np.ndarray, coarse: np.ndarray, near_max: np.ndarray,
                  geo: _Geometry) -> np.ndarray:
    """For (n, 2, 2) bases ``fines`` of lattices holding ``coarse``' lattice: the weakest
    peak among the (up to) four shortest points of each that are not points of ``coarse``;
    0 where fewer than two are in reach.

    The points' shifts are exact sums of two exact products (coordinates -2..2), the same
    however computed; in ``coarse``' coordinates they are within rounding of a multiple of
    1/2 or 1/3, far from the 0.1 that tells new points from old."""
    i, j = _FINE_POINTS[:, 0, None], _FINE_POINTS[:, 1, None]
    shifts = i * fines[:, None, 0] + j * fines[:, None, 1]  # (n, k, 2)
    in_coarse = shifts @ np.linalg.inv(coarse)
    new = np.abs(in_coarse - np.rint(in_coarse)).max(2) > 0.1
    rows, cols = geo.size
    pos = np.rint(shifts + np.array([cols // 2, rows // 2])).astype(np.int64)
    inside = ((pos[..., 0] >= 0) & (pos[..., 0] < cols) & (pos[..., 1] >= 0)
              & (pos[..., 1] < rows))
    pos[~inside] = 0
    ok = new & inside & (geo.overlap[pos[..., 1], pos[..., 0]] > _OVERLAP)
    length = np.where(ok, np.hypot(shifts[..., 0], shifts[..., 1]), np.inf)
    nearest = np.argsort(length, axis=1, kind="stable")[:, :4]
    heights = np.take_along_axis(np.where(ok, near_max[pos[..., 1], pos[..., 0]], np.inf),
                                 nearest, 1)
    return np.where(ok.sum(1) >= 2, heights.min(1), 0.0)


def _same(a: np.ndarray, b: np.ndarray, tol: float = 1.5) -> bool:
    pairs = zip(a, b, strict=True)
    return all(min(np.hypot(*(u - v)), np.hypot(*(u + v))) <= tol for u, v in pairs)


def _refine(z: np.ndarray, geo: _Geometry, basis: np.ndarray,
            search: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The basis fitted (least squares) to the highest peak near each lattice point, with the
    peaks' heights and their distances from the fitted lattice."""
    ij, pos = _lattice_points(basis, geo, 4, margin=search + 1)
    if len(ij) < 2 or np.linalg.matrix_rank(ij) < 2:
        return None
    offsets = np.arange(-search, search + 1)
    ys = pos[:, 1, None, None] + offsets[None, :, None]
    xs = pos[:, 0, None, None] + offsets[None, None, :]
    best = z[ys, xs].reshape(len(pos), -1).argmax(1)
    py = pos[:, 1] + best // offsets.size - search
    px = pos[:, 0] + best % offsets.size - search
    heights = z[py, px]
    rows, cols = geo.size
    found = np.stack([px + _vertex(z[py, px - 1], heights, z[py, px + 1]) - cols // 2,
                      py + _vertex(z[py - 1, px], heights, z[py + 1, px]) - rows // 2], 1)
    weight = np.sqrt(np.maximum(heights, 0.1))[:, None]
    fitted, *_ = np.linalg.lstsq(ij * weight, found * weight, rcond=None)
    residuals = np.hypot(*(ij @ fitted - found).T)
    return fitted, heights, residuals


def _vertex(left: np.ndarray, mid: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Sub-pixel offset of a 3-point parabola's vertex (0 where it is not a maximum)."""
    curve = left - 2 * mid + right
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(curve < 0, 0.5 * (left - right) / curve, 0.0)
    return np.clip(offset, -0.5, 0.5)


# ----------------------------------------------------------------------------- verification


@dataclass(frozen=True, eq=False)
class _WorkPeaks:
    """The working copy's detail and autocorrelation peak map (what every candidate lattice
    is refined and judged on)."""

    geo: _Geometry
    detail: np.ndarray
    z: np.ndarray

    @classmethod
    def of(cls, work: np.ndarray) -> _WorkPeaks:
        geo = _geometry(*work.shape)
        detail = _highpass(work)
        return cls(geo, detail, _peak_map(detail, geo))


def _verify(work: np.ndarray, basis: np.ndarray, peaks: _WorkPeaks,
            floor: float = 0.0) -> TiledFinding | None:
    """Judge a scanned lattice on the working copy; None when it does not survive refining,
    turns out to be a fine texture's, or its cheaper cues already put it below ``floor``."""
    geo, detail, z = peaks.geo, peaks.detail, peaks.z
    fit = _fit(z, geo, basis)
    if fit is None:
        return None
    basis, heights, residuals = fit
    strength = float(np.median(heights))
    level = max(_SCAN_PASS, 0.4 * strength)
    finer = _finest_on_peaks(z, cv2.dilate(z, _KERNEL3), geo, basis, level)
    if finer is None:
        return None  # a periodicity the lattice does not explain: not one mark's copies
    if finer is not basis:
        if math.hypot(*finer[0]) < geo.min_period:
            return None  # a fine texture's lattice
        fit = _fit(z, geo, finer)
        if fit is None:
            return None
        basis, heights, residuals = fit
        strength = float(np.median(heights))
    residual = float(np.median(residuals)) if len(heights) >= 3 else None
    if _Cues(strength, residual, math.inf, None).score() < floor:
        return None  # the peaks alone rule it out; the fold could only lower the score
    fold = _Fold(work.shape, basis)
    coverage = fold.coverage(detail)
    if _Cues(strength, residual, coverage, None).score() < floor:
        return None  # the cell pattern (the costly part) could only lower the score
    pattern = fold.pattern(work, basis)
    cues = _Cues(strength, residual, coverage, _straightness(pattern.mean))
    cell, polarity = pattern.mark()
    (x1, y1), (x2, y2) = basis
    return TiledFinding(round(cues.score(), 4), ((float(x1), float(y1)), (float(x2), float(y2))),
                        (work.shape[0], work.shape[1]), cell, polarity, round(cues.strength, 3),
                        round(cues.coverage, 3), round(cues.residual or 0.0, 3),
                        round(cues.straightness or 0.0, 3))


def _fit(z: np.ndarray, geo: _Geometry,
         basis: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``_refine``, reduced; None when the refined lattice is degenerate or too fine."""
    fit = _refine(z, geo, basis)
    if fit is None:
        return None
    raw, heights, residuals = fit
    reduced = reduced_basis(raw[0], raw[1])
    if reduced is None or math.hypot(*reduced[0]) < geo.min_period:
        return None
    return reduced, heights, residuals


def _finest_on_peaks(z: np.ndarray, near_max: np.ndarray, geo: _Geometry, basis: np.ndarray,
                     level: float) -> np.ndarray | None:
    """The finest lattice on the peaks that hold up from copy to copy; None when such peaks
    form no lattice with ``basis``.

    A peak at a shift p belongs to the image's periodicity when the peaks at p plus or minus
    the lattice vectors are strong too (``level``). A mark's letters may echo at short shifts
    within one copy, but not from copy to copy; a brick wall seen through too coarse a
    lattice repeats at every brick. Such a p joins the lattice (which may then be too fine
    for a mark: the caller judges).
    """
    limit = math.hypot(*basis[1]) + 2
    rows, cols = geo.size
    for shift in _peaks(z, geo, 24, geo.near_u8):
        if math.hypot(*shift) > limit:
            continue
        if z[int(shift[1]) + rows // 2, int(shift[0]) + cols // 2] < level:
            break
        coords = shift @ np.linalg.inv(basis)
        if math.hypot(*(shift - np.rint(coords) @ basis)) < 2.5:
            continue  # a point of the lattice already
        if not _holds(shift, basis, near_max, geo, level):
            continue
        for n in range(2, 7):
            steps = np.rint(coords * n)
            if math.hypot(*(shift - steps @ basis / n)) < 2.5:
                finer = _join(basis, steps.astype(np.int64), n)
                return None if finer is None else _finest_on_peaks(z, near_max, geo, finer,
                                                                    level)
        return None
    return basis


def _join(basis: np.ndarray, steps: np.ndarray, n: int) -> np.ndarray | None:
    """The reduced basis of the lattice spanned by ``basis`` and (steps / n) @ basis."""
    rows = [np.array([n, 0]), np.array([0, n]), steps]  # integer generators, in 1/n units
    while sum(1 for r in rows if r[0] != 0) > 1:  # Euclid on the first coordinates
        rows.sort(key=lambda r: (r[0] == 0, abs(r[0])))
        pivot = rows[0]
        rows = [pivot] + [r - (r[0] // pivot[0]) * pivot if r[0] else r for r in rows[1:]]
    first = next(r for r in rows if r[0] != 0)
    second = math.gcd(*(int(r[1]) for r in rows if r[0] == 0))
    if second == 0:
        return None
    return reduced_basis(first @ basis / n, np.array([0, second]) @ basis / n)


def _holds(shift: np.ndarray, basis: np.ndarray, near_max: np.ndarray, geo: _Geometry,
           level: float) -> bool:
    rows, cols = geo.size
    pos = np.rint(shift + _NEIGHBOURS @ basis + np.array([cols // 2, rows // 2])).astype(np.int64)
    inside = (pos[:, 0] >= 0) & (pos[:, 0] < cols) & (pos[:, 1] >= 0) & (pos[:, 1] < rows)
    pos = pos[inside]
    pos = pos[geo.overlap[pos[:, 1], pos[:, 0]] > _OVERLAP]
    return len(pos) >= 2 and bool(near_max[pos[:, 1], pos[:, 0]].min() >= level)


_NEIGHBOURS = np.array([(1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (1, -1)])


@dataclass(frozen=True)
class _Cues:
    strength: float  # median z at the lattice points
    residual: float | None  # median fit residual, working px (None under three points)
    coverage: float  # share of the image whose copy agrees with the others
    straightness: float | None  # how much of the cell pattern is lines along lattice
    # directions (None: not measured yet, and the score is an upper bound)

    def score(self) -> float:
        """The weakest cue's logistic: each cue must pass on its own. With two lattice points
        only, exactness cannot be judged, and the peaks must be stronger instead."""
        midpoint, width = _STRENGTH
        cues = [_logistic(self.coverage, *_COVERAGE)]
        if self.straightness is not None:
            cues.append(_logistic(-self.straightness, -_STRAIGHTNESS[0], _STRAIGHTNESS[1]))
        if self.residual is None:
            midpoint += _UNJUDGED_EXTRA
        else:
            cues.append(_logistic(-self.residual, -_RESIDUAL[0], _RESIDUAL[1]))
        return min([_logistic(self.strength, midpoint, width), *cues])


def _logistic(value: float, midpoint: float, width: float) -> float:
    return 1.0 / (1.0 + math.exp(-(value - midpoint) / width))


@lru_cache(maxsize=4)
def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs.ravel(), ys.ravel()


class _Fold:
    """An image's pixels mapped onto one lattice cell: each pixel's cell bin and copy."""

    def __init__(self, shape: tuple[int, int], basis: np.ndarray) -> None:
        xs, ys = _pixel_grid(*shape)
        inverse = np.linalg.inv(basis.T).astype(np.float32)
        u = inverse[0, 0] * xs + inverse[0, 1] * ys
        v = inverse[1, 0] * xs + inverse[1, 1] * ys
        self.size = (math.ceil(math.hypot(*basis[1])), math.ceil(math.hypot(*basis[0])))
        rows, cols = self.size
        fu, fv = np.floor(u), np.floor(v)
        u -= fu  # u, v: now their fractional parts
        v -= fv
        u *= cols
        v *= rows
        k1 = np.minimum(u.astype(np.int64), cols - 1)
        k2 = np.minimum(v.astype(np.int64), rows - 1)
        k2 *= cols
        k2 += k1
        self.bins = k2
        self.count = np.bincount(self.bins, minlength=rows * cols)
        self.shape = shape
        cu, cv_ = fu.astype(np.int64), fv.astype(np.int64)
        cu -= cu.min()
        self.copies = (cv_ - cv_.min()) * (cu.max() + 1) + cu

    def _sums(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.bins, values, self.count.size)

    def coverage(self, detail: np.ndarray) -> float:
        """Share of the image (in copies at least a third complete) whose copy correlates
        with the mean of the other copies (judged on every other pixel)."""
        sums = self._sums(detail.ravel().astype(np.float64))
        height, width = self.shape
        every_other = (np.arange(0, height, 2)[:, None] * width
                       + np.arange(0, width, 2)).ravel()  # pixel indices
        x = detail.ravel()[every_other].astype(np.float64)
        bins, copies = self.bins[every_other], self.copies[every_other]
        n = self.count[bins]
        keep = n >= 2
        others = (sums[bins] - x) / np.maximum(n - 1, 1)
        copies, x, others = copies[keep], x[keep], others[keep]
        size = int(self.copies.max()) + 1
        xy = np.bincount(copies, x * others, size)
        xx = np.bincount(copies, x * x, size)
        yy = np.bincount(copies, others * others, size)
        pixels = np.bincount(copies, minlength=size)
        agree = xy > 0.15 * np.sqrt(xx * yy)
        big = pixels >= 0.33 * pixels.max()
        return float(pixels[big & agree].sum() / max(pixels[big].sum(), 1))

    def pattern(self, work: np.ndarray, basis: np.ndarray) -> _Pattern:
        """The cell pattern of the image's local contrast (mean over copies), at the scale of
        strokes and at the scale of filled shapes (a quarter of the shortest period)."""
        image = work.astype(np.float32)
        fine = (image - cv2.GaussianBlur(image, (0, 0), _CONTRAST_SIGMA)).ravel()
        broad = (image - _wide_blur(image, max(_CONTRAST_SIGMA, 0.25 * math.hypot(*basis[0])))
                 ).ravel()
        n = np.maximum(self.count, 1)
        x = fine.astype(np.float64)
        mean = self._sums(x) / n
        spread = np.sqrt(np.maximum(self._sums(x * x) / n - mean**2, 0) / n)
        return _Pattern(_blur_wrapped(mean.reshape(self.size), 0.7), spread.reshape(self.size),
                        (self._sums(np.sign(x)) / n).reshape(self.size),
                        (self._sums(broad.astype(np.float64)) / n).reshape(self.size),
                        self.count.reshape(self.size) > 1)


@dataclass(frozen=True, eq=False)
class _Pattern:
    """One lattice cell's statistics over the copies, as (n2, n1) arrays."""

    mean: np.ndarray  # mean local contrast (lightly smoothed)
    spread: np.ndarray  # its standard error
    sign: np.ndarray  # mean sign of the local contrast, -1..1
    broad: np.ndarray  # mean contrast at the scale of filled shapes
    filled: np.ndarray  # bool: bins with two copies or more

    def mark(self) -> tuple[np.ndarray, int]:
        """The mark's pixels in the cell (uint8 0/255) and its polarity.

        The mark covers less of the cell than what is around it, so it is the skewed side of
        the local contrast (its third moment gives the polarity). A bin belongs to the mark
        when the mean local contrast of its copies stands out (a third of its extreme, twice
        its standard error) with the mark's sign in most copies; specks (under 1 % of the
        mark's area) are noise that survived the mean. The inside of a filled shape has no
        local contrast: an enclosed region joins the mark when it is tinted like the mark's
        strokes at the broad scale (a letter's counter or a ring's hole is not).
        """
        if not self.filled.any():
            return np.zeros(self.mean.shape, np.uint8), 1
        values = self.mean[self.filled]
        polarity = _skew_sign(values - values.mean())  # the mark: the rarer extreme
        signed = self.mean * polarity
        peak = float(np.percentile(signed[self.filled], 99.5))
        strokes = _drop_specks(self.filled & (signed > 0.3 * peak)
                               & (signed > 2 * self.spread) & (self.sign * polarity > 0.6))
        if not strokes.any():
            return strokes, polarity
        tint = self.broad * polarity
        level = 0.5 * float(np.median(tint[strokes > 0]))
        holes = _holes_wrapped(strokes > 0) & (tint > level) & self.filled
        return np.where(holes, 255, strokes).astype(np.uint8), polarity


def _wide_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of a wide ``sigma``, computed at reduced size (it keeps no detail)."""
    factor = max(1, int(sigma // 4))
    height, width = image.shape
    small = cv2.resize(image, (max(1, width // factor), max(1, height // factor)),
                       interpolation=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(small, (0, 0), sigma / factor)
    return cv2.resize(blurred, (width, height), interpolation=cv2.INTER_LINEAR)


def _skew_sign(contrast: np.ndarray) -> int:
    """1 when ``np.mean(contrast**3) >= 0``, else -1. The cube is taken by two products
    (``**3`` calls ``pow`` per element, a hundred times slower); their mean is within a few
    hundred rounding units of the mean of ``**3`` (relative to the mean absolute cube), so
    it gives the same sign unless it is nearly 0, when ``**3`` decides as before."""
    cube = contrast * contrast * contrast
    mean = float(np.mean(cube))
    eps = float(np.finfo(cube.dtype).eps)
    if abs(mean) <= 1e3 * eps * float(np.mean(np.abs(cube))) + 1e-30:
        mean = float(np.mean(contrast**3))
    return 1 if mean >= 0 else -1


def _holes_wrapped(mask: np.ndarray) -> np.ndarray:
    """Regions of a periodic cell enclosed by ``mask`` (on the 3 x 3 tiling, the gaps that
    do not reach its border).

    The tiling is framed by one more gap row and column all round, and one flood fill from
    the frame (4-connected) empties every gap that reaches the border: what is left are the
    enclosed gaps."""
    rows, cols = mask.shape
    gaps = np.ones((3 * rows + 2, 3 * cols + 2), np.uint8)
    gaps[1:-1, 1:-1] = np.tile(~mask, (3, 3))
    cv2.floodFill(gaps, None, (0, 0), 0, flags=4)
    return gaps[1 + rows:1 + 2 * rows, 1 + cols:1 + 2 * cols].astype(bool)


def _straightness(pattern: np.ndarray) -> float:
    """How far the cell pattern is made of lines along a lattice direction: the most it
    keeps under shifts by a quarter and a half of a short lattice vector. Bricks, tiles,
    fences and windows are such lines (and only they are exact enough to get this far);
    a text or a logo shifted by part of its own period no longer matches itself."""
    centred = pattern - pattern.mean()
    energy = float((centred * centred).sum()) + 1e-12
    rows, cols = centred.shape
    kept = []
    for d1, d2 in ((1, 0), (0, 1), (1, 1), (1, -1)):
        shifted = (np.roll(centred, (round(f * d2 * rows), round(f * d1 * cols)), (0, 1))
                   for f in (0.25, 0.5))
        kept.append(min(float((centred * s).sum()) / energy for s in shifted))
    return max(kept)


def _blur_wrapped(cell: np.ndarray, sigma: float) -> np.ndarray:
    pad = math.ceil(3 * sigma)
    wrapped = np.pad(cell.astype(np.float32), pad, mode="wrap")
    return cv2.GaussianBlur(wrapped, (0, 0), sigma)[pad:-pad, pad:-pad]


def _grow_wrapped(cell: np.ndarray, grow: int) -> np.ndarray:
    if grow <= 0:
        return cell
    wrapped = np.pad(cell, grow, mode="wrap")
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    return np.ascontiguousarray(cv2.dilate(wrapped, kernel)[grow:-grow, grow:-grow])


def _drop_specks(mark: np.ndarray, share: float = 0.01) -> np.ndarray:
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mark.astype(np.uint8),
                                                               connectivity=8)
    areas = stats[:, cv2.CC_STAT_AREA].copy()
    areas[0] = 0
    keep = areas >= max(3.0, share * areas.sum())
    keep[0] = False
    return np.where(keep[labels], 255, 0).astype(np.uint8)
