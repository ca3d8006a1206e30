"""clearmark as a step of an ML data pipeline: batch dicts, Hugging Face datasets, transforms.

``BatchCleaner`` is the worker img2dataset taught us to write: a picklable callable class whose
state is built once in ``__init__`` and that maps one batch (a dict of columns) to the same
batch plus result columns. Every row ends with a ``status`` and an ``error``; a corrupt row
never fails the batch, because in a job over millions of images one bad file must cost one
row, not a shard. The same object serves ``datasets.Dataset.map(..., batched=True)`` and Ray
Data's ``map_batches`` (see ``clearmark.ray``).

Result columns never hold ``None``: Hugging Face's writer fixes a column's type from the first
batch, so a first batch without failures would make a later ``error`` string unwritable
(``null`` column), and a first batch without watermarks would do the same to a list of regions.
Hence ``error`` is ``""`` on success, ``score`` is NaN on failure, and ``regions`` is a JSON
string (the CLI's JSONL form): one stable ``string`` type in Arrow, HF, Ray, pandas and
Parquet, whatever the batch holds.

Nothing here imports ``datasets`` or ``torch`` unless that path is used.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ._api import Remover, _same_kind, _unchanged, clean
from ._detect import DEFAULT_CONFIG, DetectorConfig
from ._errors import ClearmarkError, ImageError
from ._imageio import LoadedImage, LoadLimits, encode_image
from ._pipeline import glance, look_closer
from ._remove import LocalRemover

RESULT_COLUMNS = ("watermarked", "score", "regions", "status", "error")


@dataclass(frozen=True)
class _Row:
    """One row's outcome: the image to put back and the result columns."""

    image: Any
    status: str
    watermarked: bool = False
    score: float = math.nan
    regions: str = "[]"
    error: str = ""


class BatchCleaner:
    """Clean the image column of a batch dict; add ``watermarked``, ``score``, ``regions``,
    ``status`` and ``error`` columns.

    column : the column holding images: RGB ndarrays, PIL images, encoded bytes, paths, or
        Hugging Face ``Image`` feature dicts ``{"bytes": ..., "path": ...}``.
    output_column : where the cleaned images go; ``None`` replaces ``column`` in place.
    config, remover, limits : as for :func:`clearmark.clean` and ``clearmark clean``.

    Each cleaned image has its input's type (ndarray -> ndarray, PIL -> PIL, bytes or path ->
    the cleaned file's bytes, feature dict -> feature dict with new ``bytes`` and the same
    ``path``). ``status`` is ``cleaned``, ``copied`` (no watermark: the value passes through
    untouched) or ``failed`` (the value passes through, except a path's, which becomes
    ``None``; ``error`` says why). Other columns are kept as they are.
    """

    def __init__(self, *, column: str = "image", output_column: str | None = None,
                 config: DetectorConfig = DEFAULT_CONFIG, remover: Remover | None = None,
                 limits: LoadLimits | None = None) -> None:
        self.column = column
        self.output_column = output_column or column
        self.config = config
        self.remover: Remover = remover if remover is not None else LocalRemover()
        self.limits = limits if limits is not None else LoadLimits()

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(batch, Mapping):
            raise TypeError(f"a batch is a dict of columns, got {type(batch).__name__} "
                            "(with Ray Data, keep batch_format='numpy', the default)")
        rows = [self._row(image) for image in batch[self.column]]
        out = dict(batch)
        out[self.output_column] = [row.image for row in rows]
        for name in RESULT_COLUMNS:
            out[name] = [getattr(row, name) for row in rows]
        return out

    def _row(self, image: Any) -> _Row:
        """One image's outcome; every failure is caught and becomes a ``failed`` row."""
        try:
            if _is_feature(image):
                return self._feature_row(image)
            return self._plain_row(image)
        except Exception as exc:  # per-row failures are data, whatever their cause
            return _Row(_failed_value(image), "failed", error=_reason(exc))

    def _plain_row(self, image: Any) -> _Row:
        return self._process(_plain(image),
                             lambda loaded, cleaned: _same_kind(image, loaded, cleaned),
                             lambda: _passed(image))

    def _feature_row(self, feature: Mapping[str, Any]) -> _Row:
        data, path = feature.get("bytes"), feature.get("path")
        if data is None and path is None:
            raise ValueError("image feature has neither bytes nor path")
        source = bytes(data) if data is not None else str(path)

        def cleaned_feature(loaded: LoadedImage, cleaned: np.ndarray) -> dict[str, Any]:
            encoded = encode_image(cleaned, loaded.meta, alpha=loaded.alpha)
            return {"bytes": encoded, "path": path}

        try:
            return self._process(source, cleaned_feature, lambda: dict(feature))
        except ImageError as exc:  # name the feature's file, not "<bytes>"
            if data is None or path is None:
                raise
            raise ImageError(str(path), exc.reason) from exc

    def _process(self, source: Any, cleaned_value: Callable[[LoadedImage, np.ndarray], Any],
                 unchanged_value: Callable[[], Any]) -> _Row:
        """Decide on a reduced decode and decode in full only to remove, as ``clean`` and the
        folder runner do, so all three give the same answer for the same image."""
        small, finding = glance(source, self.config, self.limits)
        summary = finding.to_dict()
        regions = json.dumps(summary["regions"], ensure_ascii=False)
        if not finding.watermarked:
            return _Row(unchanged_value(), "copied", False, summary["score"], regions)
        loaded, detection = look_closer(source, small, finding, self.limits)
        cleaned = self.remover.remove(loaded.rgb, detection)
        return _Row(cleaned_value(loaded, cleaned), "cleaned", True, summary["score"], regions)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(column={self.column!r}, "
                f"output_column={self.output_column!r}, config={self.config!r}, "
                f"remover={self.remover!r})")


