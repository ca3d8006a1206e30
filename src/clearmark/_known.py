"""A folder's mark as colour and alpha at full resolution, estimated from many of its photos.

One photo's matte (``_matte.estimate_matte``) is fitted over whatever texture lies under the
mark, and errs where that texture does: a stroke over grass gets some of the grass in its
alpha. Across a folder the texture changes from photo to photo while the mark stays the same
(Dekel et al., CVPR 2017), so the per-pixel median of the photos' own mattes keeps the mark
and drops each photo's error. Inverting with that shared matte (``remove_known_mark``) then
recovers every photo of the folder about as well as the true colour and alpha would.

The photos are aligned first: the folder's mark is matched at working scale (``_folder``),
which places it to within a working pixel, and each crop is moved at full resolution to
where its gradient magnitudes best fit the median of all the crops' (the mark's edges are the
one thing all the photos share there). Where the mark has two colours side by side, the
median of single-image mattes errs alike in every photo, and a regression over the photos
takes over (``_colour_seams``, ``_regressed``).

In each photo to clean, the matte is placed to the pixel (``place``) and its inversion is
kept only if it takes the mark's edges out rather than printing them in (``explains``). A
matte fits photos of the size it was estimated at; others are left to the single-image
remover. Everything here is a pure function of arrays.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from ._fill import harmonic_fill
from ._folder import FolderMatte, Match, SharedMark, _gradients, _placed_mask
from ._matte import Matte, estimate_matte

MIN_PHOTOS = 6  # fewer single-image mattes than this do not out-vote one photo's texture
MAX_PHOTOS = 16  # the median needs no more; each costs a full decode and a matte
_PAD = 8  # px of photo around the mark in each crop: the single-image matte's context
_HOLE_GROW = 2  # px the mark's working-scale mask is grown by at full scale (as detection does)
_FAINT = 0.02  # alpha below this is the median of noise, not of the mark: left at 0
_COLOURED = 0.05  # alpha above which a photo's matte says something about the colour
_FILLED_SHARE = 0.5  # pixels most photos cannot explain by the palette (a shadow, an outline)


def estimate_folder_matte(photos: Iterable[tuple[np.ndarray, Match]],
                          mark: SharedMark) -> FolderMatte | None:
    """The folder mark's colour and alpha from full-resolution photos that carry it (each
    with its working-scale match), or None when fewer than ``MIN_PHOTOS`` of the first
    size give a matte. At most ``MAX_PHOTOS`` are used; photos of another size are skipped."""
    crops: list[np.ndarray] = []
    frame: _Frame | None = None
    for rgb, match in photos:
        if len(crops) >= MAX_PHOTOS:
            break
        if frame is None:
            frame = _Frame.of(mark, rgb.shape[1], rgb.shape[0])
        if rgb.shape[1::-1] != frame.size:
            continue
        crop = frame.aligned_crop(rgb, match)
        if crop is not None:
            crops.append(crop)
    if frame is None or len(crops) < MIN_PHOTOS:
        return None
    reference = np.median(np.stack([_edges(crop) for crop in crops]), axis=0)
    crops = [frame.refined(crop, reference) for crop in crops]
    mattes = [m for m in (estimate_matte(crop[frame.inner], frame.hole) for crop in crops)
              if m is not None]
    if len(mattes) < MIN_PHOTOS:
        return None
    alpha = np.median(np.stack([m.alpha for m in mattes]), axis=0).astype(np.float32)
    alpha[alpha < _FAINT] = 0.0
    colour = _median_colour(mattes)
    unexplained = np.mean([m.unexplained if m.unexplained is not None
                           else np.zeros_like(frame.hole) for m in mattes], axis=0)
    alpha[unexplained >= _FILLED_SHARE] = 1.0
    seams = _colour_seams(alpha, colour)
    if seams.any():
        regressed_alpha, regressed_colour = _regressed([c[frame.inner] for c in crops],
                                                       frame.hole)
        alpha[seams] = regressed_alpha[seams]
        colour[seams] = regressed_colour[seams]
    return FolderMatte(colour, alpha, frame.x, frame.y, frame.size, len(mattes))


def _colour_seams(alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """(h, w) bool: the mark's pixels within a pixel of a seam between two of its colours
    (white letters in a black outline). A single-image matte gives each pixel one of the
    mark's colours, so it gets the pixels on such a seam, which blend both, wrong in every
    photo alike, and the median keeps the error."""
    shown = alpha > _COLOURED
    if not shown.any():
        return np.zeros(alpha.shape, bool)
    # pixels without the mark's colour take values no colour has, so a neighbourhood that
    # holds one spreads far past 255 and is not counted
    high = np.where(shown[..., None], colour, -_NO_COLOUR).astype(np.float32)
    low = np.where(shown[..., None], colour, _NO_COLOUR).astype(np.float32)
    spread = (cv2.dilate(high, _K3) - cv2.erode(low, _K3)).max(axis=2)
    seams = (spread > _SEAM_CONTRAST) & (spread <= 255.0) & (alpha > 0)
    return np.asarray(cv2.dilate(seams.astype(np.uint8), _K3)) > 0


_SEAM_CONTRAST = 100.0  # grey levels between two neighbouring colours of one mark
_NO_COLOUR = 1e4


def _regressed(crops: list[np.ndarray], hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Alpha and colour per pixel from the photos jointly, with no model of the mark's
    colours: at each pixel J_k = a * W + (1 - a) * I_k over the photos k, and the photo
    I_k is estimated by a membrane fill of the hole from around it (``harmonic_fill``).
    What the fill misses (the photo's texture) does not depend on the fill, so the slope of
    J on the fill across photos is 1 - a without bias; it is noisier than the median of the
    single-image mattes, so it is used only where those are wrong (``_colour_seams``)."""
    photos = np.stack([crop.astype(np.float32) for crop in crops])  # (k, h, w, 3)
    fills = np.stack([harmonic_fill(crop, hole) for crop in photos])
    mean_photo, mean_fill = photos.mean(axis=0), fills.mean(axis=0)
    photos -= mean_photo
    fills -= mean_fill
    slope = (photos * fills).sum(axis=(0, 3)) / np.maximum((fills * fills).sum(axis=(0, 3)),
                                                            1e-6)
    alpha = np.clip(1.0 - slope, 0.0, 1.0).astype(np.float32)
    alpha[~hole | (alpha < _FAINT)] = 0.0
    blend = mean_photo - slope[..., None] * mean_fill  # a * W
    colour = np.clip(blend / np.maximum(alpha[..., None], _FAINT), 0.0, 255.0)
    return alpha, colour.astype(np.float32)


