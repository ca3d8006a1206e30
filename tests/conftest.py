"""Shared test setup.

tests/ is deliberately not a package, so helper modules here (``badfiles``, ``photos``) are
plain top-level modules. Putting this folder on ``sys.path`` explicitly makes
``from badfiles import ...`` work whatever pytest import mode or rootdir is in use, without
touching pyproject's pytest settings.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import pytest  # noqa: E402

from badfiles import make_bad_corpus  # noqa: E402


@pytest.fixture
def bad_corpus(tmp_path: Path) -> dict[str, Path]:
    """The awkward-input corpus (see badfiles.py), written fresh into a temp folder."""
    return make_bad_corpus(tmp_path / "corpus")


@pytest.fixture(autouse=True)
def _no_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CLEARMARK_TOKEN exported in the developer's shell would send the CLI tests' images to
    the hosted API; tests that want a token set their own."""
    monkeypatch.delenv("CLEARMARK_TOKEN", raising=False)
