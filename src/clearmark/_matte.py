"""Alpha-matte estimation and blend inversion for semi-transparent marks, from one image.

A visible watermark is blended over the photo: J = a*W + (1 - a)*I per pixel, with W the mark's
colour and a its opacity times its coverage. Where a < 1 the photo I is still there, and
I = (J - a*W) / (1 - a) recovers it far better than any fill can guess it. The hard part is
estimating a and W from the single watermarked image. The model used here:

- The mark is drawn in one or two flat colours (text plus its outline or shadow; an emblem and
  its word). Each colour k has one opacity a_k; a pixel's alpha is a_k times its coverage,
  which is 1 inside the strokes and falls off over the 1-2 px of anti-aliasing at their edges.
- Under the mark the photo is locally smooth at the scale of a stroke, so a membrane fill of the
  mask from its border (``_fill.harmonic_fill``) is a first estimate B of the background.
- D = J - B then points from B towards W. Following that ray out of the RGB cube gives W for
  the usual white, black and saturated marks whatever B is, so a robust median of those exits
  (one per colour, split by k-means when two colours are clearly present) estimates W; an
  estimate near black or white is taken as it (noise bends the rays off the cube's corners).
- Per pixel, the coverage comes from projecting D on W - B; the projection uses the inverse of
  the photo's own texture covariance, measured around the mask, because texture moves mostly
  along the grey axis while a mark over colour also shifts chroma (generalised least squares).
- That per-pixel estimate still carries the texture the mark hides, and inverting with it would
  just erase the texture again. Coverage is therefore snapped: pixels inside a stroke (all 3x3
  neighbours above half the opacity) take the colour's opacity exactly, pixels well outside
  take 0, and only the thin edge band keeps its projection. The opacity itself is the median
  over stroke interiors, averaged with the median step across the strokes' edges (where the
  photo is continuous), so texture averages out.
- Pixels next to the strokes that the palette cannot explain (a shadow in a third colour,
  JPEG damage) are marked ``unexplained`` and filled, never inverted.
- B is then re-estimated from the inverted image (smoothed), which carries the photo's real
  texture instead of the membrane's guess, and the fit is repeated (``iterations``).

Inversion amplifies noise by 1 / (1 - a), and JPEG rings hard around a mark's sharp edges. So
the result is fused per pixel with a fill, weighting each by its expected error (inverse
variance): faint marks come back by inversion, opaque cores are filled, and in between both
contribute (``fuse``). Opaque marks and strokes without an inside are better filled
outright (``invertible`` says which). A mark known from elsewhere, e.g. estimated from a whole
folder as Dekel et al. (CVPR 2017) do, is inverted directly by ``remove_known_mark``.
All functions are pure functions of arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from ._fill import fill, harmonic_fill, texture_level

_K3 = np.ones((3, 3), np.uint8)
_SNAP = 60.0  # grey levels: a colour estimate this close to black or white is taken as it
_TINY = 1e-6
_LEFTOVER_SHARE = 0.3  # of the strokes' median contrast: a leftover this strong may be mark
_LEFTOVER_FLAT = 0.8  # share of strong leftovers whose ray exits must agree on one colour
_LEFTOVER_MIN = 20  # px: fewer strong leftovers than this are left out


@dataclass(frozen=True)
class MatteConfig:
    """Settings of the single-image matte and of the fusion with a fill (frozen, picklable).

    iterations : times the background is re-estimated from the inverted image.
    min_contrast : grey levels a pixel must differ from the background fill by to count as
        evidence of the mark when estimating its colour.
    noise_floor, noise_edge : JPEG noise model, in grey levels: ``noise_floor`` on smooth
        areas plus ``noise_edge`` per grey level of mark contrast within 3 px (ringing).
    alpha_error_interior, alpha_error_band, alpha_error_exterior : expected error of the
        estimated alpha inside strokes, on their anti-aliased edges and just outside them.
    fill_error_floor, fill_error_texture, fill_error_depth : a fill's expected error: this
        floor, plus this multiple of the texture level around the hole, plus this much per px
        of distance from the hole's border (a guess degrades away from what is known).
    opaque : alpha at and above which nothing of the photo is trusted to be left.
    opaque_mark : a mark whose strongest colour is at least this opaque is filled instead.
    min_interior : share of a mark's stroke pixels that must lie inside strokes (not on
        their anti-aliased edges) for the mark to be inverted (see ``invertible``).
    """

    iterations: int = 2
    min_contrast: float = 10.0
    noise_floor: float = 1.5
    noise_edge: float = 0.03
    alpha_error_interior: float = 0.02
    alpha_error_band: float = 0.08
    alpha_error_exterior: float = 0.02
    fill_error_floor: float = 4.0
    fill_error_texture: float = 1.5
    fill_error_depth: float = 1.5
    opaque: float = 0.85
    opaque_mark: float = 0.7
    min_interior: float = 0.3


DEFAULT_MATTE = MatteConfig()


@dataclass(frozen=True, eq=False)
class Matte:
    """A mark's estimated layers over a crop.

    alpha : (H, W) float32 in 0..1. colour : (H, W, 3) float32, 0..255.
    background : (H, W, 3) float32, the smooth photo estimate the fit used.
    interior : (H, W) bool, pixels whose alpha was snapped to their colour's opacity.
    colours, opacities : the palette found, one opacity per colour.
    unexplained : (H, W) bool, pixels near the strokes that differ from the background in a
        way the palette cannot explain (a shadow or outline in a third colour, JPEG damage):
        they are filled, never inverted.
    """

    alpha: np.ndarray
    colour: np.ndarray
    background: np.ndarray
    interior: np.ndarray
    colours: tuple[tuple[float, float, float], ...]
    opacities: tuple[float, ...]
    unexplained: np.ndarray | None = None


def invertible(matte: Matte, config: MatteConfig = DEFAULT_MATTE) -> bool:
    """Whether inverting is worth it: the mark is not opaque, and its strokes have an inside.

    Through JPEG, inverting an opaque mark costs more than it recovers; and strokes that are
    all anti-aliased edge (small text) only have the least certain alpha, where the fill is
    the better guess.
    """
    strongest = max(matte.opacities, default=0.0)
    if strongest <= 0.0 or strongest >= config.opaque_mark:
        return False
    strokes = int((matte.alpha > 0.5 * strongest).sum())
    return strokes > 0 and matte.interior.sum() >= config.min_interior * strokes


def invert_blend(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray,
                 max_alpha: float = 0.98) -> np.ndarray:
    """I = (J - a*W) / (1 - a), with a capped at ``max_alpha`` so the division stays finite.

    image : (H, W, 3); alpha : (H, W); colour : (H, W, 3) or (3,). Returns float32 (H, W, 3),
    not clipped: callers fuse or clip.
    """
    a = np.minimum(alpha.astype(np.float32), max_alpha)[..., None]
    return (image.astype(np.float32) - a * np.asarray(colour, np.float32)) / (1.0 - a)


Palette = tuple[tuple[tuple[float, float, float], ...], tuple[float, ...]]
"""Mark colours and their opacities, as a ``Matte`` reports them."""


def estimate_matte(crop: np.ndarray, hole: np.ndarray, config: MatteConfig = DEFAULT_MATTE,
                   palette: Palette | None = None) -> Matte | None:
    """Estimate the mark's alpha and colour inside ``hole`` (bool (H, W)) of ``crop``.

    crop : (H, W, 3) uint8 or float32 RGB, with some unmarked pixels around the hole.
    palette : colours and opacities to use instead of estimating them here (e.g. agreed by
        the other crops of the same mark); only the coverage is then fitted.
    Returns None when the hole shows no consistent mark (then only a fill makes sense).
    """
    image = crop.astype(np.float32)
    hole = np.asarray(hole, bool)
    if hole.sum() < 4 or hole.all():
        return None
    weights = _texture_precision(image, hole, config.noise_floor)
    background = harmonic_fill(image, hole)
    matte = _fit(image, hole, background, weights, config, palette)
    for _ in range(config.iterations):
        if matte is None or not invertible(matte, config):
            return matte  # refining an opaque or edge-only mark buys nothing: it is filled
        background = _refine_background(image, hole, matte)
        matte = _fit(image, hole, background, weights, config, palette)
    return matte


def agreed_palette(mattes: list[Matte]) -> Palette | None:
    """The colour and opacity most crops of one image agree on, weighted by stroke pixels.

    A tiled mark spans many crops; a few of them (over busy texture, or where the mark is
    barely visible) estimate it badly on their own. When at least half the stroke pixels
    belong to crops whose main colour lies within ``_SNAP`` of the weighted median and whose
    opacity is within a quarter of it, that median is returned for the others to use.
    """
    mains = [_main_colour(m) for m in mattes if m.opacities]
    if len(mains) < 2:
        return None
    colours = np.array([c for c, _, _ in mains], np.float64)
    opacity = np.array([a for _, a, _ in mains])
    weight = np.array([w for _, _, w in mains], np.float64)
    colour = np.array([_weighted_median(colours[:, i], weight) for i in range(3)])
    a0 = _weighted_median(opacity, weight)
    agree = (np.linalg.norm(colours - colour, axis=1) <= _SNAP) & (
        np.abs(opacity - a0) <= 0.25 * a0)
    if a0 <= 0.0 or weight[agree].sum() < 0.5 * weight.sum():
        return None
    return (_rgb(colour),), (float(a0),)


def agrees(matte: Matte, palette: Palette) -> bool:
    """Whether a matte's main colour and opacity match an agreed palette's first entry."""
    if not matte.opacities:
        return False
    colour, a0, _ = _main_colour(matte)
    target, opacity = np.asarray(palette[0][0]), palette[1][0]
    return bool(np.linalg.norm(np.asarray(colour) - target) <= _SNAP
                and abs(a0 - opacity) <= 0.25 * opacity)


def _main_colour(matte: Matte) -> tuple[tuple[float, ...], float, float]:
    """(colour, opacity, stroke pixels) of the matte's most used colour."""
    counts = [float(((matte.colour == np.asarray(c, np.float32)).all(-1)
                     & (matte.alpha > 0)).sum()) for c in matte.colours]
    k = int(np.argmax(counts))
    return matte.colours[k], matte.opacities[k], counts[k]