def place(matte: FolderMatte, rgb: np.ndarray, match: Match,
          mark: SharedMark) -> tuple[int, int] | None:
    """Top-left of ``matte`` in this image given its working-scale match, refined to the
    full-resolution pixel; None when the image is not of the matte's size.

    The working-scale match leaves up to a working pixel (``reach`` full pixels) open. Of the
    placements within it, the one whose quick inversion leaves the least edge along the
    mark's edges wins: inverting at the right place removes the mark's edges, one pixel off
    it prints them twice. (Correlating edges instead let a textured photo pull thin text a
    pixel or two off.)"""
    width, height = rgb.shape[1], rgb.shape[0]
    if (width, height) != matte.size:
        return None
    scale = width / mark.shape[1]
    reach = math.ceil(scale)
    x = matte.x + round(match.dx * scale)
    y = matte.y + round(match.dy * scale)
    h, w = matte.alpha.shape
    if x - reach < 0 or y - reach < 0 or x + w + reach > width or y + h + reach > height:
        return x, y  # at the border: the match's place
    band = np.flatnonzero(cv2.dilate((_edges(matte.alpha * 255.0) > _EDGE).astype(np.uint8),
                                     _K3))
    if not band.size:
        return x, y
    # on gray: the inversion is per pixel and linear, so it commutes with the channel mean
    window = rgb[y - reach:y + h + reach, x - reach:x + w + reach].mean(axis=2,
                                                                       dtype=np.float32)
    alpha = np.minimum(matte.alpha, _QUICK_OPAQUE)
    mark_part = alpha * matte.colour.mean(axis=2)
    gain = 1.0 / (1.0 - alpha)
    best, where = math.inf, (x, y)
    for dy in range(2 * reach + 1):
        for dx in range(2 * reach + 1):
            photo = (window[dy:dy + h, dx:dx + w] - mark_part) * gain
            gx, gy = _gradients(photo)
            left = float(np.hypot(gx.ravel()[band], gy.ravel()[band]).mean())
            if left < best:
                best, where = left, (x - reach + dx, y - reach + dy)
    return where


