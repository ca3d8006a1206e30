"""The local remover: the offline default.

It rewrites only the pixels of a watermark. The detection's stroke mask is grown a little (to
cover anti-aliasing and JPEG halos), restricted to the detected regions, and filled by
inpainting on a crop around each region; every pixel outside that mask is returned unchanged,
bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ._regions import Detection, Region, merge_regions, regions_to_mask

_METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


@dataclass(frozen=True)
class LocalRemover:
    """Inpaint the detected strokes on the CPU.

    grow : pixels the stroke mask is dilated by before filling.
    radius : the inpainting neighbourhood, in pixels.
    method : "telea" or "ns" (OpenCV's Telea or Navier-Stokes inpainting).
    """

    grow: int = 2
    radius: int = 4
    method: str = "telea"

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ValueError(f"method must be one of {sorted(_METHODS)}, got {self.method!r}")
        if self.grow < 0 or self.radius < 1:
            raise ValueError("grow must be >= 0 and radius >= 1")

    def remove(self, rgb: np.ndarray, detection: Detection) -> np.ndarray:
        """Return a copy of ``rgb`` (H x W x 3 uint8) with the detected watermark filled in."""
        if rgb.shape[:2] != detection.mask.shape:
            raise ValueError(f"mask shape {detection.mask.shape} does not match image "
                             f"shape {rgb.shape[:2]}")
        if not detection.watermarked or not detection.regions:
            return rgb.copy()
        mask = removal_mask(detection.mask, detection.regions, self.grow)
        return inpaint_regions(rgb, mask, detection.regions, self.radius, _METHODS[self.method])


def removal_mask(mask: np.ndarray, regions: tuple[Region, ...] | list[Region],
                 grow: int) -> np.ndarray:
    """The pixels to rewrite: the stroke mask grown by ``grow`` px, kept inside the regions."""
    if grow:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        mask = cv2.dilate(mask, kernel)
    inside = regions_to_mask(regions, *mask.shape)
    return np.where(inside > 0, mask, 0).astype(np.uint8)


def inpaint_regions(rgb: np.ndarray, mask: np.ndarray, regions: tuple[Region, ...] | list[Region],
                    radius: int, flags: int) -> np.ndarray:
    """Inpaint ``mask`` on crops around each region and paste back only the masked pixels.

    Working on crops keeps the cost proportional to the watermark, not to the image.
    """
    out = rgb.copy()
    height, width = mask.shape
    margin = 3 * radius + 2
    crops = (r.padded(margin).clamped(width, height) for r in regions)
    for region in merge_regions(crop for crop in crops if crop is not None):
        ys = slice(region.y, region.y2)
        xs = slice(region.x, region.x2)
        crop_mask = mask[ys, xs]
        if not crop_mask.any():
            continue
        filled = cv2.inpaint(np.ascontiguousarray(out[ys, xs]), crop_mask, radius, flags)
        target = out[ys, xs]
        target[crop_mask > 0] = filled[crop_mask > 0]
    return out