def _rgb(colour: np.ndarray | tuple[float, ...]) -> tuple[float, float, float]:
    return float(colour[0]), float(colour[1]), float(colour[2])


def _weighted_median(values: np.ndarray, weight: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weight[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def _texture_precision(image: np.ndarray, hole: np.ndarray, floor: float,
                       ring: int = 8) -> np.ndarray:
    """Inverse covariance (3x3) of the photo's fine detail around the hole, plus a noise floor.

    It weights the channels in the projections: directions in which the photo varies a lot
    (usually brightness) say little about the mark; the others say more.
    """
    size = 2 * ring + 1
    around = (cv2.dilate(hole.astype(np.uint8), np.ones((size, size), np.uint8)) > 0) & ~hole
    detail = image - cv2.GaussianBlur(image, (0, 0), 2.0)
    samples = detail[around].astype(np.float64)
    cov = np.zeros((3, 3))
    if len(samples) >= 20:  # einsum, not BLAS: results must not depend on the thread count
        centred = samples - samples.mean(axis=0)
        cov = np.einsum("ni,nj->ij", centred, centred) / (len(samples) - 1)
    return np.asarray(np.linalg.inv(cov + np.eye(3) * floor**2 * 4), np.float32)


def _fit(image: np.ndarray, hole: np.ndarray, background: np.ndarray, precision: np.ndarray,
         config: MatteConfig, given: Palette | None = None) -> Matte | None:
    """One fit of palette, opacities and coverage against a background estimate."""
    diff = image - background
    magnitude = _norm3(diff)
    level = max(config.min_contrast, float(np.median(magnitude[hole])))
    strong = hole & (magnitude > level)
    if strong.sum() < 4 and given is None:
        return None
    palette = [np.asarray(c, np.float32) for c in given[0]] if given else _palette(
        background[strong], diff[strong])
    label, coverage = _assign(diff, background, palette, precision)
    alpha = np.zeros(hole.shape, np.float32)
    interior = np.zeros(hole.shape, bool)
    opacities = []
    for k in range(len(palette)):
        mine = hole & (label == k)
        a0 = given[1][k] if given else _opacity(coverage, mine, strong)
        if not given and a0 > 0.0:
            a0 = _edge_opacity(image, palette[k], mine, coverage, a0, hole)
        opacities.append(a0)
        if a0 <= 0.0:
            continue
        alpha_k, interior_k = _snap(coverage, mine, a0)
        alpha = np.where(mine, alpha_k, alpha)
        interior |= interior_k
    if max(opacities) <= 0.0:
        return None
    colours = np.asarray(palette, np.float32)[label]
    rest = _norm3(diff - coverage[..., None] * (colours - background))
    strokes = cv2.dilate((alpha > 0.5 * max(opacities)).astype(np.uint8), np.ones((7, 7), np.uint8))
    unexplained = hole & (strokes > 0) & (magnitude > level) & (rest > 0.5 * magnitude)
    return Matte(alpha, colours, background, interior,
                 tuple(_rgb(c) for c in palette), tuple(opacities), unexplained)


def marked_pixels(crop: np.ndarray, hole: np.ndarray, matte: Matte, ring: int = 1,
                  config: MatteConfig = DEFAULT_MATTE) -> np.ndarray:
    """The pixels of ``hole`` the mark actually covers, by the matte: a tighter mask.

    A detector's mask is fat: it also answers JPEG's chroma smear and ringing, and photo
    detail between the letters. Rewriting those pixels only loses the photo, so the matte
    decides instead: pixels whose colour moved toward a palette colour (alpha > 0, which
    the snap already confines to the strokes and their anti-aliased edge) or that sit next
    to the strokes unexplained (a shadow or outline in another colour), grown by ``ring``
    px for the anti-aliasing and the worst of the halo. A colour the palette missed (a
    logo's word in a second colour, a shadow too weak for k-means) shows as strong
    leftovers whose ray exits agree on one flat colour; those are kept too. Texture sends
    its rays every way, so it does not pass that test.

    crop : (H, W, 3) uint8 or float32; hole : (H, W) bool, the pixels the matte worked on.
    Returns (H, W) bool, a subset of ``hole``.
    """
    hole = np.asarray(hole, bool)
    image = crop.astype(np.float32)
    strokes = hole & (matte.alpha > 0)
    marked = strokes.copy()
    if matte.unexplained is not None:
        marked |= matte.unexplained & hole
    if strokes.any():
        marked |= _unmodelled(image, hole, marked, strokes, matte, config)
    if ring > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring + 1, 2 * ring + 1))
        marked = cv2.dilate(marked.astype(np.uint8), kernel) > 0
    return marked & hole


