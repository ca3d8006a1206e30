"""Tiled marks removed as one mark: a single alpha matte fitted over all of its copies.

A tiled mark (``_tiled``) is one pattern stamped at every point of a lattice. Estimating a
matte per crop, as ``_matte`` does, asks each copy to explain itself from one image: the
photo under a stroke is unknown, so each crop's alpha carries that crop's texture. But the
copies share their alpha exactly, while the photo beneath them differs from copy to copy. So
every pixel is folded onto one lattice cell (its fractional lattice coordinates), and the
alpha at a cell position is fitted over all the copies that land near it; the photo's
texture averages out across copies, as in Dekel et al., "On the Effectiveness of Visible
Watermarks" (CVPR 2017), where it averages out across a folder's photos.

The steps, all on full-resolution arrays and only at the mask's pixels where possible:

1. **Lattice** (``lattice_of_mask``). The mask of a tiled mark is periodic. On a reduced
   copy, the masked normalised cross-correlation of the mask with itself (how much of the
   mask a shift maps onto the mask, in the part of the image both cover) is 1 at every
   lattice vector; the two shortest clear peaks not in line give a basis. Peaks must fall
   off towards zero shift (a shift along a thick band of merged letters never leaves the
   central lobe) and be the highest around (a grown mask's peaks are broad and bumpy).
   Reduced-scale peaks are good to a pixel or so, and that error grows with every copy away
   from the origin, so the basis is refined on the full-size mask: components that match
   another component at a lattice shift give exact observations of integer combinations of
   the basis, and a least-squares fit over all such pairs, far ones included, pins the basis
   to a few hundredths of a pixel.
2. **Fold**. Copies land at every sub-pixel phase, and a stroke's anti-aliased edge rises
   over a pixel, so the cell is binned finely (``bins_per_px``, 3 per pixel): each pixel
   spreads its values onto the four bins around its cell position and reads the cell back
   from the same four, which pools the pixels of all copies within about a third of a pixel
   (a kernel regression; wider kernels blur the edges, finer ones see too few copies).
3. **Fit**. With J = a*W + (1 - a)*I and a guess B for the photo I, J - B = a*(W - B) +
   noise. The first B is a push-pull fill of the mask from its unmasked surroundings. One
   colour W serves the whole mark; each pixel's alpha is the least-squares solution over the
   pixels its pool holds (three channels each), with Cauchy weights so that a copy over a
   strong edge, where the fill is badly wrong, hardly counts; W is then refitted from all
   pixels given their alphas, and both alternate. Where the photo is flat, W and a are not
   separable (only a*(W - B) is seen), but there any pair that explains J inverts to the
   same photo, so the ambiguity does no harm.
4. **Refine**. B is replaced by a lightly smoothed copy of the inverted image, which carries
   the photo's real shading under the strokes, and the fit is repeated (``passes``).
5. **Invert**. I = (J - a*W) / (1 - a) at every mask pixel that repeats in a neighbouring
   copy, clipped to 0..255. Where the mark is nearly opaque (a >= ``opaque``) the photo is
   gone: those pixels take the fill. Mask pixels that do not repeat (a stray blob of another
   detector's mask) are left untouched and reported, for the caller's own path. Pixels
   outside the mask come back bit for bit.

Limits. The guess B is the bottleneck, not the alpha model: on the benchmark's tiled items,
giving the fit the true photo as B scores 39-40 dB where the fill's B scores 35. Synthetic
and real stock marks have few copies on a 1-MP image (5-15), and a pixel's pool holds only
one to three of them, so B's error at a copy leaks into its alpha and comes back, inverted,
as a faint ghost of the photo's texture. For the same reason the result is better on a mask
grown by one pixel than by two (the fill reaches less far). A mark in two colours (text
with a dark outline) is fitted with one colour W, which the alpha then has to absorb. The
synthetic marks of ``bench/synth.py`` are stamped at whole-pixel positions, so a staggered
grid with an odd step is not exactly a lattice (alternate rows are half a pixel off); the
lattice fit splits the difference and the kernel absorbs part of it, at the cost of softer
edges. Where the detector's mask misses part of the mark (a whole letter, a faint rim),
nothing here can remove it: only mask pixels change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ._tiled import reduced_basis

_AC_SIDE = 384  # long side of the reduced mask whose autocorrelation proposes the lattice
_PEAK = 0.6  # share of the mask a lattice shift must map onto the mask (1 = exact repeat)
_NEAR_BEST = 0.8  # and at least this share of the best peak's
_SUPPRESS = 0.15  # a peak must be the highest within this share of its length
_VALLEY = 0.6  # share of its height the autocorrelation must fall to between 0 and a peak
_MIN_OVERLAP = 0.15  # share of the mask that must stay in the image at a shift to judge it
_MIN_VECTOR = 4.0  # px at reduced scale: shorter peaks are the mask's own central lobe
_TOLERANCE = 2.0  # px: a component pair matches a lattice shift within this distance
_MAX_COMPONENTS = 400  # components kept for the refinement (the largest)
_MIN_SINE = 0.1  # basis vectors closer to parallel than this (sine of their angle) are one line


@dataclass(frozen=True)
class LatticeConfig:
    """Settings of ``remove_tiled`` (frozen, picklable).

    bins_per_px : cell bins per pixel along each lattice vector. Copies land at every
        sub-pixel phase, so finer bins keep the strokes' anti-aliased edges sharp; too fine,
        and a bin sees too few copies.
    iterations : alternations of the pooled alpha and the mark's colour, per pass.
    passes : fits in all; every pass after the first re-estimates the photo under the mark
        from the previous pass's inverted image, smoothed by a ``smoothing`` px binomial.
    robust : the Cauchy scale of a pixel's misfit, in units of the median misfit.
    opaque : alpha at and above which the photo is filled instead of inverted.
    min_evidence : the squared contrast (W - B)^2 behind a pixel's alpha (pooled like the
        alpha, in units of 255^2) below which the alpha is not trusted and the pixel is
        filled. Where the photo is as light as the mark, the alpha is unknown but harmless.
    """

    bins_per_px: float = 3.0
    iterations: int = 3
    passes: int = 2
    robust: float = 2.5
    smoothing: int = 3
    opaque: float = 0.85
    min_evidence: float = 0.05


DEFAULT_LATTICE = LatticeConfig()


@dataclass(frozen=True, eq=False)
class Lattice:
    """The lattice a tiled mask repeats on.

    basis : (2, 2) float64, the two shortest lattice vectors as rows (x, y), in pixels.
    strength : the weaker basis vector's normalised autocorrelation peak (1: exact repeat).
    residual : rms misfit of the component pairs the basis was refined on, px (NaN when the
        mask had no separate components to refine on).
    """

    basis: np.ndarray
    strength: float
    residual: float


# ----------------------------------------------------------------------------- the lattice


def lattice_of_mask(mask: np.ndarray) -> Lattice | None:
    """The lattice a tiled mark's mask repeats on, or None when the mask is not periodic.

    mask : (H, W) uint8 or bool, non-zero on the mark.
    """
    binary = _check_mask(mask)
    if binary.sum() < 16 or min(binary.shape) < 16:
        return None
    coarse = _coarse_lattice(binary)
    if coarse is None:
        return None
    basis, strength = coarse
    basis, residual = _refine_on_components(binary, basis)
    reduced = reduced_basis(basis[0].astype(np.float64), basis[1].astype(np.float64),
                            _MIN_SINE)
    return None if reduced is None else Lattice(reduced, strength, residual)


def _coarse_lattice(binary: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The two shortest autocorrelation peaks not in line, at reduced scale, as full-size
    vectors; with the weaker peak's height."""
    height, width = binary.shape
    factor = min(1.0, _AC_SIDE / max(height, width))
    size = (max(8, round(width * factor)), max(8, round(height * factor)))
    small = cv2.resize(binary.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    scale = np.array([width / size[0], height / size[1]])
    ac, usable = _normalised_autocorrelation(small)
    peaks = _suppressed(_peaks(ac, usable))
    if len(peaks):
        peaks = peaks[peaks[:, 2] >= _NEAR_BEST * peaks[:, 2].max()]
    if len(peaks) < 2:
        return None
    lengths = np.hypot(*(peaks[:, :2] * scale).T)
    order = np.argsort(lengths, kind="stable")
    first = peaks[order[0]]
    for k in order[1:]:
        second = peaks[k]
        cross = abs(first[0] * second[1] - first[1] * second[0])
        if cross > 0.25 * math.hypot(*first[:2]) * math.hypot(*second[:2]):
            basis = np.array([first[:2] * scale, second[:2] * scale])
            return basis, float(min(first[2], second[2]))
    return None


def _normalised_autocorrelation(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How much of the mask at a shift lands on the mask, within the part of the image both
    copies cover: sum m(x) m(x + d) / sqrt(sum m(x) * sum m(x + d)) over that overlap, 1 at
    an exact repeat (masked normalised cross-correlation), with shift (dx, dy) at
    [rows // 2 + dy, cols // 2 + dx]; and the shifts where enough of the mask overlaps to
    judge."""
    height, width = image.shape
    rows, cols = cv2.getOptimalDFTSize(2 * height), cv2.getOptimalDFTSize(2 * width)
    padded = np.zeros((rows, cols), np.float32)
    padded[:height, :width] = image
    ones = np.zeros((rows, cols), np.float32)
    ones[:height, :width] = 1.0
    spectrum, window = cv2.dft(padded), cv2.dft(ones)
    ac = _centred_idft(cv2.mulSpectrums(spectrum, spectrum, 0, conjB=True))
    mass = _centred_idft(cv2.mulSpectrums(window, spectrum, 0, conjB=True))  # m under x + d
    mass_back = np.roll(mass[::-1, ::-1], (1 - rows % 2, 1 - cols % 2), (0, 1))  # at -d
    with np.errstate(divide="ignore", invalid="ignore"):
        ncc = ac / np.sqrt(np.maximum(mass * mass_back, 1e-6))
    total = float(image.sum())
    usable = np.minimum(mass, mass_back) > _MIN_OVERLAP * total
    return np.where(usable, ncc, 0.0).astype(np.float32), usable


def _centred_idft(spectrum: np.ndarray) -> np.ndarray:
    out = cv2.idft(spectrum, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)
    return np.roll(out, (out.shape[0] // 2, out.shape[1] // 2), (0, 1))


def _peaks(ac: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """(k, 3) sub-pixel shifts (dx, dy) and heights of the local maxima of ``ac`` at or above
    ``_PEAK``, in one half-plane (the autocorrelation is symmetric)."""
    rows, cols = ac.shape
    dy, dx = np.mgrid[-(rows // 2):rows - rows // 2, -(cols // 2):cols - cols // 2]
    half = (dy > 0) | ((dy == 0) & (dx > 0))
    local_max = ac >= cv2.dilate(ac, np.ones((3, 3), np.uint8))
    keep = (local_max & half & usable & (ac >= _PEAK)
            & (dx * dx + dy * dy >= _MIN_VECTOR**2))
    keep[[0, -1], :] = False
    keep[:, [0, -1]] = False
    ys, xs = np.nonzero(keep)
    apart = _valley(ac, dx[ys, xs], dy[ys, xs]) <= _VALLEY * ac[ys, xs]
    ys, xs = ys[apart], xs[apart]
    ox = _vertex(ac[ys, xs - 1], ac[ys, xs], ac[ys, xs + 1])
    oy = _vertex(ac[ys - 1, xs], ac[ys, xs], ac[ys + 1, xs])
    return np.stack([dx[ys, xs] + ox, dy[ys, xs] + oy, ac[ys, xs]], 1)


def _suppressed(peaks: np.ndarray) -> np.ndarray:
    """The peaks that are the highest within ``_SUPPRESS`` of their length (at least 3 px):
    a grown mask's peaks are broad, with bumps on their shoulders."""
    order = np.argsort(-peaks[:, 2], kind="stable")[:64]
    kept: list[np.ndarray] = []
    for peak in peaks[order]:
        reach = max(3.0, _SUPPRESS * math.hypot(*peak[:2]))
        if all(math.hypot(*(peak[:2] - k[:2])) > reach and math.hypot(*(peak[:2] + k[:2]))
               > reach for k in kept):
            kept.append(peak)
    return np.array(kept).reshape(-1, 3)


def _valley(ac: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """The lowest autocorrelation on the way from zero shift to each shift (dx, dy), between a
    quarter and three quarters of the way. A shift of one copy onto the next passes through
    shifts where little of the mark overlaps; a shift along a thick band of merged letters
    (a grown mask) never leaves the central lobe."""
    rows, cols = ac.shape
    lowest = np.full(dx.shape, np.inf, np.float32)
    for t in np.linspace(0.25, 0.75, 9):
        y = np.clip(np.rint(rows // 2 + t * dy).astype(np.int64), 0, rows - 1)
        x = np.clip(np.rint(cols // 2 + t * dx).astype(np.int64), 0, cols - 1)
        lowest = np.minimum(lowest, ac[y, x])
    return lowest


def _vertex(left: np.ndarray, mid: np.ndarray, right: np.ndarray) -> np.ndarray:
    curve = left - 2 * mid + right
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(curve < 0, 0.5 * (left - right) / curve, 0.0)
    return np.clip(offset, -0.5, 0.5)


def _refine_on_components(binary: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, float]:
    """The basis refitted to the centroids of whole components that repeat at lattice shifts,
    with the fit's rms residual (NaN, and the basis unchanged, when too few pairs match).

    Pairs are admitted in rounds of growing reach: near shifts first (a coarse basis predicts
    them well), then every pair once the basis is good enough to predict far ones.
    """
    centroids, areas = _whole_components(binary)
    if len(centroids) < 2:
        return basis, math.nan
    upper = np.triu_indices(len(centroids), 1)
    shifts = (centroids[None, :, :] - centroids[:, None, :])[upper]
    alike = np.abs(areas[:, None] - areas[None, :])[upper] <= 0.2 * np.maximum(
        areas[:, None], areas[None, :])[upper]
    shifts = shifts[alike]
    residual = math.nan
    for reach, tolerance in ((2, _TOLERANCE), (4, _TOLERANCE), (10**6, _TOLERANCE),
                             (10**6, 0.5 * _TOLERANCE)):
        steps = np.rint(shifts @ np.linalg.inv(basis))
        misfit = np.hypot(*(shifts - steps @ basis).T)
        use = (misfit < tolerance) & (np.abs(steps).max(1) <= reach) & (np.abs(steps).sum(1) > 0)
        if use.sum() < 3 or np.linalg.matrix_rank(steps[use]) < 2:
            return basis, math.nan
        basis = np.linalg.lstsq(steps[use], shifts[use], rcond=None)[0]
        residual = float(np.sqrt(np.mean(np.sum((shifts[use] - steps[use] @ basis) ** 2, 1))))
    return basis, residual


def _whole_components(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroids (k, 2) and areas (k,) of the components that do not touch the image border
    (only whole copies repeat exactly), the largest ``_MAX_COMPONENTS`` of them."""
    _, _, stats, centroids = cv2.connectedComponentsWithStats(
        binary.astype(np.uint8), connectivity=8)
    height, width = binary.shape
    x, y = stats[1:, cv2.CC_STAT_LEFT], stats[1:, cv2.CC_STAT_TOP]
    w, h = stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]
    area = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    whole = (x > 0) & (y > 0) & (x + w < width) & (y + h < height) & (area >= 4)
    order = np.argsort(-area[whole], kind="stable")[:_MAX_COMPONENTS]
    return centroids[1:][whole][order], area[whole][order]


# ----------------------------------------------------------------------------- the fold


@dataclass(frozen=True, eq=False)
class _Fold:
    """The mask's pixels on the lattice cell, in bins of ``1 / bins_per_px`` pixel along each
    lattice vector. Each pixel touches the four bins around its position with bilinear
    weights, both when its values are spread onto the cell and when the cell is read back
    at it, so a pixel's pool gathers the pixels of all copies within about a bin of its
    position (a kernel regression over the copies). Only touched bins are kept, numbered
    compactly."""

    pixels: np.ndarray  # (n,) flat indices of the mask's pixels
    corners: np.ndarray  # (4 n,) compact bin indices around each pixel, corner by corner
    weights: np.ndarray  # (4 n,) float32 bilinear weights of those corners
    bins: int  # bins touched

    @classmethod
    def of(cls, binary: np.ndarray, basis: np.ndarray, bins_per_px: float) -> _Fold:
        pixels = np.flatnonzero(binary)
        ys, xs = np.divmod(pixels, binary.shape[1])
        coords = np.stack([xs, ys], 1).astype(np.float64) @ np.linalg.inv(basis)
        coords -= np.floor(coords)
        sizes = [max(1, math.ceil(math.hypot(*v) * bins_per_px)) for v in basis]
        axes = []
        for k, size in enumerate(sizes):
            position = coords[:, k] * size - 0.5  # bin k's centre is at k + 0.5
            low = np.floor(position)
            weight = (position - low).astype(np.float32)
            first = low.astype(np.int64) % size
            axes.append(((first, (first + 1) % size), (1 - weight, weight)))
        (c1, w1), (c2, w2) = axes
        raw = np.concatenate([b * sizes[0] + a for b in c2 for a in c1])
        weights = np.concatenate([wb * wa for wb in w2 for wa in w1])
        corners, count = _compact(raw, sizes[0] * sizes[1])
        return cls(pixels, corners, weights, count)

    def pool(self, values: np.ndarray) -> np.ndarray:
        """Per pixel, the kernel-weighted sum of ``values`` over the pixels of all copies
        near its cell position (its own included)."""
        spread = np.tile(values.astype(np.float32), 4) * self.weights
        cell = np.bincount(self.corners, spread, self.bins).astype(np.float32)
        return (cell[self.corners] * self.weights).reshape(4, -1).sum(0)


def _compact(raw: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """Bin indices renumbered 0..k-1 over the bins they touch; and k."""
    if size <= 16 * len(raw):  # a lookup table over the cell is cheaper than sorting
        table = np.zeros(size, np.int32)
        table[raw] = 1
        np.cumsum(table, out=table)
        return (table[raw] - 1).astype(np.intp), int(table[-1])
    unique, inverse = np.unique(raw.astype(np.int32) if size < 2**31 else raw,
                                return_inverse=True)
    return inverse.astype(np.intp).ravel(), len(unique)


def _repeats(binary: np.ndarray, pixels: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Per mask pixel, whether the mask holds it in a neighbouring copy too: at one of the six
    nearest lattice shifts (to the nearest pixel) that stays in the image."""
    height, width = binary.shape
    ys, xs = np.divmod(pixels, width)
    found = np.zeros(len(pixels), bool)
    u, v = np.asarray(basis, np.float64)
    for shift in (u, -u, v, -v, u + v, -u - v, u - v, v - u):
        x = xs + round(float(shift[0]))
        y = ys + round(float(shift[1]))
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        hit = np.zeros(len(pixels), bool)
        hit[inside] = binary[y[inside], x[inside]]
        found |= hit
    return found


# ----------------------------------------------------------------------------- removal

UNTOUCHED, INVERTED, FILLED = 0, 1, 2
"""Values of ``remove_tiled``'s method map."""


def remove_tiled(rgb: np.ndarray, mask: np.ndarray, *, lattice: Lattice | None = None,
                 config: LatticeConfig = DEFAULT_LATTICE) -> tuple[np.ndarray, np.ndarray] | None:
    """Remove a tiled mark by one alpha matte fitted over all its copies.

    rgb : (H, W, 3) uint8, the watermarked image.
    mask : (H, W) uint8 or bool, non-zero on the pixels that may change (the detector's mask
        of the tiled mark, grown by a pixel or two).
    lattice : the lattice the mark repeats on; by default ``lattice_of_mask(mask)``.
    Returns (image, method): a new uint8 image, and an (H, W) uint8 map saying what each pixel
    got: ``INVERTED`` (the blend was inverted), ``FILLED`` (opaque or unsure: filled from its
    surroundings) or ``UNTOUCHED`` (outside the mask, or a mask pixel that does not repeat
    across copies: the caller may remove it another way). None when the mask is not
    periodic at all.
    """
    _check_rgb(rgb)
    binary = _check_mask(mask)
    if binary.shape != rgb.shape[:2]:
        raise ValueError(f"mask shape {binary.shape} does not match image {rgb.shape[:2]}")
    method = np.zeros(binary.shape, np.uint8)
    if not binary.any():
        return rgb.copy(), method
    lattice = lattice_of_mask(binary) if lattice is None else lattice
    if lattice is None:
        return None
    fold = _Fold.of(binary, np.asarray(lattice.basis, np.float64), config.bins_per_px)
    observed = rgb.reshape(-1, 3)[fold.pixels].astype(np.float32)
    guess = _background(rgb, binary, fold.pixels)
    fit = _fit(observed, guess, fold, config)
    for _ in range(config.passes - 1):
        inverted = _invert(observed, fit.alpha, fit.colour)
        fit = _fit(observed, _smoothed(rgb, fold.pixels, inverted, config.smoothing), fold,
                   config, fit.colour)
    periodic = _repeats(binary, fold.pixels, lattice.basis)
    lost = periodic & ((fit.alpha >= config.opaque) | (fit.evidence < config.min_evidence))
    inverted = periodic & ~lost
    result = np.where(lost[:, None], guess, _invert(observed, fit.alpha, fit.colour))
    out = rgb.copy()
    write = fold.pixels[periodic]
    out.reshape(-1, 3)[write] = np.clip(np.rint(result[periodic]), 0, 255).astype(np.uint8)
    method.ravel()[fold.pixels[inverted]] = INVERTED
    method.ravel()[fold.pixels[lost]] = FILLED
    return out, method


@dataclass(frozen=True, eq=False)
class _Fit:
    alpha: np.ndarray  # (n,) per pixel, fitted over its pool
    colour: np.ndarray  # (3,) the mark's colour
    evidence: np.ndarray  # (n,) squared contrast (W - B)^2 behind each pixel's alpha, pooled
    # like the alpha (``_Fold.pool``), in units of 255^2


def _fit(observed: np.ndarray, background: np.ndarray, fold: _Fold, config: LatticeConfig,
         colour: np.ndarray | None = None) -> _Fit:
    """Alternate the pooled alpha and the mark's colour ``config.iterations`` times, with
    Cauchy weights on each pixel's misfit."""
    diff = observed - background
    colour = _initial_colour(diff) if colour is None else colour
    robust = np.ones(len(observed), np.float32)
    alpha = np.zeros(len(observed), np.float32)
    den = np.zeros(len(observed), np.float32)
    for _ in range(config.iterations):
        reach = colour[None, :] - background
        num = fold.pool(robust * np.einsum("ij,ij->i", diff, reach))
        den = fold.pool(robust * np.einsum("ij,ij->i", reach, reach))
        alpha = np.clip(num / np.maximum(den, 1e-3), 0.0, 1.0)
        misfit = np.sqrt(np.einsum("ij,ij->i", *(2 * [diff - alpha[:, None] * reach])))
        scale = config.robust * max(float(np.median(misfit)), 1.0)
        robust = 1.0 / (1.0 + (misfit / scale) ** 2)
        colour = _refit_colour(observed, background, alpha, robust, colour)
    evidence = den / 255.0**2
    return _Fit(alpha, colour, evidence)


def _initial_colour(diff: np.ndarray) -> np.ndarray:
    """White for a mark that lightens the photo, black for one that darkens it."""
    lighter = float(np.median(diff.sum(1))) >= 0
    return np.full(3, 255.0 if lighter else 0.0, np.float32)


def _refit_colour(observed: np.ndarray, background: np.ndarray, alpha: np.ndarray,
                  robust: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """The least-squares colour given the alphas: J - (1 - a) B = a W over all pixels."""
    weight = robust * alpha
    den = float(np.sum(weight * alpha))
    if den < 1.0:
        return colour
    target = observed - (1.0 - alpha[:, None]) * background
    fitted = (weight[:, None] * target).sum(0) / den
    return np.clip(fitted, 0.0, 255.0).astype(np.float32)


def _invert(observed: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
    a = np.minimum(alpha, 0.98)[:, None]
    return (observed - a * colour[None, :]) / (1.0 - a)


def _background(rgb: np.ndarray, binary: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """A first guess of the photo at ``pixels`` from the unmasked pixels around them: a
    push-pull pyramid of the known pixels (normalised convolution, coarse to fine), from
    half size down to where the widest stroke closes."""
    known = (~binary).astype(np.uint8)
    values: list[np.ndarray] = [cv2.resize(rgb * known[..., None], _half(binary.shape),
                                           interpolation=cv2.INTER_AREA).astype(np.float32)]
    weights: list[np.ndarray] = [cv2.resize(known * np.uint8(255), _half(binary.shape),
                                            interpolation=cv2.INTER_AREA).astype(np.float32)
                                 / np.float32(255.0)]
    while min(weights[-1].shape) >= 16 and len(weights) < 6:
        values.append(cv2.pyrDown(values[-1]))
        weights.append(cv2.pyrDown(weights[-1]))
    estimate = values[-1] / np.maximum(weights[-1], 1e-6)[..., None]
    for value, weight in zip(values[-2::-1], weights[-2::-1], strict=True):
        coarse = cv2.resize(estimate, value.shape[1::-1], interpolation=cv2.INTER_LINEAR)
        lack = np.maximum(_CONFIDENT - weight, 0.0)
        estimate = (value + lack[..., None] * coarse) / (weight + lack)[..., None]
    ys, xs = np.divmod(pixels, binary.shape[1])
    return _bilinear(estimate, (xs + 0.5) / 2 - 0.5, (ys + 0.5) / 2 - 0.5)


_CONFIDENT = 0.3  # share of known pixels from which a pyramid level's average is used as is


def _half(shape: tuple[int, ...]) -> tuple[int, int]:
    return max(1, (shape[1] + 1) // 2), max(1, (shape[0] + 1) // 2)


def _bilinear(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(n, 3) values of an (h, w, 3) image at (xs, ys), bilinearly, clamped at the border."""
    height, width = image.shape[:2]
    xs = np.clip(xs, 0, width - 1)
    ys = np.clip(ys, 0, height - 1)
    x0 = np.minimum(xs.astype(np.int64), max(width - 2, 0))
    y0 = np.minimum(ys.astype(np.int64), max(height - 2, 0))
    fx = (xs - x0).astype(np.float32)[:, None]
    fy = (ys - y0).astype(np.float32)[:, None]
    dx = np.minimum(x0 + 1, width - 1) - x0
    dy = (np.minimum(y0 + 1, height - 1) - y0) * width
    flat = image.reshape(-1, 3)
    at = y0 * width + x0
    top = flat[at] * (1 - fx) + flat[at + dx] * fx
    bottom = flat[at + dy] * (1 - fx) + flat[at + dy + dx] * fx
    return top * (1 - fy) + bottom * fy


def _smoothed(rgb: np.ndarray, pixels: np.ndarray, values: np.ndarray,
              size: int) -> np.ndarray:
    """The image with ``values`` at ``pixels``, smoothed by a ``size`` x ``size`` binomial,
    at ``pixels`` only (rounded: it is a guess of the photo's shading, not the result)."""
    canvas = rgb.copy()
    canvas.reshape(-1, 3)[pixels] = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    smooth = cv2.GaussianBlur(canvas, (size, size), 0)
    return smooth.reshape(-1, 3)[pixels].astype(np.float32)


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise TypeError("image must be a uint8 numpy array")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {rgb.shape}")


def _check_mask(mask: np.ndarray) -> np.ndarray:
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D array, got shape {getattr(mask, 'shape', None)}")
    return mask > 0