_QUICK_OPAQUE = 0.8  # the quick inversion of ``place`` caps alpha here (1 / (1 - a) <= 5)
_EDGE = 8.0  # a step of 8 / 255 in alpha across 3 px: the mark's edges
_K3 = np.ones((3, 3), np.uint8)


@dataclass(frozen=True)
class _Frame:
    """Where the mark's crop sits in images of one size, and its hole (the grown mask)."""

    x: int  # top-left of the crop (mark box plus _PAD) at a match of (0, 0)
    y: int
    width: int
    height: int
    reach: int  # px a crop may still be off after the working-scale match
    scale: float  # full pixels per working pixel
    size: tuple[int, int]
    hole: np.ndarray  # (height, width) bool

    @classmethod
    def of(cls, mark: SharedMark, width: int, height: int) -> _Frame:
        scale = width / mark.shape[1]
        bx, by, bw, bh = mark.box
        x, y = max(0, math.floor(bx * scale) - _PAD), max(0, math.floor(by * scale) - _PAD)
        w = min(width, math.ceil((bx + bw) * scale) + _PAD) - x
        h = min(height, math.ceil((by + bh) * scale) + _PAD) - y
        hole = _placed_mask(mark.mask, bx * scale - x, by * scale - y, bw * scale, bh * scale,
                            w, h, _HOLE_GROW) > 0
        return cls(x, y, w, h, math.ceil(scale), scale, (width, height), hole)

    @property
    def inner(self) -> tuple[slice, slice]:
        """The crop itself inside an aligned crop (which keeps ``reach`` px around it)."""
        return (slice(self.reach, self.reach + self.height),
                slice(self.reach, self.reach + self.width))

    def aligned_crop(self, rgb: np.ndarray, match: Match) -> np.ndarray | None:
        """The crop at the matched place with ``reach`` px more on each side (mirrored where
        that passes the image's border), or None when the match moved it off the image."""
        dx, dy = round(match.dx * self.scale), round(match.dy * self.scale)
        x0, y0 = self.x + dx - self.reach, self.y + dy - self.reach
        x1, y1 = x0 + self.width + 2 * self.reach, y0 + self.height + 2 * self.reach
        height, width = rgb.shape[:2]
        inside = rgb[max(0, y0):min(height, y1), max(0, x0):min(width, x1)]
        if inside.shape[0] <= (y1 - y0) // 2 or inside.shape[1] <= (x1 - x0) // 2:
            return None
        return cv2.copyMakeBorder(inside, max(0, -y0), max(0, y1 - height), max(0, -x0),
                                  max(0, x1 - width), cv2.BORDER_REFLECT_101)

    def refined(self, crop: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """The crop shifted by up to ``reach`` px so its edges best fit ``reference`` (the
        median of all crops' edges), with the margin it keeps for that."""
        core = reference[self.inner]
        dx, dy = _best_shift(_edges(crop), core)
        shifted = np.zeros_like(crop)
        shifted[self.inner] = crop[dy:dy + self.height, dx:dx + self.width]
        return shifted


def _edges(image: np.ndarray) -> np.ndarray:
    """Gradient magnitude of the gray image, float32."""
    gray = image.astype(np.float32)
    if gray.ndim == 3:
        gray = gray.mean(axis=2)
    return np.hypot(*_gradients(gray))  # not cv2.magnitude: its last bit follows alignment


def _best_shift(window: np.ndarray, template: np.ndarray) -> tuple[int, int]:
    """(dx, dy): where ``template`` fits ``window`` best (normalised, mean removed)."""
    if not template.any():  # nothing to align by: stay in the middle
        return (window.shape[1] - template.shape[1]) // 2, \
            (window.shape[0] - template.shape[0]) // 2
    scores = cv2.matchTemplate(window, template.astype(np.float32), cv2.TM_CCOEFF_NORMED)
    scores = np.nan_to_num(scores, nan=-1.0)
    iy, ix = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(ix), int(iy)


def _median_colour(mattes: list[Matte]) -> np.ndarray:
    """Per pixel, the median colour of the photos whose matte puts some mark there; the
    median over all of them where none does."""
    colours = np.stack([m.colour for m in mattes]).astype(np.float32)  # (k, h, w, 3)
    said = np.stack([m.alpha > _COLOURED for m in mattes])  # (k, h, w)
    colour = np.median(colours, axis=0)
    some = said.any(axis=0)
    if some.any():
        picked = np.where(said[:, some, None], colours[:, some], np.nan)  # (k, n, 3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-nan columns cannot occur
            colour[some] = np.nanmedian(picked, axis=0)
    return colour.astype(np.float32)


def _on_image(matte: FolderMatte, x: int, y: int, shape: tuple[int, ...]
              ) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """The window of an image of ``shape`` that a matte placed at (x, y) covers, and the
    matte's alpha cut to it; None when it lies outside the image."""
    h, w = matte.alpha.shape
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(shape[1], x + w), min(shape[0], y + h)
    if x1 <= x0 or y1 <= y0:
        return None
    return (slice(y0, y1), slice(x0, x1)), matte.alpha[y0 - y:y1 - y, x0 - x:x1 - x]


def support(matte: FolderMatte, x: int, y: int, shape: tuple[int, int],
            grow: int = 0) -> np.ndarray:
    """(H, W) bool: the pixels a matte placed at (x, y) rewrites, grown by ``grow`` px."""
    canvas = np.zeros(shape, np.uint8)
    placed = _on_image(matte, x, y, shape)
    if placed is not None:
        window, alpha = placed
        canvas[window] = alpha > 0
    if grow:
        return np.asarray(cv2.dilate(canvas, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))) > 0
    return canvas > 0


def explains(matte: FolderMatte, x: int, y: int, before: np.ndarray,
             after: np.ndarray) -> bool:
    """Whether inverting the matte at (x, y) took a mark out of ``before`` (giving
    ``after``) rather than printing its negative into a photo that did not carry it: along
    the mark's edges, the photo's gradients must not come out clearly stronger (``_GHOST``).

    A folder's photos that match its mark carry it, nearly always; one that matched by
    chance (a photo from elsewhere with an edge in the right place) would get a ghost of the
    mark, which the single-image remover, judging the photo itself, would not print."""
    placed = _on_image(matte, x, y, before.shape)
    if placed is None:
        return False
    window, alpha = placed
    edges = _edges(alpha * 255.0) > _EDGE  # where the mark has edges
    if not edges.any():
        return True  # a flat mark has no edges to judge by; the match placed it
    left = float(_edges(after[window])[edges].mean())
    return left < _GHOST * float(_edges(before[window])[edges].mean())


# Inverting amplifies a photo's noise by 1 / (1 - alpha), so where a mark barely showed (black
# text over a dark photo) its edges can come out a few per cent stronger though the mark is
# gone; a mark's negative printed into a photo without it raised them 1.4-13x in tests.
_GHOST = 1.15