def _unmodelled(image: np.ndarray, hole: np.ndarray, marked: np.ndarray, strokes: np.ndarray,
                matte: Matte, config: MatteConfig) -> np.ndarray:
    """Strong pixels away from the marked ones whose ray exits agree on one flat colour:
    a mark colour the palette missed (see ``marked_pixels``). Empty when they disagree."""
    diff = image - matte.background
    magnitude = _norm3(diff)
    contrast = float(np.median(magnitude[strokes]))
    near = cv2.dilate(marked.astype(np.uint8), _K3) > 0
    strong = hole & ~near & (magnitude > max(config.min_contrast, _LEFTOVER_SHARE * contrast))
    found = np.zeros(hole.shape, bool)
    if strong.sum() < _LEFTOVER_MIN:
        return found
    exits = _ray_exits(matte.background[strong], diff[strong])
    agree = _norm3(exits - np.median(exits, axis=0)) <= _SNAP
    if agree.mean() >= _LEFTOVER_FLAT:
        found[strong] = agree
    return found


def _ray_exits(background: np.ndarray, diff: np.ndarray) -> np.ndarray:
    """Where each ray from the background through the observed colour leaves the RGB cube.

    For a mark on the cube's surface (white, black, saturated colours: most marks) that exit
    is the mark's colour itself, whatever the background; the median over pixels is robust.
    """
    up = np.where(diff > 0, diff / np.maximum(255.0 - background, 1e-3), 0.0)
    down = np.where(diff < 0, -diff / np.maximum(background, 1e-3), 0.0)
    reach = np.maximum(up, down).max(axis=-1)
    exits = background + diff / np.maximum(reach, _TINY)[:, None]
    return np.asarray(np.clip(exits, 0.0, 255.0), np.float32)


