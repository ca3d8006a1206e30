"""Folder evidence: a mark shared by a folder of different photos is estimated and found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clearmark._detect import DetectorConfig, detect_array
from clearmark._folder import (
    MATCHED,
    MIN_IMAGES,
    WORKING_WIDTH,
    SharedMark,
    _median,
    estimate_shared_mark,
    find_template,
    match_shared_mark,
    template_region,
    working_gray,
)
from clearmark._marks import save_template
from clearmark._regions import regions_to_mask

from photos import photo, scenes, with_emblem, with_stamp

CLEAN = ("astronaut", "chelsea", "rocket", "hubble_deep_field", "coffee", "camera", "coins")


@pytest.fixture(scope="module")
def folder() -> tuple[list[np.ndarray], list[np.ndarray], SharedMark]:
    marked, truths = with_emblem(scenes(16))
    mark = estimate_shared_mark(working_gray(image) for image in marked)
    assert mark is not None
    return marked, truths, mark


def test_the_shared_mark_is_estimated_where_it_is(
        folder: tuple[list[np.ndarray], list[np.ndarray], SharedMark]) -> None:
    _, truths, mark = folder
    x, y, w, h = mark.box
    scale = 640 / mark.shape[1]
    ys, xs = np.nonzero(truths[0])
    assert abs(x * scale - xs.min()) < 12 and abs((x + w) * scale - xs.max()) < 12
    assert abs(y * scale - ys.min()) < 12 and abs((y + h) * scale - ys.max()) < 12
    assert mark.support == 16


def test_every_marked_photo_is_found_and_covered(
        folder: tuple[list[np.ndarray], list[np.ndarray], SharedMark]) -> None:
    marked, truths, mark = folder
    for image, truth in zip(marked, truths, strict=True):
        assert not detect_array(image).watermarked  # alone, each photo reveals nothing
        detection = detect_array(image, marks=[mark])
        assert detection.watermarked
        covered = regions_to_mask(detection.regions, *truth.shape) > 0
        assert covered[truth > 0].mean() > 0.95
        assert (detection.mask[truth > 0] > 0).mean() > 0.9


def test_photos_without_the_mark_do_not_match(
        folder: tuple[list[np.ndarray], list[np.ndarray], SharedMark]) -> None:
    _, _, mark = folder
    for image in scenes(7, 640, 480):
        flipped = np.ascontiguousarray(image[::-1])  # unseen framing
        assert match_shared_mark(working_gray(flipped), mark).score < MATCHED
        assert not detect_array(flipped, marks=[mark]).watermarked


def test_a_moved_mark_is_still_found(
        folder: tuple[list[np.ndarray], list[np.ndarray], SharedMark]) -> None:
    marked, _, mark = folder
    shifted = np.roll(marked[3], (5, -6), axis=(0, 1))
    match = match_shared_mark(working_gray(shifted), mark)
    assert match.score > 0.3 and (match.dx, match.dy) != (0, 0)


def test_unrelated_photos_give_no_mark() -> None:
    assert estimate_shared_mark(working_gray(image) for image in scenes(14)) is None


def test_too_few_images_give_no_mark() -> None:
    marked, _ = with_emblem(scenes(MIN_IMAGES - 1))
    assert estimate_shared_mark(working_gray(image) for image in marked) is None


def test_other_aspects_are_ignored(
        folder: tuple[list[np.ndarray], list[np.ndarray], SharedMark]) -> None:
    _, _, mark = folder
    square = np.array(photo("coffee", 500, 500))
    assert not detect_array(square, marks=[mark]).watermarked


def test_a_mark_survives_a_save_and_load(
        folder: tuple[list[np.ndarray], list[np.ndarray], SharedMark], tmp_path: Path) -> None:
    _, _, mark = folder
    mark.save(tmp_path / "mark.npz")
    loaded = SharedMark.load(tmp_path / "mark.npz")
    assert loaded.box == mark.box and loaded.shape == mark.shape
    assert loaded.support == mark.support and np.array_equal(loaded.mask, mark.mask)
    assert np.array_equal(loaded.gx, mark.gx)


def test_a_folder_of_unrelated_photos_has_no_shared_mark() -> None:
    # a dozen photos of one size always agree by chance somewhere; such a "mark" flagged 9 of
    # these 12 clean photos before the split-half test
    names = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins",
             "hubble_deep_field", "clock", "immunohistochemistry", "brick", "gravel", "grass")
    images = [np.array(photo(name, 640, 480)) for name in names]
    assert estimate_shared_mark([working_gray(image) for image in images]) is None


# -- templates: a mark learned once, looked for anywhere -------------------------------------


@pytest.fixture(scope="module")
def template() -> SharedMark:
    mark = estimate_shared_mark([working_gray(with_stamp(image, 400, 360))
                                 for image in scenes(16)])
    assert mark is not None
    return mark


@pytest.mark.parametrize(("name", "size", "place", "scale"), [
    ("coins", (1024, 768), (60, 60), 1.5),     # larger, top left
    ("camera", (800, 600), (500, 40), 1.0),    # another size of image, top right
    ("coffee", (1200, 900), (100, 700), 1.8),  # bottom left
])
def test_a_template_is_found_elsewhere_and_at_another_size(
        template: SharedMark, name: str, size: tuple[int, int], place: tuple[int, int],
        scale: float) -> None:
    image = with_stamp(np.array(photo(name, *size)), *place, scale)
    hit = find_template(working_gray(image), template)
    factor = WORKING_WIDTH / size[0]
    assert hit.score > 0.72
    assert abs(hit.x - place[0] * factor) <= 3 and abs(hit.y - place[1] * factor) <= 3
    region = template_region(template, hit, *size, WORKING_WIDTH)
    assert region is not None and region.kind == "template"
    assert region.width == pytest.approx(155 * scale, rel=0.15)


def test_a_template_is_not_found_where_it_is_not(template: SharedMark) -> None:
    for name in CLEAN:
        assert find_template(working_gray(np.array(photo(name, 900, 675))), template).score < 0.6


def test_templates_are_part_of_detection(template: SharedMark, tmp_path: Path) -> None:
    save_template(template, tmp_path / "lumen.npz")
    config = DetectorConfig(templates=(str(tmp_path / "lumen.npz"),))
    image = with_stamp(np.array(photo("coins", 1024, 768)), 60, 60, 1.5)
    detection = detect_array(image, config)
    (region,) = [r for r in detection.regions if r.kind == "template"]
    assert region.x <= 60 and region.x2 >= 60 + 155 * 1.5 * 0.95
    assert detection.mask[region.y:region.y2, region.x:region.x2].any()
    assert not detect_array(np.array(photo("astronaut", 900, 675)), config).watermarked


@pytest.mark.parametrize("count", [1, 2, 3, 8, 13, 16, 19, 32, 33])
def test_the_median_network_gives_numpys_median(count: int) -> None:
    rng = np.random.default_rng(count)
    stack = rng.integers(-40, 40, (count, 37, 45)).astype(np.float32)  # many ties, as Sobel
    stack[:, 0, :] = rng.standard_normal((count, 45)).astype(np.float32)
    assert np.array_equal(_median(stack), np.median(stack, axis=0).astype(np.float32))


def test_a_speck_shared_far_from_the_mark_stays_out_of_its_box(
        folder: tuple[list[np.ndarray], list[np.ndarray], SharedMark]) -> None:
    marked, truths, mark = folder
    specked = []
    for image in marked:
        image = image.copy()
        image[300:306, 320:326] = 255  # a small bright spot at one place in every photo
        specked.append(image)
    assert truths[0][280:330, 300:350].sum() == 0  # well away from the emblem
    estimated = estimate_shared_mark(working_gray(image) for image in specked)
    assert estimated is not None
    assert estimated.box == mark.box
