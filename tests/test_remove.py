"""The local remover rewrites only the watermark's pixels."""

from __future__ import annotations

import numpy as np
import pytest

from clearmark import Detection, LocalRemover, Region, detect
from clearmark._regions import regions_to_mask

from photos import photo, with_text


def _detection(mask: np.ndarray, regions: list[Region]) -> Detection:
    return Detection(True, 1.0, tuple(regions), mask)


def test_pixels_outside_the_regions_come_back_bit_exact() -> None:
    image, _ = with_text(photo("coffee"))
    detection = detect(image)
    assert detection.watermarked
    cleaned = LocalRemover().remove(image, detection)
    inside = regions_to_mask(detection.regions, *image.shape[:2]) > 0
    assert np.array_equal(cleaned[~inside], image[~inside])
    assert not np.array_equal(cleaned[inside], image[inside])


def test_removal_brings_the_zone_back_towards_the_original() -> None:
    clean = photo("coffee")
    image, truth = with_text(clean)
    cleaned = LocalRemover().remove(image, detect(image))
    zone = truth > 0
    before = np.abs(image[zone].astype(int) - clean[zone]).mean()
    after = np.abs(cleaned[zone].astype(int) - clean[zone]).mean()
    assert after < 0.4 * before


def test_a_clean_detection_changes_nothing() -> None:
    image = photo("astronaut")
    nothing = Detection(False, 0.0, (), np.zeros(image.shape[:2], np.uint8))
    cleaned = LocalRemover().remove(image, nothing)
    assert np.array_equal(cleaned, image)
    assert cleaned is not image


def test_mask_pixels_outside_every_region_are_not_touched() -> None:
    image = np.array(photo("chelsea"))
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[10:20, 10:60] = 255  # covered by the region
    mask[200:210, 200:260] = 255  # stray: no region covers it
    cleaned = LocalRemover().remove(image, _detection(mask, [Region(5, 5, 70, 25)]))
    assert np.array_equal(cleaned[195:215, 195:265], image[195:215, 195:265])
    assert not np.array_equal(cleaned[10:20, 10:60], image[10:20, 10:60])


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_both_inpainting_methods_fill_the_mask(method: str) -> None:
    image = np.full((120, 160, 3), 90, np.uint8)
    image[50:60, 40:120] = 255
    mask = np.zeros((120, 160), np.uint8)
    mask[50:60, 40:120] = 255
    cleaned = LocalRemover(method=method).remove(image, _detection(mask, [Region(30, 40, 100, 30)]))
    assert np.abs(cleaned[50:60, 40:120].astype(int) - 90).max() <= 3


def test_mismatched_mask_is_an_error() -> None:
    image = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="mask shape"):
        LocalRemover().remove(image, _detection(np.zeros((5, 5), np.uint8), [Region(0, 0, 2, 2)]))


@pytest.mark.parametrize("kwargs", [{"method": "magic"}, {"grow": -1}, {"radius": 0}])
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LocalRemover(**kwargs)  # type: ignore[arg-type]