def _palette(background: np.ndarray, diff: np.ndarray) -> list[np.ndarray]:
    """One or two mark colours: two when k-means splits the ray exits into distinct groups
    of similar strength. Texture darker or brighter than the fill also sends rays to a corner,
    but more weakly than the mark does; a weak second group is left to ``unexplained``."""
    exits = _ray_exits(background, diff)
    single = [_colour(exits)]
    if len(exits) < 40:
        return single
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(12345)  # k-means++ seeding: keep results reproducible
    seeds = np.zeros((len(exits), 1), np.int32)
    _, labels, centres = cv2.kmeans(exits, 2, seeds, criteria, 2, cv2.KMEANS_PP_CENTERS)
    labels = labels.ravel()
    shares = np.bincount(labels, minlength=2) / len(labels)
    strength = [float(np.median(np.linalg.norm(diff[labels == k], axis=1))) for k in range(2)]
    if (np.linalg.norm(centres[0] - centres[1]) > 80.0 and shares.min() > 0.15
            and min(strength) > 0.5 * max(strength)):
        return [_colour(exits[labels == k]) for k in range(2)]
    return single



def _colour(exits: np.ndarray) -> np.ndarray:
    """The median ray exit, taken as black or white when within ``_SNAP`` of them: a ray
    leaves the cube by the face of its nearest channel, so noise pulls a white or black
    mark's exits off the corner along those faces (white over blue sky exits bluish)."""
    colour = np.median(exits, axis=0)
    for corner in (np.zeros(3, np.float32), np.full(3, 255.0, np.float32)):
        if np.linalg.norm(colour - corner) <= _SNAP:
            return corner
    return np.asarray(colour, np.float32)


