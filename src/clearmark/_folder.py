"""Folder evidence: a mark shared by many photos shows in the median of their gradients.

When one site or camera app stamps many different photos with the same mark at the same
relative place, the per-pixel median of the images' gradients keeps the mark's edges and
cancels the photos' own content (Dekel et al., "On the Effectiveness of Visible Watermarks",
CVPR 2017). We estimate that median gradient field on a small working copy of a sample of a
group's images (so memory stays flat however large the folder), cut the mark out of it, and
then look for it in each image by normalised correlation of gradients, allowing a small shift.

Everything here is a pure function of arrays; ``SharedMark`` is a small frozen value that
pickles to workers and saves to / loads from an ``.npz`` file.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

import cv2
import numpy as np

from ._regions import Region

WORKING_WIDTH = 512  # images of a group are compared at this width
MIN_IMAGES = 8  # fewer photos than this cannot separate a mark from chance agreement
MAX_SAMPLE = 32  # the median needs no more; memory stays flat for any folder size
MATCHED = 0.3  # gradient correlation at which a photo carries a folder's mark: detection
# scores it 0.5 (shared marks score 0.3-0.8, other photos below 0.2 on bench/'s folders)


@dataclass(frozen=True, eq=False)
class FolderMatte:
    """A mark's colour and alpha at full resolution, for images of one size.

    colour : (h, w, 3) float32, 0..255. alpha : (h, w) float32, 0..1; 1 where the photos'
        mattes could not explain the pixels (a shadow or outline: filled, never inverted).
    x, y : top-left of the arrays in a ``size`` image whose mark sits where the folder's
        does (a working-scale match of (0, 0)).
    size : (width, height) of the images it was estimated from (the only ones it fits).
    support : how many photos' mattes went into the median.
    """

    colour: np.ndarray
    alpha: np.ndarray
    x: int
    y: int
    size: tuple[int, int]
    support: int


@dataclass(frozen=True, eq=False)
class SharedMark:
    """A mark estimated from a group of same-aspect images, at working scale (and, for
    removal, maybe its matte at full scale).

    gx, gy : (h, w) float32 median gradients of the mark's box.
    mask : (h, w) uint8 0/255, the mark's pixels in that box.
    box : (x, y, w, h) of the box in working pixels of a ``shape`` image.
    shape : (height, width) of the working image the box refers to.
    support : how many images the estimate came from.
    """

    gx: np.ndarray
    gy: np.ndarray
    mask: np.ndarray
    box: tuple[int, int, int, int]
    shape: tuple[int, int]
    support: int
    matte: FolderMatte | None = None  # its colour and alpha at full size (``_known``)

    @property
    def aspect(self) -> float:
        """Width over height of the images it was learned from (it fits only those)."""
        return self.shape[1] / self.shape[0]

    def save(self, path: str | os.PathLike[str] | BinaryIO) -> None:
        arrays: dict[str, Any] = {
            "gx": self.gx, "gy": self.gy, "mask": self.mask, "box": np.array(self.box),
            "shape": np.array(self.shape), "support": np.array(self.support)}
        if self.matte is not None:
            arrays |= {"matte_colour": self.matte.colour, "matte_alpha": self.matte.alpha,
                       "matte_place": np.array([self.matte.x, self.matte.y, *self.matte.size,
                                                self.matte.support])}
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SharedMark:
        with np.load(path) as data:
            matte = None
            if "matte_alpha" in data:
                x, y, width, height, support = (int(v) for v in data["matte_place"])
                matte = FolderMatte(data["matte_colour"], data["matte_alpha"], x, y,
                                    (width, height), support)
            return cls(data["gx"], data["gy"], data["mask"],
                       tuple(int(v) for v in data["box"]),  # type: ignore[arg-type]
                       tuple(int(v) for v in data["shape"]),  # type: ignore[arg-type]
                       int(data["support"]), matte)


def working_gray(rgb: np.ndarray) -> np.ndarray:
    """The image as gray float32 at ``WORKING_WIDTH`` (aspect kept)."""
    height, width = rgb.shape[:2]
    size = (WORKING_WIDTH, max(1, round(height * WORKING_WIDTH / width)))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(np.float32)


def _gradients(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3),
            cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3))


def estimate_shared_mark(grays: Iterable[np.ndarray]) -> SharedMark | None:
    """Estimate the mark shared by working-scale gray images of one group, or None.

    grays : (h, w) float32 images of one shape (see ``working_gray``); at most
    ``MAX_SAMPLE`` are used.
    """
    sample = [g for _, g in zip(range(MAX_SAMPLE), grays, strict=False)]
    if len(sample) < MIN_IMAGES or len({g.shape for g in sample}) != 1:
        return None
    stack_x = np.empty((len(sample), *sample[0].shape), np.float32)
    stack_y = np.empty_like(stack_x)
    for gray, gx, gy in zip(sample, stack_x, stack_y, strict=True):
        cv2.Sobel(gray, cv2.CV_32F, 1, 0, dst=gx, ksize=3)  # straight into the stacks
        cv2.Sobel(gray, cv2.CV_32F, 0, 1, dst=gy, ksize=3)
    gx, gy = _median(stack_x), _median(stack_y)
    mask = _mark_mask(np.hypot(gx, gy), stack_x, stack_y)
    if mask is None:
        return None
    x, y, w, h = cv2.boundingRect(mask)
    crop = (slice(y, y + h), slice(x, x + w))
    if _split_agreement(stack_x[:, y:y + h, x:x + w], stack_y[:, y:y + h, x:x + w],
                        mask[crop]) < SPLIT_AGREEMENT:
        return None
    return SharedMark(gx[crop].copy(), gy[crop].copy(), mask[crop].copy(), (x, y, w, h),
                      sample[0].shape, len(sample))


_CHUNK = 32768  # pixels the median network works on at a time: its rows stay in cache


def _median(stack: np.ndarray) -> np.ndarray:
    """``np.median(stack, axis=0)``, the same values several times faster.

    A selection network (``_median_network``) of elementwise minima and maxima over whole
    rows of pixels, a cache-sized chunk of pixels at a time: no per-pixel sort, and no
    transposed copy of the stack.
    """
    count = stack.shape[0]
    flat = stack.reshape(count, -1)
    size = flat.shape[1]
    low, high = np.empty(size, stack.dtype), np.empty(size, stack.dtype)
    network, (lo, hi) = _median_network(count)
    buffer = np.empty((count + 1, min(size, _CHUNK)), stack.dtype)
    for start in range(0, size, _CHUNK):
        stop = min(size, start + _CHUNK)
        block = buffer[:, :stop - start]
        block[:count] = flat[:, start:stop]
        rows = list(block)
        spare = rows.pop()
        for a, b in network:  # min into row a, max into row b; a's old row becomes spare
            np.minimum(rows[a], rows[b], out=spare)
            np.maximum(rows[a], rows[b], out=rows[b])
            rows[a], spare = spare, rows[a]
        low[start:stop], high[start:stop] = rows[lo], rows[hi]
    middle = (low + high) / 2
    return middle.reshape(stack.shape[1:]).astype(stack.dtype, copy=False)


@functools.cache
def _median_network(count: int) -> tuple[tuple[tuple[int, int], ...], tuple[int, int]]:
    """Comparators (min into the first row, max into the second) that bring the two middle
    values of ``count`` rows into known rows, and those rows (low middle, high middle).

    Batcher's odd-even merge sort for the next power of two, with the missing rows taken as
    +inf (a comparator with one is a no-op or a relabelling), cut to the comparators the
    middle values depend on.
    """
    size = 1 << max(0, count - 1).bit_length()
    row = list(range(size))  # the row holding each wire's value; rows >= count are +inf
    kept = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(j, j + min(k, size - j - k)):
                    if i // (2 * p) != (i + k) // (2 * p):
                        continue
                    a, b = row[i], row[i + k]
                    if a >= count:
                        row[i], row[i + k] = b, a
                    elif b < count:
                        kept.append((a, b))
            k //= 2
        p *= 2
    middle = (row[(count - 1) // 2], row[count // 2])
    needed, network = set(middle), []
    for a, b in reversed(kept):
        if a in needed or b in needed:
            network.append((a, b))
            needed |= {a, b}
    return tuple(reversed(network)), middle


SPLIT_AGREEMENT = 0.7  # real marks 0.92-0.99 on bench/'s folders; chance agreement of a
# dozen unrelated photos of one size 0.23-0.44


def _split_agreement(stack_x: np.ndarray, stack_y: np.ndarray, mask: np.ndarray) -> float:
    """Correlation, over the mark's pixels, of the median gradients of the sample's two halves
    (stack_x, stack_y : (images, h, w) gradients of the mark's box).

    A mark is in every image, so each half's median shows it; where unrelated photos agreed by
    chance (a dozen photos of one size always agree somewhere), each half agrees with
    itself only, and the halves do not agree with each other.
    """
    support = mask > 0
    halves = []
    for part in (slice(0, None, 2), slice(1, None, 2)):
        hx = _median(stack_x[part])[support]
        hy = _median(stack_y[part])[support]
        halves.append(np.concatenate([hx, hy]))
    a, b = halves
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norm if norm > 0 else 0.0


def _mark_mask(magnitude: np.ndarray, stack_x: np.ndarray,
               stack_y: np.ndarray) -> np.ndarray | None:
    """Pixels of consistent edges, closed and filled into shapes; None when nothing stands out.

    Unrelated photos' gradients at a pixel have random directions, so their median is small
    next to the typical gradient there (the median of the gradients' lengths); a mark's edges
    keep one direction in every photo, so the median is about as strong as the typical
    gradient. The typical gradient is needed only where the median is strong.
    """
    threshold = max(6.0, 8.0 * float(np.median(magnitude)))
    strong = np.flatnonzero(magnitude > threshold)
    lengths = np.hypot(stack_x.reshape(len(stack_x), -1)[:, strong],
                       stack_y.reshape(len(stack_y), -1)[:, strong])
    consistent = magnitude.ravel()[strong] > 0.6 * np.median(lengths, axis=0)
    edges = np.zeros(magnitude.shape, np.uint8)
    edges.ravel()[strong[consistent]] = 1
    edges[:2], edges[-2:], edges[:, :2], edges[:, -2:] = 0, 0, 0, 0  # frames are not marks
    if edges.sum() < 30:
        return None
    closed = cv2.morphologyEx(edges, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    kept = np.zeros(count, np.uint8)  # per label: one pass over the labels, not one each
    for i in range(1, count):
        _, _, w, h, area = stats[i]
        long_line = max(w, h) > 0.6 * max(closed.shape) and min(w, h) <= 4
        if area >= 20 and not long_line:
            kept[i] = 1
    if not kept.any():
        return None
    keep = _one_cluster(kept, stats)[labels]
    return _fill_holes(keep) * 255


def _one_cluster(kept: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """``kept`` (per component label) cut to the mark: the largest component and the kept
    ones near it, gathered outward. A site stamps one mark in one place; a speck of chance
    agreement elsewhere in the frame (a few photos of one folder can share a bright spot)
    would otherwise stretch the mark's box across the image, and every image would have that
    speck's place rewritten."""
    labels = [int(i) for i in np.flatnonzero(kept)]
    largest = max(labels, key=lambda i: int(stats[i, cv2.CC_STAT_AREA]))
    x0, y0, w, h = (int(v) for v in stats[largest, :4])
    x1, y1 = x0 + w, y0 + h
    todo = set(labels) - {largest}
    out = np.zeros_like(kept)
    out[largest] = 1
    grown = True
    while grown and todo:
        grown = False
        reach = max(_REACH_MIN, _REACH * max(x1 - x0, y1 - y0))
        for i in sorted(todo):
            cx0, cy0, cw, ch = (int(v) for v in stats[i, :4])
            gap = max(cx0 - x1, x0 - (cx0 + cw), cy0 - y1, y0 - (cy0 + ch), 0)
            if gap <= reach:
                out[i] = 1
                todo.discard(i)
                x0, y0 = min(x0, cx0), min(y0, cy0)
                x1, y1 = max(x1, cx0 + cw), max(y1, cy0 + ch)
                grown = True
    return out


_REACH = 0.25  # a part of the mark lies within this share of the mark's longer side ...
_REACH_MIN = 16  # ... or this many working pixels of the rest (a logo beside its text)


def _fill_holes(binary: np.ndarray) -> np.ndarray:
    """A logo's outline becomes its area: a semi-transparent mark tints all of its inside."""
    padded = np.pad(binary, 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    holes = (flood == 0)[1:-1, 1:-1]
    return (binary | holes).astype(np.uint8)


@dataclass(frozen=True)
class Match:
    """Where a shared mark was found in one image (working pixels) and how well it fitted."""

    score: float  # normalised gradient correlation, -1..1
    dx: int
    dy: int


def match_shared_mark(gray: np.ndarray, mark: SharedMark, search: int = 6) -> Match:
    """Best normalised correlation of the image's gradients with the mark's, over shifts of up
    to ``search`` working pixels around the mark's usual place.

    Only the mark's own pixels (grown a little) take part: the rest of its box carries the
    photos' leftover noise, which would let unrelated images match by chance.
    """
    x, y, w, h = mark.box
    height, width = gray.shape
    x0, y0 = max(0, x - search), max(0, y - search)
    x1, y1 = min(width, x + w + search), min(height, y + h + search)
    if x1 - x0 < w or y1 - y0 < h:
        return Match(0.0, 0, 0)
    support = cv2.dilate(mark.mask, np.ones((5, 5), np.uint8)).astype(np.float32) / 255.0
    tx, ty = mark.gx * support, mark.gy * support
    wx, wy = _window_gradients(gray, x0, y0, x1, y1)
    scores = _correlate(wx, tx) + _correlate(wy, ty)
    energy = _correlate(wx * wx + wy * wy, support)
    norm = math.sqrt(float((tx * tx).sum() + (ty * ty).sum()))
    ncc = scores / np.maximum(np.sqrt(np.maximum(energy, 0)) * norm, 1e-6)
    iy, ix = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
    return Match(float(ncc[iy, ix]), int(x0 + ix - x), int(y0 + iy - y))


def _window_gradients(gray: np.ndarray, x0: int, y0: int, x1: int,
                      y1: int) -> tuple[np.ndarray, np.ndarray]:
    """``_gradients(gray)`` cut to [y0:y1, x0:x1], computed on that window only: a 3x3 Sobel
    needs one more pixel around it, where the image has one; where the window meets the
    image's border, the border is the window's too and is reflected the same way. The same
    values for ``working_gray``'s integer-valued images (their sums are exact); other floats
    may round differently in the last bit."""
    left, top = min(x0, 1), min(y0, 1)
    part = gray[y0 - top:y1 + (y1 < gray.shape[0]), x0 - left:x1 + (x1 < gray.shape[1])]
    inner = (slice(top, top + y1 - y0), slice(left, left + x1 - x0))
    return tuple(g[inner] for g in _gradients(part))  # type: ignore[return-value]


TEMPLATE_SCALES = (0.5, 0.6, 0.71, 0.84, 1.0, 1.19, 1.41, 1.68, 2.0)  # x the learned size


@dataclass(frozen=True)
class TemplateHit:
    """Where a template (a mark learned elsewhere) was found: anywhere, at any of
    ``TEMPLATE_SCALES``. x, y: top-left in working pixels; scale: of the learned box."""

    score: float  # normalised gradient correlation, -1..1
    x: int
    y: int
    scale: float


def find_template(gray: np.ndarray, mark: SharedMark) -> TemplateHit:
    """Best normalised gradient correlation of a template over the whole working image:
    coarse scales first (``TEMPLATE_SCALES``, relative to the size it was learned at, per
    unit of image width), then 2 % steps around the best one near where it was found, since
    a thin stroke misses itself after a few per cent of scale. A user's own mark, wherever
    and however large an image carries it."""
    gx, gy = (cv2.GaussianBlur(g, (0, 0), 1.0) for g in _gradients(gray))
    energy = gx * gx + gy * gy
    floor = 0.05 * float(energy.mean()) + 1e-3  # flat ground matches nothing
    relative = gray.shape[1] / mark.shape[1]
    best = TemplateHit(0.0, 0, 0, 1.0)
    for scale in TEMPLATE_SCALES:
        best = max(best, _template_at(gx, gy, energy, floor, mark, scale * relative, None),
                   key=lambda hit: hit.score)
    coarse = best
    for step in range(-6, 7):
        scale = coarse.scale * (1 + 0.02 * step)
        best = max(best, _template_at(gx, gy, energy, floor, mark, scale, coarse),
                   key=lambda hit: hit.score)
    return best


def _template_at(gx: np.ndarray, gy: np.ndarray, energy: np.ndarray, floor: float,
                 mark: SharedMark, scale: float, near: TemplateHit | None) -> TemplateHit:
    """The best placement at one scale: anywhere, or within a few pixels of ``near``."""
    height, width = gx.shape
    w, h = round(mark.box[2] * scale), round(mark.box[3] * scale)
    if min(w, h) < 8 or w > width or h > height:
        return TemplateHit(0.0, 0, 0, scale)
    x0, y0, x1, y1 = 0, 0, width, height
    if near is not None:
        reach = max(4, round(0.1 * max(w, h)))
        x0, y0 = max(0, near.x - reach), max(0, near.y - reach)
        x1, y1 = min(width, near.x + w + reach), min(height, near.y + h + reach)
        if x1 - x0 < w or y1 - y0 < h:
            return TemplateHit(0.0, 0, 0, scale)
    grown = cv2.dilate(mark.mask, np.ones((5, 5), np.uint8))
    support = cv2.resize(grown, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    tx, ty = (cv2.GaussianBlur(cv2.resize(g, (w, h), interpolation=cv2.INTER_AREA), (0, 0), 1.0)
              * support for g in (mark.gx, mark.gy))
    norm = math.sqrt(float((tx * tx).sum() + (ty * ty).sum()))
    if norm == 0:
        return TemplateHit(0.0, 0, 0, scale)
    window = (slice(y0, y1), slice(x0, x1))
    scores = _correlate(gx[window], tx) + _correlate(gy[window], ty)
    local = _correlate(energy[window], support)
    enough = local > floor * float(support.sum())
    ncc = np.where(enough, scores / np.maximum(np.sqrt(np.abs(local)) * norm, 1e-6), 0.0)
    iy, ix = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
    return TemplateHit(float(ncc[iy, ix]), int(x0 + ix), int(y0 + iy), scale)


def template_region(mark: SharedMark, hit: TemplateHit, width: int, height: int,
                    working_width: int, grow: int = 2) -> Region | None:
    """The template's box in an image of ``width`` x ``height`` whose working copy was
    ``working_width`` wide (None if it falls outside)."""
    return _placed_region(hit.x, hit.y, mark.box[2] * hit.scale, mark.box[3] * hit.scale,
                          width / working_width, width, height, grow, hit.score, "template")


def template_mask(mark: SharedMark, hit: TemplateHit, width: int, height: int,
                  working_width: int, grow: int = 2) -> np.ndarray:
    """The template's pixels in an image of ``width`` x ``height``, grown by ``grow``."""
    factor = width / working_width * hit.scale
    return _placed_mask(mark.mask, hit.x * width / working_width, hit.y * width / working_width,
                        mark.box[2] * factor, mark.box[3] * factor, width, height, grow)


def _correlate(window: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Plain (unnormalised) cross-correlation at every placement of ``template`` in ``window``."""
    return np.asarray(cv2.matchTemplate(window, template.astype(np.float32), cv2.TM_CCORR))


def mark_region(mark: SharedMark, match: Match, width: int, height: int,
                grow: int = 2) -> Region | None:
    """The mark's box in an image of ``width`` x ``height`` (None if it falls outside)."""
    x, y, w, h = mark.box
    return _placed_region(x + match.dx, y + match.dy, w, h, width / mark.shape[1], width,
                          height, grow, match.score, "folder")


def mark_mask(mark: SharedMark, match: Match, width: int, height: int,
              grow: int = 2) -> np.ndarray:
    """The mark's pixels in an image of ``width`` x ``height``, grown by ``grow`` pixels."""
    scale = width / mark.shape[1]
    x, y, w, h = mark.box
    return _placed_mask(mark.mask, (x + match.dx) * scale, (y + match.dy) * scale, w * scale,
                        h * scale, width, height, grow)


def _placed_region(x: float, y: float, w: float, h: float, factor: float, width: int,
                   height: int, grow: int, score: float, kind: str) -> Region | None:
    """A box at (x, y) of w x h working pixels, times ``factor``, rounded outwards, grown by
    ``grow`` and clipped to a ``width`` x ``height`` image (None if nothing is left)."""
    left = max(0, math.floor(x * factor) - grow)
    top = max(0, math.floor(y * factor) - grow)
    right = min(width, math.ceil((x + w) * factor) + grow)
    bottom = min(height, math.ceil((y + h) * factor) + grow)
    if right <= left or bottom <= top:
        return None
    return Region(left, top, right - left, bottom - top, score=round(max(score, 0), 4),
                  kind=kind)


def _placed_mask(mask: np.ndarray, x: float, y: float, w: float, h: float, width: int,
                 height: int, grow: int) -> np.ndarray:
    """``mask`` resized to w x h full pixels, grown by ``grow``, at (x, y) of a ``width`` x
    ``height`` image."""
    patch = cv2.resize(mask, (max(1, round(w)), max(1, round(h))),
                       interpolation=cv2.INTER_NEAREST)
    if grow:
        patch = cv2.dilate(np.pad(patch, grow), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    canvas = np.zeros((height, width), np.uint8)
    _paste(canvas, patch, math.floor(x) - grow, math.floor(y) - grow)
    return canvas


def _paste(canvas: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Copy ``patch`` into ``canvas`` at (x, y), clipped to the canvas."""
    height, width = canvas.shape
    sx0, sy0 = max(0, -x), max(0, -y)
    dx0, dy0 = max(0, x), max(0, y)
    w = min(patch.shape[1] - sx0, width - dx0)
    h = min(patch.shape[0] - sy0, height - dy0)
    if w > 0 and h > 0:
        canvas[dy0:dy0 + h, dx0:dx0 + w] = patch[sy0:sy0 + h, sx0:sx0 + w]
