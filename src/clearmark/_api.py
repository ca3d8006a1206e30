"""The library calls: ``detect``, ``clean`` and their batch forms.

Every source type goes through ``load_image`` (one place for decoding rules); ``clean`` gives
back the type it was given: ndarray -> ndarray, PIL -> PIL, bytes or a path -> the encoded bytes
of the cleaned file in its own format (the original bytes, untouched, when nothing was found).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np
from PIL import Image

from ._detect import DEFAULT_CONFIG, DetectorConfig
from ._imageio import LoadedImage, LoadLimits, encode_image
from ._pipeline import glance, look_closer
from ._regions import Detection
from ._remove import LocalRemover

ImageSource = Any  # str | os.PathLike | bytes | np.ndarray | PIL.Image.Image


class Remover(Protocol):
    """Anything that turns an RGB image plus its detection into the cleaned RGB image."""

    def remove(self, rgb: np.ndarray, detection: Detection) -> np.ndarray: ...


def detect(image: ImageSource, *, config: DetectorConfig = DEFAULT_CONFIG) -> Detection:
    """Find watermarks in one image (a path, encoded bytes, an RGB ndarray or a PIL image)."""
    return _detect(image, config)[1]


def clean(image: ImageSource, *, remover: Remover | None = None,
          config: DetectorConfig = DEFAULT_CONFIG) -> Any:
    """Detect and remove watermarks; return the same kind of object as ``image``."""
    loaded, detection = _detect(image, config)
    if loaded is None or not detection.watermarked:
        return _unchanged(image)
    cleaned = (remover or LocalRemover()).remove(loaded.rgb, detection)
    return _same_kind(image, loaded, cleaned)


def _detect(image: ImageSource, config: DetectorConfig) -> tuple[LoadedImage | None, Detection]:
    """Decode at working size and decide, the way the folder runner does; decode in full only
    when there is something to remove (then the full image comes back too)."""
    limits = LoadLimits()
    small, finding = glance(image, config, limits)
    if not finding.watermarked:
        width, height = finding.size
        return None, Detection(False, finding.score, (), np.zeros((height, width), np.uint8))
    return look_closer(image, small, finding, limits)


def detect_batch(images: Iterable[ImageSource], *,
                 config: DetectorConfig = DEFAULT_CONFIG) -> list[Detection]:
    """``detect`` over many images, in order."""
    return [detect(image, config=config) for image in images]


def clean_batch(images: Sequence[ImageSource] | Iterable[ImageSource], *,
                remover: Remover | None = None,
                config: DetectorConfig = DEFAULT_CONFIG) -> list[Any]:
    """``clean`` over many images, in order, each result of its input's type."""
    remover = remover or LocalRemover()
    return [clean(image, remover=remover, config=config) for image in images]


def _unchanged(image: ImageSource) -> Any:
    if isinstance(image, np.ndarray):
        return image.copy()
    if isinstance(image, Image.Image):
        return image.copy()
    if isinstance(image, bytes | bytearray | memoryview):
        return bytes(image)
    with open(os.fspath(image), "rb") as handle:
        return handle.read()


def _same_kind(image: ImageSource, loaded: LoadedImage, cleaned: np.ndarray) -> Any:
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            return cleaned[:, :, 0].copy()
        if image.shape[2] == 4:
            return np.dstack([cleaned, image[:, :, 3]])
        return cleaned
    if isinstance(image, Image.Image):
        return _to_pil(cleaned, loaded.alpha, image.mode)
    return encode_image(cleaned, loaded.meta, alpha=loaded.alpha)


def _to_pil(rgb: np.ndarray, alpha: np.ndarray | None, mode: str) -> Image.Image:
    if alpha is not None:
        result = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    else:
        result = Image.fromarray(rgb, "RGB")
    if mode in ("L", "LA") and np.array_equal(rgb[..., 0], rgb[..., 1]) \
            and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return result.convert(mode)
    return result