def _is_feature(image: Any) -> bool:
    """A Hugging Face ``Image`` feature value, as ``decode=False`` or Arrow structs give it."""
    return isinstance(image, Mapping) and ("bytes" in image or "path" in image)


def _plain(image: Any) -> Any:
    """numpy scalars from Ray's numpy batches (``np.str_``, ``np.bytes_``) as plain values."""
    if isinstance(image, np.generic):
        return image.item()
    return image


def _passed(image: Any) -> Any:
    """The value of a row without a watermark: the input itself, or the file's bytes."""
    if isinstance(image, np.ndarray | Image.Image):
        return image  # untouched: no copy of every clean image of a dataset
    return _unchanged(_plain(image))


def _failed_value(image: Any) -> Any:
    """A failed row keeps its input, except a path: its column now holds file bytes."""
    return None if isinstance(_plain(image), str | os.PathLike) else image


def _reason(exc: BaseException) -> str:
    """One line: clearmark's own errors already name the file and the reason."""
    if isinstance(exc, ClearmarkError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


# -- Hugging Face datasets ---------------------------------------------------------------------


def clean_dataset(dataset: Any, cleaner: BatchCleaner | None = None, **map_kwargs: Any) -> Any:
    """Clean the ``Image`` column of a Hugging Face ``datasets.Dataset``.

    ``dataset.map(BatchCleaner(), batched=True)`` works as it is; this helper does it better:
    the column is read undecoded, so an image without a watermark keeps its exact bytes and a
    cleaned one keeps its format (JPEG stays JPEG, with its metadata) instead of being
    re-encoded by ``datasets`` as PNG; and the output schema is given, not inferred. The
    column comes back with its original ``decode`` setting. ``map_kwargs`` go to ``map``
    (``batch_size``, ``num_proc``, ``desc``...).
    """
    datasets = _import_datasets()
    cleaner = cleaner or BatchCleaner()
    feature = dataset.features[cleaner.column]
    decode = getattr(feature, "decode", False)
    if isinstance(feature, datasets.Image) and decode:
        dataset = dataset.cast_column(cleaner.column, datasets.Image(decode=False))
    features = _output_features(dataset.features, cleaner, datasets)
    mapped = dataset.map(cleaner, batched=True, features=features, **map_kwargs)
    if isinstance(feature, datasets.Image):
        mapped = mapped.cast_column(cleaner.output_column, datasets.Image(decode=decode))
    return mapped


def _output_features(features: Any, cleaner: BatchCleaner, datasets: Any) -> Any:
    """The input schema plus the result columns, with their types fixed up front."""
    out = datasets.Features(dict(features))
    out[cleaner.output_column] = features[cleaner.column]
    out["watermarked"] = datasets.Value("bool")
    out["score"] = datasets.Value("float64")
    for name in ("regions", "status", "error"):
        out[name] = datasets.Value("string")
    return out


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ImportError("Hugging Face datasets support needs the extra: "
                          "pip install 'clearmark[datasets]'") from None
    return datasets


# -- torchvision-style transform ----------------------------------------------------------------


class CleanTransform:
    """A torchvision-style transform: clean one image and return it in the same type.

    Takes what :func:`clearmark.clean` takes (RGB ndarray, PIL image, bytes, path) and torch
    tensors laid out as torchvision does (C x H x W or N x C x H x W, ``uint8`` or float in
    0..1). torch is imported only when a tensor arrives; the tensor goes through numpy, and
    for float tensors only the repainted pixels change (the rest stay bit for bit). Like any
    transform, it raises on an unreadable image (``clearmark.ImageError``).
    """

    def __init__(self, *, config: DetectorConfig = DEFAULT_CONFIG,
                 remover: Remover | None = None) -> None:
        self.config = config
        self.remover: Remover = remover if remover is not None else LocalRemover()

    def __call__(self, image: Any) -> Any:
        if _is_torch_tensor(image):
            return _clean_tensor(image, self._clean_array)
        return clean(image, remover=self.remover, config=self.config)

    def _clean_array(self, rgb: np.ndarray) -> np.ndarray:
        return np.asarray(clean(rgb, remover=self.remover, config=self.config))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(config={self.config!r}, remover={self.remover!r})"


def _is_torch_tensor(image: Any) -> bool:
    """True for ``torch.Tensor`` and its subclasses, found without importing torch."""
    return any(cls.__name__ == "Tensor" and cls.__module__ == "torch"
               for cls in type(image).__mro__)


def _clean_tensor(tensor: Any, clean_array: Any) -> Any:
    import torch

    array = tensor.detach().cpu().numpy()
    if array.ndim == 3:
        result = _clean_chw(array, clean_array)
    elif array.ndim == 4:
        result = np.stack([_clean_chw(chw, clean_array) for chw in array])
    else:
        raise ValueError(f"expected a C x H x W or N x C x H x W tensor, got {array.ndim} dims")
    out = torch.from_numpy(result).to(tensor.device)
    return out if type(tensor) is torch.Tensor else out.as_subclass(type(tensor))


def _clean_chw(chw: np.ndarray, clean_array: Any) -> np.ndarray:
    """Clean one C x H x W array (C = 1, 3 or 4), keeping its dtype and layout."""
    if chw.shape[0] not in (1, 3, 4):
        raise ValueError(f"expected 1, 3 or 4 channels first, got shape {chw.shape}")
    hwc = np.moveaxis(chw, 0, -1)
    if hwc.dtype == np.uint8:
        pixels = hwc
    elif np.issubdtype(hwc.dtype, np.floating):
        pixels = np.clip(np.rint(hwc * 255.0), 0, 255).astype(np.uint8)
    else:
        raise TypeError(f"expected a uint8 or float tensor, got {hwc.dtype}")
    pixels = np.ascontiguousarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    cleaned = np.asarray(clean_array(pixels)).reshape(hwc.shape)
    if hwc.dtype == np.uint8:
        return np.ascontiguousarray(np.moveaxis(cleaned, -1, 0))
    result = hwc.copy()
    changed = cleaned != pixels.reshape(hwc.shape)
    result[changed] = cleaned[changed].astype(hwc.dtype) / 255.0
    return np.ascontiguousarray(np.moveaxis(result, -1, 0))
