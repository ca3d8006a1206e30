"""The local remover rewrites only the watermark's pixels, and says how it did each region."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from clearmark import Detection, LocalRemover, Region, detect
from clearmark._regions import mask_to_regions, pad_regions, regions_to_mask
from clearmark._remove import removal_mask
from test_lattice import _rotated, blend, grown_mask, jpeg, psnr, tiled_alpha

from photos import photo, with_text

FILLS = {"harmonic", "telea", "ns"}


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


def test_a_semi_transparent_text_is_inverted_where_its_strokes_are_thick() -> None:
    clean = photo("chelsea", 480, 360)
    image, truth = with_text(clean, "SAMPLE", opacity=0.4, height_share=0.12, corner="tl")
    detection = _detection(truth, mask_to_regions(truth, kind="text"))
    cleaned, records = LocalRemover().remove_explained(image, detection)
    assert {r["method"] for r in records} == {"matte"}
    zone = truth > 0
    error = np.abs(cleaned[zone].astype(int) - clean[zone]).mean()
    assert error < 3.0  # a fill misses the fur's texture by far more
    filled = LocalRemover(matte=False).remove(image, detection)
    assert error < 0.5 * np.abs(filled[zone].astype(int) - clean[zone]).mean()


def test_a_clean_detection_changes_nothing() -> None:
    image = photo("astronaut")
    nothing = Detection(False, 0.0, (), np.zeros(image.shape[:2], np.uint8))
    cleaned, records = LocalRemover().remove_explained(image, nothing)
    assert np.array_equal(cleaned, image)
    assert cleaned is not image and records == []


def test_mask_pixels_outside_every_region_are_not_touched() -> None:
    image = np.array(photo("chelsea"))
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[10:20, 10:60] = 255  # covered by the region
    mask[200:210, 200:260] = 255  # stray: no region covers it
    cleaned = LocalRemover().remove(image, _detection(mask, [Region(5, 5, 70, 25)]))
    assert np.array_equal(cleaned[195:215, 195:265], image[195:215, 195:265])
    assert not np.array_equal(cleaned[10:20, 10:60], image[10:20, 10:60])


@pytest.mark.parametrize("method", ["auto", "harmonic", "telea", "ns"])
def test_every_fill_removes_an_opaque_block(method: str) -> None:
    image = np.full((120, 160, 3), 90, np.uint8)
    image[50:60, 40:120] = 255
    mask = np.zeros((120, 160), np.uint8)
    mask[50:60, 40:120] = 255
    remover = LocalRemover(method=method)
    cleaned, records = remover.remove_explained(image, _detection(mask, [Region(30, 40, 100, 30)]))
    assert np.abs(cleaned[50:60, 40:120].astype(int) - 90).max() <= 3
    assert records[0]["method"] in FILLS and records[0]["inverted"] == 0.0
    assert method == "auto" or records[0]["method"] == method


def _user_case(kind: str) -> tuple[np.ndarray, np.ndarray, Detection]:
    """A red blob on a grey ramp and a person's mask over exactly it, of the given kind."""
    image = np.dstack([np.tile(np.linspace(60, 180, 200), (150, 1)).astype(np.uint8)] * 3)
    mask = np.zeros((150, 200), np.uint8)
    mask[40:90, 50:75] = 255
    mask[100:103, 120:190] = 255
    image[mask > 0] = (255, 0, 0)
    return image, mask, _detection(mask, mask_to_regions(mask, kind=kind))


@pytest.mark.parametrize("kind", ["mask", "rectangle"])
def test_a_users_mask_is_filled_exactly_as_given(kind: str) -> None:
    image, mask, detection = _user_case(kind)
    cleaned, records = LocalRemover().remove_explained(image, detection)
    changed = (cleaned != image).any(axis=2)
    assert np.array_equal(changed, mask > 0)  # every masked pixel, and nothing else
    assert all(r["method"] in FILLS for r in records)
    assert sum(r["pixels"] for r in records) == int((mask > 0).sum())


