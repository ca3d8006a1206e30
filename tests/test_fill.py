"""Fills: the membrane fill and the OpenCV inpainting behind one call."""

from __future__ import annotations

import numpy as np
import pytest

from clearmark._fill import FILLS, fill, harmonic_fill, texture_level

from photos import photo


def _ramp(height: int = 60, width: int = 90) -> np.ndarray:
    """A linear colour ramp: harmonic, so a membrane fill must give it back."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.dstack([40 + xs, 60 + ys, 200 - xs - ys]).astype(np.float32)


def test_a_membrane_fill_gives_a_linear_ramp_back() -> None:
    image = _ramp()
    hole = np.zeros(image.shape[:2], bool)
    hole[15:45, 20:70] = True
    damaged = image.copy()
    damaged[hole] = 0.0
    filled = harmonic_fill(damaged, hole, sweeps=60)
    assert np.abs(filled - image)[hole].max() < 2.0


@pytest.mark.parametrize("method", FILLS)
def test_every_fill_keeps_known_pixels_and_fills_the_hole(method: str) -> None:
    image = np.full((40, 50, 3), 90, np.uint8)
    image[18:22, 10:40] = 255  # an opaque white stroke
    hole = np.zeros((40, 50), bool)
    hole[18:22, 10:40] = True
    filled = fill(image, hole, method)
    assert filled.dtype == np.float32
    assert np.array_equal(filled[~hole], image[~hole].astype(np.float32))
    assert np.abs(filled[hole] - 90).max() <= 3


def test_fill_edge_cases() -> None:
    image = photo("coffee", 64, 48)
    none = np.zeros((48, 64), bool)
    assert np.array_equal(harmonic_fill(image, none), image.astype(np.float32))
    assert not harmonic_fill(image, ~none).any()  # nothing known: nothing to go on
    single = none.copy()
    single[0, 0] = True  # a 1-pixel hole in a corner
    assert np.isfinite(harmonic_fill(image, single)).all()
    with pytest.raises(ValueError, match="fill method"):
        fill(image, single, "magic")


def test_texture_level_tells_flat_from_busy() -> None:
    hole = np.zeros((60, 60), bool)
    hole[25:35, 25:35] = True
    flat = np.full((60, 60, 3), 120, np.uint8)
    busy = np.random.default_rng(0).integers(0, 255, (60, 60, 3)).astype(np.uint8)
    assert texture_level(flat, hole) == 0.0
    assert texture_level(busy, hole) > 20.0
    assert texture_level(flat, np.ones((60, 60), bool)) == 0.0  # no ring at all