def _assign(diff: np.ndarray, background: np.ndarray, palette: list[np.ndarray],
            precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the palette colour that explains D best, and the alpha it implies.

    alpha_k = <D, W_k - B>_P / <W_k - B, W_k - B>_P under the texture precision P, clipped at
    0; the colour with the smallest P-weighted residual wins.
    """
    alphas, residuals = [], []
    for colour in palette:
        toward = colour - background
        weighted = _times3(toward, precision)
        alpha = np.maximum(_dot3(weighted, diff) / np.maximum(_dot3(weighted, toward), _TINY),
                           0.0)
        rest = diff - alpha[..., None] * toward
        residuals.append(_dot3(_times3(rest, precision), rest))
        alphas.append(alpha)
    label = np.argmin(np.stack(residuals), axis=0)
    alpha = np.take_along_axis(np.stack(alphas), label[None], axis=0)[0]
    return label, alpha.astype(np.float32)


def _dot3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel dot product over the last axis of length 3: the same sum, in the same order,
    as ``(a * b).sum(-1)``, without numpy's slow reduction over a short axis."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _norm3(a: np.ndarray) -> np.ndarray:
    """Per-pixel length of a vector of 3: ``np.linalg.norm(a, axis=-1)``, faster."""
    return np.sqrt(_dot3(a, a))


def _times3(a: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Per-pixel row vector times a 3x3 matrix (``a @ matrix``), written out channel by
    channel: no BLAS, so the result does not depend on the thread count."""
    return np.stack([a[..., 0] * matrix[0, j] + a[..., 1] * matrix[1, j]
                     + a[..., 2] * matrix[2, j] for j in range(3)], axis=-1)


def _opacity(coverage: np.ndarray, mine: np.ndarray, strong: np.ndarray) -> float:
    """A colour's opacity: the median alpha over its stroke interiors, refined 3 times.

    Starts from the upper part of its strong pixels (edges are lower), then takes the median
    over pixels whose 3x3 neighbourhood is all above half the current value: texture noise is
    symmetric there, so the median does not drift with it.
    """
    values = coverage[mine & strong]
    if len(values) < 4:
        return 0.0
    top = float(np.percentile(values, 95))
    a0 = float(np.median(values[values >= 0.6 * top]))
    for _ in range(3):
        inside = cv2.erode((mine & (coverage > 0.5 * a0)).astype(np.uint8), _K3) > 0
        if inside.sum() < 10:
            break
        a0 = float(np.median(coverage[inside]))
    return min(a0, 1.0)


def _edge_opacity(image: np.ndarray, colour: np.ndarray, mine: np.ndarray,
                  coverage: np.ndarray, a0: float, hole: np.ndarray) -> float:
    """``a0`` averaged with the opacity read from the steps across the strokes' edges.

    A pixel just inside a stroke and the nearest pixel just outside it (within 5 px) see
    nearly the same photo, so J_in - J_out = a0 (W - J_out) up to the texture over a few
    pixels, not the texture over the whole mark that the background fill misses. Averaging
    with the interior estimate scored best on the tuning set (logos +0.6 dB).
    """
    stroke = (hole & (coverage > 0.5 * a0)).astype(np.uint8)
    inside = (cv2.erode(stroke, _K3) > 0) & mine
    outside = cv2.dilate(stroke, np.ones((5, 5), np.uint8)) == 0
    if not outside.any():
        return a0
    depth, nearest = cv2.distanceTransformWithLabels(
        (~outside).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    pick = inside & (depth <= 5.0)
    if pick.sum() < 20:
        return a0
    ys, xs = np.nonzero(outside)
    index = nearest[pick] - 1
    reference = image[ys[index], xs[index]]
    toward = colour - reference
    reach = (toward * toward).sum(-1)
    usable = reach > 400.0
    if usable.sum() < 20:
        return a0
    steps = ((image[pick] - reference) * toward).sum(-1)[usable] / reach[usable]
    edge = float(np.clip(np.median(steps), 0.0, 1.0))
    return 0.5 * (edge + a0)


def _snap(coverage: np.ndarray, mine: np.ndarray, a0: float) -> tuple[np.ndarray, np.ndarray]:
    """Alpha for one colour: a0 inside strokes, 0 well outside, the projection on the edges."""
    stroke = (mine & (coverage > 0.5 * a0)).astype(np.uint8)
    inside = cv2.erode(stroke, _K3) > 0
    outside = cv2.dilate(stroke, _K3) == 0
    alpha = np.clip(coverage, 0.0, a0)
    alpha[inside] = a0
    alpha[outside] = 0.0
    return alpha, inside & mine


def _refine_background(image: np.ndarray, hole: np.ndarray, matte: Matte) -> np.ndarray:
    """A better background: the smoothed inversion where it can be trusted (alpha <= 0.6),
    the previous estimate elsewhere; it carries the photo's texture into the next fit."""
    inverted = invert_blend(image, matte.alpha, matte.colour)
    trusted = matte.alpha <= 0.6
    if matte.unexplained is not None:
        trusted &= ~matte.unexplained
    trusted = trusted[..., None]
    source = np.where(trusted, inverted, matte.background)
    source = np.where(hole[..., None], source, image)
    smooth = cv2.GaussianBlur(source, (0, 0), 1.5)
    return np.where(hole[..., None], smooth, image)


def fuse(crop: np.ndarray, hole: np.ndarray, matte: Matte, method: str = "harmonic",
         config: MatteConfig = DEFAULT_MATTE) -> tuple[np.ndarray, np.ndarray]:
    """Blend inversion and fill per pixel by inverse expected error; return (image, weight).

    The inversion's error grows as 1 / (1 - a) times the JPEG noise (stronger near the mark's
    edges) plus the alpha error times the mark's contrast; the fill's error is the texture
    level around the hole. Pixels where the inversion weighs less than the fill are filled
    again from their confidently inverted neighbours, so the fill continues the recovered
    photo rather than the mask's outer border. ``weight`` is the inversion's share (0..1).
    """
    image = crop.astype(np.float32)
    hole = np.asarray(hole, bool)
    inverted = invert_blend(image, matte.alpha, matte.colour)
    weight = inversion_weight(image, hole, matte, config)
    lost = hole & (weight < 0.5)
    known = np.where((hole & ~lost)[..., None], inverted, image)
    filled = fill(known, lost, method) if lost.any() else known
    out = weight[..., None] * inverted + (1.0 - weight[..., None]) * filled
    return np.where(hole[..., None], out, image), weight


def inversion_weight(image: np.ndarray, hole: np.ndarray, matte: Matte,
                     config: MatteConfig = DEFAULT_MATTE) -> np.ndarray:
    """The inversion's share per pixel: var_fill / (var_inv + var_fill); 0 outside the hole."""
    alpha = matte.alpha
    reach = _norm3(matte.colour - matte.background)
    contrast = alpha * reach
    spread = cv2.dilate(contrast, np.ones((7, 7), np.uint8)) - cv2.erode(
        contrast, np.ones((7, 7), np.uint8))
    noise = config.noise_floor + config.noise_edge * spread
    alpha_error = np.where(matte.interior, config.alpha_error_interior,
                           np.where(alpha > 0, config.alpha_error_band,
                                    config.alpha_error_exterior))
    var_inv = (noise**2 + (alpha_error * reach) ** 2) / np.maximum(1.0 - alpha, 0.02) ** 2
    depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
    fill_error = (config.fill_error_floor + config.fill_error_texture * texture_level(image, hole)
                  + config.fill_error_depth * depth)
    weight = fill_error**2 / (var_inv + fill_error**2)
    weight[alpha >= config.opaque] = 0.0
    if matte.unexplained is not None:
        weight[matte.unexplained] = 0.0
    return np.where(hole, weight, 0.0).astype(np.float32)


def remove_known_mark(rgb: np.ndarray, colour: np.ndarray, alpha: np.ndarray, x: int, y: int,
                      *, method: str = "harmonic",
                      config: MatteConfig = DEFAULT_MATTE) -> np.ndarray:
    """Invert a mark whose colour and alpha are known (e.g. estimated from a whole folder).

    rgb : (H, W, 3) uint8. colour : (h, w, 3) or (3,) in 0..255; alpha : (h, w) in 0..1,
    placed with its top-left at (x, y) (parts outside the image are ignored). Pixels where
    alpha is opaque, or where the inversion is noisier than a fill, are filled. Only pixels
    under the mark (alpha > 0) change; returns a new uint8 array.
    """
    _check_rgb(rgb)
    alpha = np.asarray(alpha, np.float32)
    if alpha.ndim != 2:
        raise ValueError(f"alpha must be (h, w), got shape {alpha.shape}")
    colour = np.broadcast_to(np.asarray(colour, np.float32), (*alpha.shape, 3))
    out = rgb.copy()
    placed = _place(alpha, colour, x, y, rgb.shape[:2])
    if placed is None:
        return out
    window, crop_alpha, crop_colour = placed
    hole = crop_alpha > 0
    crop = rgb[window].astype(np.float32)
    matte = Matte(crop_alpha, crop_colour, harmonic_fill(crop, hole), hole, (), ())
    known = replace(config, alpha_error_interior=0.01, alpha_error_band=0.01)
    fused, _ = fuse(crop, hole, matte, method, known)
    target = out[window]
    target[hole] = np.clip(np.rint(fused[hole]), 0, 255).astype(np.uint8)
    return out


def _place(alpha: np.ndarray, colour: np.ndarray, x: int, y: int, shape: tuple[int, ...],
           pad: int = 8) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
    """The image window around the mark's support (plus ``pad`` px of context, clipped to
    the image) and the mark's alpha and colour laid into it; None when nothing lands."""
    rows, cols = np.nonzero(alpha > 0)
    if not len(rows):
        return None
    y0, y1 = max(y + int(rows.min()), 0), min(y + int(rows.max()) + 1, shape[0])
    x0, x1 = max(x + int(cols.min()), 0), min(x + int(cols.max()) + 1, shape[1])
    if x1 <= x0 or y1 <= y0:
        return None
    top, left = max(y0 - pad, 0), max(x0 - pad, 0)
    window = (slice(top, min(y1 + pad, shape[0])), slice(left, min(x1 + pad, shape[1])))
    size = (window[0].stop - top, window[1].stop - left)
    crop_alpha = np.zeros(size, np.float32)
    crop_colour = np.zeros((*size, 3), np.float32)
    inner = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
    crop_alpha[inner] = np.clip(alpha[y0 - y:y1 - y, x0 - x:x1 - x], 0.0, 1.0)
    crop_colour[inner] = colour[y0 - y:y1 - y, x0 - x:x1 - x]
    return window, crop_alpha, crop_colour


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise TypeError("image must be a uint8 numpy array")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {rgb.shape}")