def test_a_users_mask_grows_only_when_asked_and_within_its_regions() -> None:
    image, mask, detection = _user_case("mask")
    detection = _detection(mask, pad_regions(detection.regions, 4, 200, 150))
    assert np.array_equal((LocalRemover().remove(image, detection) != image).any(axis=2),
                          mask > 0)
    grown = LocalRemover(user_grow=2).remove(image, detection)
    changed = (grown != image).any(axis=2)
    assert changed.sum() > (mask > 0).sum()
    assert changed[mask > 0].all()
    inside = regions_to_mask(detection.regions, *mask.shape) > 0
    assert not changed[~inside].any()  # growing stays inside the regions


def test_each_region_reports_its_method_in_order() -> None:
    image, truth = with_text(photo("coffee"), corner="br")
    mask = truth.copy()
    regions = [*mask_to_regions(truth, kind="text"), Region(0, 0, 30, 30, kind="text")]
    cleaned, records = LocalRemover().remove_explained(image, _detection(mask, regions))
    assert [(r["x"], r["y"], r["width"], r["height"]) for r in records] == [
        (g.x, g.y, g.width, g.height) for g in regions]
    assert records[0]["method"] in FILLS | {"matte"} and records[0]["pixels"] > 0
    assert records[-1] == {"x": 0, "y": 0, "width": 30, "height": 30, "method": "none",
                           "pixels": 0, "inverted": 0.0}
    assert np.array_equal(cleaned[:30, :30], image[:30, :30])


