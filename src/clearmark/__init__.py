"""clearmark: find and remove visible watermarks in images.

The whole public API is listed here; everything else lives in private modules.
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._api import Remover, clean, clean_batch, detect, detect_batch
from ._detect import DetectorConfig
from ._errors import (
                      APIError,
                      APIStatusError,
                      ClearmarkError,
                      ImageError,
                      OutputError,
                      TaskFailed,
                      TaskTimeout,
)
from ._imageio import LoadLimits
from ._regions import MAX_RECTANGLES, Detection, Region
from ._remove import LocalRemover

__all__ = [
    "MAX_RECTANGLES",
    "APIError",
    "APIStatusError",
    "ClearmarkError",
    "Detection",
    "DetectorConfig",
    "ImageError",
    "LoadLimits",
    "LocalRemover",
    "OutputError",
    "Region",
    "Remover",
    "TaskFailed",
    "TaskTimeout",
    "__version__",
    "clean",
    "clean_batch",
    "detect",
    "detect_batch",
]
