"""The local remover: the offline default, and what ``clearmark serve`` runs.

It rewrites only the pixels of a watermark, on crops around its regions:

1. Regions a person gave (kind ``"mask"`` or ``"rectangle"``: the endpoint's ``mask_file``
   or ``rectangles``) are filled over exactly their mask, grown only by ``user_grow``
   (default 0): a person's mask says "replace this".
2. For a detector's regions, each crop's mark is modelled as J = a*W + (1-a)*I (``_matte``):
   colour W and alpha a are estimated from the image, on the stroke mask grown by
   ``grow + 1`` px. A semi-transparent mark whose strokes have an inside is inverted,
   I = (J - a*W) / (1 - a), fused per pixel with a fill where the inversion would amplify
   JPEG noise past what a guess costs (``_matte.fuse``). Crops of one image share the
   colour and opacity most of them agree on (a tiled mark spans many crops).
3. Opaque marks (a >= 0.7) and marks whose strokes are all anti-aliased edge (small text)
   are filled instead, with the fill chosen by stroke width and texture (``_fill``).
4. Either way only the pixels the matte finds marked are rewritten (``_matte.marked_pixels``:
   the strokes, their unexplained shadow or outline, a flat colour the palette missed, plus
   1 px of ring), not the detector's whole mask: at full size that mask also answers JPEG's
   chroma smear and ringing and the photo between letters, and filling those only loses the
   photo. Crops with no consistent mark are filled over the stroke mask grown by ``grow``
   (default 1 px: anti-aliasing and the worst of the JPEG halo).
5. A tiled mark (regions of kind ``"tiled"``) is removed before any crop, in one go: one
   alpha matte fitted over all of its copies at once (``_lattice``), where the photo under
   the copies averages out, instead of a matte per crop; only its masked pixels that do not
   repeat from copy to copy go on to the crops.

Every pixel outside the rewritten set comes back unchanged, bit for bit. ``remove_explained``
also says which method each region got, for the run's report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ._fill import FILLS, fill, texture_level
from ._lattice import FILLED, INVERTED, UNTOUCHED, remove_tiled
from ._matte import (
    DEFAULT_MATTE,
    Matte,
    MatteConfig,
    Palette,
    agreed_palette,
    agrees,
    estimate_matte,
    fuse,
    invertible,
    marked_pixels,
    remove_known_mark,
)
from ._regions import Detection, Region, merge_regions, regions_to_mask

USER_KINDS = frozenset({"mask", "rectangle"})
"""Region kinds that come from a person (mask file, rectangles): filled exactly as given."""

_METHODS = ("auto", *FILLS)
_MATTE_SHARE = 0.25  # share of rewritten pixels recovered by inversion to report "matte"
_THIN = 2.5  # px: holes at most this far from their border are thin strokes (see _choose_fill)
_TIGHT = 0.1  # a hole the matte would trim by less than this share is already tight: kept
_RING = 1  # px kept around the pixels the matte finds marked (anti-aliasing, JPEG halo)


@dataclass(frozen=True)
class LocalRemover:
    """Remove detected watermarks on the CPU: blend inversion where possible, fill elsewhere.

    grow : px a detector's stroke mask is dilated by (the matte works on one more px); only
        the pixels of that hole the matte finds marked are rewritten, the others come back
        as they were (all of it is filled when no consistent mark is found, or ``matte`` is
        False).
    radius : neighbourhood of OpenCV's inpainting, in px (``telea`` / ``ns`` fills).
    method : the fill for lost pixels: ``"auto"`` (chosen per region by stroke width and
        texture), ``"harmonic"``, ``"telea"`` or ``"ns"``.
    matte : estimate and invert semi-transparent marks; False fills every detected pixel.
    user_grow : px a person's mask (regions of kind "mask" / "rectangle") is dilated by,
        within its regions (nothing outside the regions is ever touched).
    config : the matte and fusion settings (``_matte.MatteConfig``).
    """

    grow: int = 1
    radius: int = 4
    method: str = "auto"
    matte: bool = True
    user_grow: int = 0
    config: MatteConfig = field(default=DEFAULT_MATTE)

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ValueError(f"method must be one of {sorted(_METHODS)}, got {self.method!r}")
        if self.grow < 0 or self.user_grow < 0 or self.radius < 1:
            raise ValueError("grow and user_grow must be >= 0 and radius >= 1")

    def remove(self, rgb: np.ndarray, detection: Detection) -> np.ndarray:
        """Return a copy of ``rgb`` (H x W x 3 uint8) with the detected watermark removed."""
        return self.remove_explained(rgb, detection)[0]

    def remove_explained(self, rgb: np.ndarray,
                         detection: Detection) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """``remove``, plus one record per region of the detection (in its order):
        ``{"x", "y", "width", "height", "method", "pixels", "inverted"}``.

        ``method`` is ``"matte"`` (the blend was inverted), a fill (``"harmonic"``,
        ``"telea"``, ``"ns"``), or ``"none"`` (nothing to rewrite in that region); ``pixels``
        counts the pixels rewritten in the region, ``inverted`` the share of them recovered
        by inversion rather than filled.
        """
        _check_inputs(rgb, detection)
        out = rgb.copy()
        if not detection.watermarked or not detection.regions:
            return out, []
        height, width = rgb.shape[:2]
        methods = np.zeros((height, width), np.uint8)  # index into _LABELS, per pixel
        inverted = np.zeros((height, width), bool)
        done = np.zeros((height, width), bool)  # merged crops may overlap: rewrite pixels once
        rest = self._remove_tiled(out, detection, (methods, inverted, done))
        if rest.regions:
            self._remove_in_crops(out, rest, (methods, inverted, done))
        return out, [_explain(r, methods, inverted, width, height) for r in detection.regions]

    def _remove_tiled(self, out: np.ndarray, detection: Detection,
                      record: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Detection:
        """Remove a tiled mark in one go, by one matte fitted over all its copies (``_lattice``),
        writing into ``out`` and ``record`` (method index, inverted, done); return what is left
        for the crops: the other regions, and the masked pixels that do not repeat.

        The mask inside the tiled regions, and inside "mixed" ones (a tiled region merged with
        another), is the lattice's to remove; when it is not periodic, everything is left."""
        if not self.matte or not any(r.kind == "tiled" for r in detection.regions):
            return detection
        tiled = [r for r in detection.regions if r.kind in ("tiled", "mixed")]
        removed = remove_tiled(out, removal_mask(detection.mask, tiled, self.grow))
        if removed is None:
            return detection
        result, got = removed
        methods, inverted, done = record
        written = got != UNTOUCHED
        out[written] = result[written]
        methods[got == INVERTED] = _LABELS.index("matte")
        methods[got == FILLED] = _LABELS.index("harmonic")
        inverted |= got == INVERTED
        done |= written
        others = tuple(r for r in detection.regions if r.kind != "tiled")
        left = np.where(written, 0, detection.mask).astype(np.uint8)
        return Detection(bool(others), detection.score, others, left)

    def _remove_in_crops(self, out: np.ndarray, detection: Detection,
                         record: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Remove each region's mark on a crop around it (merged crops), writing into ``out``
        and ``record`` (method index, inverted, done) the pixels not done yet."""
        height, width = out.shape[:2]
        methods, inverted, done = record
        holes = _holes(detection, self.grow, self.user_grow)
        margin = max(10, 3 * self.radius + 2)
        padded = (r.padded(margin).clamped(width, height) for r in detection.regions)
        crops = merge_regions(c for c in padded if c is not None)
        windows = [(slice(c.y, c.y2), slice(c.x, c.x2)) for c in crops]
        mattes = [self._estimate(out[w], holes[1][w]) for w in windows]  # before any write
        agreed = agreed_palette([m for m in mattes if m is not None and invertible(m, self.config)])
        for crop, window, matte in zip(crops, windows, mattes, strict=True):
            todo = ~done[window] & _core(crop, margin, width, height)
            self._remove_crop(out[window], [h[window] for h in holes], todo,
                              (methods[window], inverted[window]), _Mattes(matte, agreed))
            done[window] |= todo

    def remove_known(self, rgb: np.ndarray, colour: np.ndarray, alpha: np.ndarray,
                     x: int, y: int) -> np.ndarray:
        """Remove a mark whose colour (h x w x 3 or 3 values, 0..255) and alpha (h x w, 0..1)
        are known, placed with its top-left at (x, y): e.g. a mark estimated from a whole
        folder of photos that carry it. Only pixels under the mark (alpha > 0) change."""
        fill_method = "harmonic" if self.method == "auto" else self.method
        return remove_known_mark(rgb, colour, alpha, x, y, method=fill_method,
                                 config=self.config)

    def _estimate(self, crop: np.ndarray, hole: np.ndarray) -> Matte | None:
        if not self.matte or not hole.any():
            return None
        return estimate_matte(crop, hole, self.config)

    def _remove_crop(self, view: np.ndarray, holes: list[np.ndarray], todo: np.ndarray,
                     record: tuple[np.ndarray, np.ndarray], mattes: _Mattes) -> None:
        """Rewrite one crop in place (only ``todo`` pixels): detected marks, then user masks;
        ``record`` (method index, inverted) is filled in for the pixels written."""
        fill_hole, matte_hole, user_hole = holes
        methods, inverted = record
        if matte_hole.any():
            result, written, weight, label = self._remove_detected(view.copy(), fill_hole,
                                                                   matte_hole, mattes)
            write = written & todo
            view[write] = _to_uint8(result[write])
            methods[write] = _LABELS.index(label)
            inverted[write] = weight[write] >= 0.5
        write = user_hole & todo
        if write.any():
            label = self._fill_method(view, user_hole)
            result = fill(view, user_hole, label, self.radius)
            view[write] = _to_uint8(result[write])
            methods[write] = _LABELS.index(label)

    def _remove_detected(self, crop: np.ndarray, fill_hole: np.ndarray, matte_hole: np.ndarray,
                         mattes: _Mattes) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """(result, pixels written, inversion weight, method label) for one crop's detection.

        The matte works on the wider hole; where this crop's own estimate disagrees with what
        the image's other crops agreed on, it is refitted with the agreed colour and opacity.
        Only the pixels it finds marked are rewritten: inverted and fused, or, for an opaque
        mark or strokes too thin to have an inside (all anti-aliased edge, where the alpha is
        least sure and JPEG rings most), filled within the narrower hole. With no consistent
        mark the whole narrower hole is filled.
        """
        if not fill_hole.any():  # only a neighbour's grown mask reaches in: not ours
            return crop, fill_hole, np.zeros(fill_hole.shape), "harmonic"
        label = self._fill_method(crop, fill_hole)
        matte = mattes.own
        if mattes.agreed is not None and (matte is None or not agrees(matte, mattes.agreed)):
            matte = estimate_matte(crop, matte_hole, self.config, mattes.agreed)
        if matte is None:
            return fill(crop, fill_hole, label, self.radius), fill_hole, np.zeros(
                fill_hole.shape), label
        marked = marked_pixels(crop, matte_hole, matte, _RING, self.config)
        if marked.sum() >= (1.0 - _TIGHT) * matte_hole.sum():  # a true or careful mask:
            marked = matte_hole  # what the matte would drop there is mostly its own misses
        if not invertible(matte, self.config):
            hole = marked & fill_hole
            if not hole.any():  # the matte saw no stroke here: trust the detector
                hole = fill_hole
            label = self._fill_method(crop, hole)
            return fill(crop, hole, label, self.radius), hole, np.zeros(hole.shape), label
        result, weight = fuse(crop, marked, matte, label, self.config)
        share = float((weight[marked] >= 0.5).mean()) if marked.any() else 0.0
        return result, marked, weight, "matte" if share >= _MATTE_SHARE else label

    def _fill_method(self, crop: np.ndarray, hole: np.ndarray) -> str:
        return _choose_fill(crop, hole) if self.method == "auto" else self.method


_LABELS = ("none", "matte", *FILLS)


@dataclass(frozen=True)
class _Mattes:
    """A crop's own matte estimate and the palette the image's crops agreed on."""

    own: Matte | None
    agreed: Palette | None


def _choose_fill(crop: np.ndarray, hole: np.ndarray) -> str:
    """Telea for thin strokes over texture (it continues the lines crossing them), the
    membrane elsewhere (it guesses no texture: the least squared error on wide holes)."""
    depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
    thin = float(np.percentile(depth[hole], 90)) <= _THIN
    return "telea" if thin and texture_level(crop, hole) > 6.0 else "harmonic"


def _holes(detection: Detection, grow: int, user_grow: int) -> list[np.ndarray]:
    """(fill hole, matte hole, user hole) as bool images.

    Fills rewrite the detector's mask grown by ``grow``; the matte works on one more pixel
    of ring (its pixels outside the mark come back as they were, or denoised); a person's
    regions take exactly their mask, grown only by ``user_grow``.
    """
    user = [r for r in detection.regions if r.kind in USER_KINDS]
    found = [r for r in detection.regions if r.kind not in USER_KINDS]
    user_hole = removal_mask(detection.mask, user, user_grow) > 0
    fill_hole = (removal_mask(detection.mask, found, grow) > 0) & ~user_hole
    matte_hole = (removal_mask(detection.mask, found, grow + 1) > 0) & ~user_hole
    return [fill_hole, matte_hole, user_hole]


def _core(crop: Region, margin: int, width: int, height: int) -> np.ndarray:
    """The crop minus its margin (kept where the crop meets the image border): the regions
    it was made for. Hole pixels in the margin belong to a neighbour's crop, which sees
    them with a full ring of context."""
    core = np.zeros((crop.height, crop.width), bool)
    top = 0 if crop.y == 0 else margin
    left = 0 if crop.x == 0 else margin
    bottom = crop.height if crop.y2 == height else crop.height - margin
    right = crop.width if crop.x2 == width else crop.width - margin
    core[top:max(bottom, top), left:max(right, left)] = True
    return core


def _explain(region: Region, methods: np.ndarray, inverted: np.ndarray, width: int,
             height: int) -> dict[str, Any]:
    """A region's record: where it is, what was done there, how much was inverted."""
    record: dict[str, Any] = {**region.rectangle(), "method": "none", "pixels": 0,
                              "inverted": 0.0}
    inside = region.clamped(width, height)
    if inside is None:
        return record
    window = (slice(inside.y, inside.y2), slice(inside.x, inside.x2))
    labels = methods[window]
    touched = labels > 0
    count = int(touched.sum())
    if count == 0:
        return record
    share = float(inverted[window][touched].mean())
    counts = np.bincount(labels[touched], minlength=len(_LABELS))
    counts[_LABELS.index("matte")] = 0
    fill_label = _LABELS[int(np.argmax(counts))] if counts.any() else "harmonic"
    used_matte = bool((labels == _LABELS.index("matte")).any())
    method = "matte" if used_matte and share >= _MATTE_SHARE else fill_label
    return {**record, "method": method, "pixels": count, "inverted": round(share, 3)}


def removal_mask(mask: np.ndarray, regions: tuple[Region, ...] | list[Region],
                 grow: int) -> np.ndarray:
    """The pixels to rewrite: the mask grown by ``grow`` px, kept inside the regions."""
    if grow:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        mask = cv2.dilate(mask, kernel)
    inside = regions_to_mask(regions, *mask.shape)
    return np.where(inside > 0, mask, 0).astype(np.uint8)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _check_inputs(rgb: np.ndarray, detection: Detection) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise TypeError("image must be a uint8 numpy array")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {rgb.shape}")
    if rgb.shape[:2] != detection.mask.shape:
        raise ValueError(f"mask shape {detection.mask.shape} does not match image "
                         f"shape {rgb.shape[:2]}")