@pytest.mark.parametrize("box", [
    (0, 0, 1, 1),  # one pixel in a corner
    (159, 119, 1, 1),  # the opposite corner
    (0, 50, 160, 3),  # a band across the whole width
    (150, 100, 40, 40),  # hanging off the bottom right
    (-10, -10, 25, 25),  # hanging off the top left
    (500, 500, 10, 10),  # entirely outside
])
def test_odd_regions_are_handled_and_nothing_outside_them_moves(
        box: tuple[int, int, int, int]) -> None:
    image = np.ascontiguousarray(photo("rocket", 160, 120))
    region = Region(*box, kind="text")
    mask = regions_to_mask([region], 120, 160)
    cleaned, records = LocalRemover().remove_explained(image, _detection(mask, [region]))
    inside = mask > 0
    assert np.array_equal(cleaned[~inside], image[~inside])
    # a detector's mask is trimmed to what the matte sees as marked: at most the mask
    assert len(records) == 1 and records[0]["pixels"] <= int(inside.sum())
    assert int((cleaned != image).any(axis=2).sum()) <= records[0]["pixels"]


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (7, 5), (64, 48), (33, 301)])
def test_any_image_size_works(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    mask = np.zeros(shape, np.uint8)
    mask[shape[0] // 2, shape[1] // 2] = 255
    region = Region(0, 0, shape[1], shape[0])
    cleaned = LocalRemover().remove(image, _detection(mask, [region]))
    assert cleaned.shape == image.shape and cleaned.dtype == np.uint8
    near = np.zeros(shape, bool)  # the mask grown by grow + 1 (the matte's ring) = 2 px
    cy, cx = shape[0] // 2, shape[1] // 2
    near[max(cy - 2, 0):cy + 3, max(cx - 2, 0):cx + 3] = True
    assert np.array_equal(cleaned[~near], image[~near])


@pytest.mark.parametrize("image, error", [
    (np.zeros((10, 10, 3), np.float32), TypeError),
    (np.zeros((10, 10, 3), np.uint16), TypeError),
    (np.zeros((10, 10), np.uint8), ValueError),
    (np.zeros((10, 10, 4), np.uint8), ValueError),
    (np.zeros((5, 5, 3), np.uint8), ValueError),  # does not match the 10 x 10 mask
])
def test_wrong_inputs_are_refused(image: np.ndarray, error: type[Exception]) -> None:
    detection = _detection(np.zeros((10, 10), np.uint8), [Region(0, 0, 2, 2)])
    with pytest.raises(error):
        LocalRemover().remove(image, detection)


@pytest.mark.parametrize("kwargs", [{"method": "magic"}, {"grow": -1}, {"radius": 0},
                                    {"user_grow": -1}])
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LocalRemover(**kwargs)  # type: ignore[arg-type]


def test_the_remover_is_deterministic_and_leaves_its_input_alone() -> None:
    image, _ = with_text(photo("coffee"), opacity=0.5)
    before = image.copy()
    detection = detect(image)
    first = LocalRemover().remove(image, detection)
    assert np.array_equal(image, before)
    assert np.array_equal(LocalRemover().remove(image, detection), first)


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


@pytest.mark.parametrize("scene, opacity, kept", [("coffee", 1.0, 0.6), ("chelsea", 0.5, 0.9)])
def test_a_fat_detector_mask_is_trimmed_to_the_strokes(scene: str, opacity: float,
                                                       kept: float) -> None:
    """A detector's mask 4 px too fat: the photo between and around the letters comes back
    bit for bit (it was all filled before), and the strokes still come off."""
    clean = photo(scene, 640, 480)
    image, truth = with_text(clean, "@wild_lumen_17", opacity=opacity, height_share=0.07,
                             corner="bl")
    fat = cv2.dilate(truth, _disc(4))
    detection = _detection(fat, pad_regions(mask_to_regions(fat, kind="text"), 4, 640, 480))
    cleaned, records = LocalRemover().remove_explained(image, detection)
    far = (fat > 0) & (cv2.dilate(truth, _disc(3)) == 0)
    assert (cleaned[far] == image[far]).all(axis=1).mean() >= kept
    assert sum(r["pixels"] for r in records) < int((cv2.dilate(fat, _disc(1)) > 0).sum())
    zone = truth > 0
    before = np.abs(image[zone].astype(int) - clean[zone]).mean()
    after = np.abs(cleaned[zone].astype(int) - clean[zone]).mean()
    assert after < 0.25 * before
    filled = LocalRemover(matte=False).remove(image, detection)  # no matte: no trimming
    assert (filled[far] == image[far]).all(axis=1).mean() < 0.2  # a fill hits a few by chance


def test_a_users_mask_over_an_unmarked_photo_is_still_filled_whole() -> None:
    image = np.ascontiguousarray(photo("astronaut", 320, 240))
    mask = np.zeros((240, 320), np.uint8)
    mask[100:140, 60:200] = 255  # nothing is drawn there: the person still wants it gone
    for kind in ("mask", "rectangle"):
        detection = _detection(mask, mask_to_regions(mask, kind=kind))
        cleaned, records = LocalRemover().remove_explained(image, detection)
        assert sum(r["pixels"] for r in records) == int((mask > 0).sum())
        assert np.array_equal(cleaned[mask == 0], image[mask == 0])


def test_a_tiled_mark_is_removed_by_one_matte_over_all_its_copies() -> None:
    clean = np.array(photo("coffee", 640, 480))
    alpha = tiled_alpha((480, 640), _rotated([(150.0, 0.0), (75.0, 90.0)], 25), 0.3)
    marked = jpeg(blend(clean, alpha, (255, 255, 255)))
    mask = grown_mask(alpha, 1)
    regions = tuple(mask_to_regions(mask, kind="tiled"))
    out, records = LocalRemover().remove_explained(marked, Detection(True, 0.9, regions, mask))
    zone = mask > 0
    assert psnr(out, clean, zone) > psnr(marked, clean, zone) + 9
    assert {r["method"] for r in records} == {"matte"}
    rewritten = removal_mask(mask, list(regions), 1) > 0
    assert np.array_equal(out[~rewritten], marked[~rewritten])
    # the same pixels as separate marks, one matte per crop: copies cannot pool their evidence
    as_text = Detection(True, 0.9, tuple(replace(r, kind="text") for r in regions), mask)
    assert psnr(out, clean, zone) > psnr(LocalRemover().remove(marked, as_text), clean, zone) + 4
