"""Optional dependencies in tests: skip naming the extra, but never silently on CI."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or skip naming the extra (never skip silently on CI)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"needs {module}: pip install 'clearmark[{extra}]'")
