"""clearmark: find and remove visible watermarks in images.

The whole public API is listed here; everything else lives in private modules. Ray support
is the submodule ``clearmark.ray``, imported on demand (it needs the ``ray`` extra).
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._api import Remover, clean, clean_batch, detect, detect_batch
from ._batch import BatchCleaner, CleanTransform, clean_dataset
from ._client import AsyncClient, Client, RateLimiter
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
from ._protocol import PollPolicy, Submission, TaskInfo, TaskResult
from ._regions import MAX_RECTANGLES, Detection, Region
from ._remote import APIRemover
from ._remove import LocalRemover

__all__ = [
    "MAX_RECTANGLES",
    "APIError",
    "APIRemover",
    "APIStatusError",
    "AsyncClient",
    "BatchCleaner",
    "CleanTransform",
    "ClearmarkError",
    "Client",
    "Detection",
    "DetectorConfig",
    "ImageError",
    "LoadLimits",
    "LocalRemover",
    "OutputError",
    "PollPolicy",
    "RateLimiter",
    "Region",
    "Remover",
    "Submission",
    "TaskFailed",
    "TaskInfo",
    "TaskResult",
    "TaskTimeout",
    "__version__",
    "clean",
    "clean_batch",
    "clean_dataset",
    "detect",
    "detect_batch",
]
