"""The first detector: corner text is found, ordinary photos stay clean."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw

from clearmark import DetectorConfig, detect
from clearmark._regions import regions_to_mask

from photos import font, photo, with_text

CLEAN_PHOTOS = ["coffee", "astronaut", "chelsea", "rocket", "camera", "coins", "hubble_deep_field"]


@pytest.mark.parametrize("name", CLEAN_PHOTOS)
def test_ordinary_photos_are_not_flagged(name: str) -> None:
    detection = detect(photo(name))
    assert not detection.watermarked
    assert detection.regions == ()
    assert not detection.mask.any()


@pytest.mark.parametrize(("name", "corner", "colour"), [
    ("coffee", "br", (255, 255, 255)),
    ("astronaut", "bl", (255, 255, 255)),
    ("chelsea", "tr", (20, 20, 20)),
    ("rocket", "tl", (255, 255, 255)),
])
def test_corner_text_is_found_and_covered(name: str, corner: str,
                                          colour: tuple[int, int, int]) -> None:
    image, truth = with_text(photo(name), corner=corner, colour=colour)
    detection = detect(image)
    assert detection.watermarked
    assert 0.5 <= detection.score <= 1.0
    covered = regions_to_mask(detection.regions, *image.shape[:2]) > 0
    assert covered[truth > 0].mean() > 0.95  # the regions hold the mark
    assert (detection.mask[truth > 0] > 0).mean() > 0.8  # the mask holds its strokes
    assert covered.mean() < 0.05  # and little else


@pytest.mark.parametrize("name", ["hubble_deep_field", "coffee"])
def test_the_mask_of_faint_coloured_text_keeps_to_its_strokes(name: str) -> None:
    # JPEG-like chroma smear and the dark gaps between bright letters once made the mask a bar
    image, truth = with_text(photo(name), "© North Amber Photography", colour=(52, 187, 245),
                             opacity=0.55, height_share=0.03)
    mask = detect(image).mask > 0
    assert mask[truth > 0].mean() > 0.95
    assert mask.sum() < 2.0 * (truth > 0).sum()


def _page(name: str) -> np.ndarray:
    """A printed page in the bottom band: lines of text stacked above one another."""
    image = Image.fromarray(np.array(photo(name)))
    draw = ImageDraw.Draw(image)
    draw.rectangle((300, 400, 620, 590), fill=(245, 245, 240))
    for i, y in enumerate(range(410, 580, 22)):
        draw.text((312, y), "lorem ipsum dolor sit amet consectetur"[:30 + i % 8],
                  fill=(20, 20, 20), font=font(14, bold=False))
    return np.asarray(image)


def _sign(name: str) -> np.ndarray:
    """A sign in the bottom band: white letters on an opaque blue plate."""
    image = Image.fromarray(np.array(photo(name)))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((420, 520, 640, 570), 6, fill=(30, 90, 160))
    draw.text((436, 528), "Hotel Aurora", fill=(255, 255, 255), font=font(28))
    return np.asarray(image)


@pytest.mark.parametrize("scene", [_page, _sign])
@pytest.mark.parametrize("name", ["coffee", "chelsea", "camera"])
def test_scene_text_on_a_page_or_a_sign_is_not_a_mark(
        scene: Callable[[str], np.ndarray], name: str) -> None:
    assert not detect(scene(name)).watermarked


def test_regions_and_mask_are_in_full_resolution_pixels() -> None:
    image, truth = with_text(photo("coffee", 2000, 1500), "www.example-photos.com")
    detection = detect(image)
    assert detection.mask.shape == (1500, 2000)
    assert all(r.x2 <= 2000 and r.y2 <= 1500 for r in detection.regions)
    ys, xs = np.nonzero(truth)
    region = max(detection.regions, key=lambda r: r.area)
    assert region.x <= xs.min() and region.x2 > xs.max()
    assert region.y <= ys.min() and region.y2 > ys.max()


def test_threshold_trades_recall_for_precision() -> None:
    image, _ = with_text(photo("coffee"))
    assert detect(image, config=DetectorConfig(threshold=0.0)).watermarked
    assert not detect(image, config=DetectorConfig(threshold=1.0)).watermarked


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 500, 3), (500, 7, 3), (64, 64, 3)])
def test_tiny_and_thin_images_do_not_break_it(shape: tuple[int, int, int]) -> None:
    detection = detect(np.zeros(shape, np.uint8))
    assert detection.mask.shape == shape[:2]
    assert not detection.watermarked


def test_flat_images_are_clean() -> None:
    for value in (0, 128, 255):
        assert not detect(np.full((480, 640, 3), value, np.uint8)).watermarked


@pytest.mark.parametrize("kwargs", [{"working_side": 10}, {"band": 0}, {"threshold": 2.0}])
def test_bad_config_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DetectorConfig(**kwargs)  # type: ignore[arg-type]
