"""The first detector: corner text is found, ordinary photos stay clean."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw

from clearmark import DetectorConfig, _detect, detect
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
    # 2.3x on coffee since the colour re-cut: the dark ground between these faint letters
    # scores as a line of its own there (1.6x before; the remover rewrites only the pixels
    # its matte finds marked, _matte.marked_pixels)
    assert mask.sum() < 2.5 * (truth > 0).sum()


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


def test_text_colour_is_the_commonest_colour_and_tells_how_much_is_glued() -> None:
    rng = np.random.default_rng(0)
    text = rng.normal((200, 200, 205), 4, (700, 3))
    truss = rng.uniform((120, 70, 0), (220, 150, 60), (300, 3))  # orange bars crossing it
    pixels = np.clip(np.vstack([text, truss]), 0, 255).astype(np.uint8)
    centre, glued = _detect._text_colour(pixels)
    assert np.abs(centre - (200, 200, 205)).max() < 4
    assert 0.25 < glued < 0.32
    _, alone = _detect._text_colour(np.clip(text, 0, 255).astype(np.uint8))
    assert alone < 0.01  # text of one colour: nothing to re-cut


# Text that one mechanism of the text stage alone finds: the case, and the module setting that
# switches the mechanism off.
# - colour recut: at 0.4 opacity over a launch tower's girders and lights every stroke cut
#   either glues the letters to the girders or breaks them into pieces; the strokes of the
#   text's own colour make the line;
# - busy cut: over grass every usual cut glues the letters to the blades; only the higher cut
#   tried on busy strips lets them part into a line.
NEEDS_ONE_MECHANISM = {
    "colour recut": (("rocket", "@sunny_days_88", "br", 0.4, 0.045), "_RECUT_MAX", 0),
    "busy cut": (("grass", "@lumen_sunny_85", "bl", 0.65, 0.05), "_BUSY_FLOOR", float("inf")),
}


def _needing(mechanism: str) -> tuple[np.ndarray, np.ndarray]:
    (name, text, corner, opacity, share), _, _ = NEEDS_ONE_MECHANISM[mechanism]
    return with_text(photo(name), text, corner=corner, opacity=opacity, height_share=share)


@pytest.mark.parametrize("mechanism", sorted(NEEDS_ONE_MECHANISM))
def test_text_only_one_mechanism_finds_is_found_and_covered(mechanism: str) -> None:
    image, truth = _needing(mechanism)
    detection = detect(image)
    assert detection.watermarked
    covered = regions_to_mask(detection.regions, *image.shape[:2]) > 0
    assert covered[truth > 0].mean() > 0.8
    assert covered.mean() < 0.05


@pytest.mark.parametrize("mechanism", sorted(NEEDS_ONE_MECHANISM))
def test_without_its_mechanism_that_text_is_missed(mechanism: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # the case really needs the mechanism (if this fails, the test above proves nothing)
    _, setting, off = NEEDS_ONE_MECHANISM[mechanism]
    monkeypatch.setattr(_detect, setting, off)
    image, _ = _needing(mechanism)
    assert not detect(image).watermarked


def test_a_page_of_text_in_one_colour_stays_clean_after_the_recut() -> None:
    # page text is one colour too: the re-cut must find it crowded, not alone
    image = Image.fromarray(np.array(photo("rocket")))
    draw = ImageDraw.Draw(image)
    draw.polygon([(260, 430), (620, 410), (630, 600), (270, 600)], fill=(235, 225, 235))
    for i, y in enumerate(range(440, 590, 20)):
        draw.text((285, y - i), "coast vista wild urban north snap"[:24 + i % 9],
                  fill=(30, 30, 30), font=font(15))
    assert not detect(np.asarray(image)).watermarked


def test_a_weak_piece_of_the_other_polarity_joins_a_line_beside_it_not_over_it() -> None:
    line = _detect._Line(100, 40, 200, 20, 14.0, 12, True, 64.0, 0.95)
    # the background between bright letters, seen as a dark piece lying over the line
    gaps = _detect._Line(150, 42, 60, 30, 18.0, 1, False, 100.0, 0.2)
    # the same mark's next letters after its polarity flipped over a brighter background
    flipped = _detect._Line(305, 41, 40, 19, 14.0, 1, False, 64.0, 0.2)
    kept = _detect._accept([line, gaps, flipped], 0.5, 3)
    assert line in kept and flipped in kept and gaps not in kept
    same = _detect._Line(150, 42, 60, 30, 18.0, 1, True, 100.0, 0.2)
    assert same not in _detect._accept([line, same], 0.5, 3)  # another cut of that text


def test_a_recut_that_finds_more_of_the_line_is_kept_beside_the_first_cut() -> None:
    # "@snapcoast" found by the first cut; "262" after it glued to a rim, found by the re-cut
    first = _detect._Line(200, 438, 183, 32, 16.0, 10, True, 100.0, 0.94)
    recut = _detect._Line(201, 437, 238, 26, 15.0, 15, True, 100.0, 0.94, recut=True)
    same = _detect._Line(199, 438, 185, 32, 16.0, 11, True, 100.0, 0.93, recut=True)
    kept = _detect._accept([first, recut], 0.5, 3)
    assert first in kept and recut in kept  # both: the mask is their union
    # a re-cut of the same letters is only another cut of them: the better one stays
    assert _detect._accept([first, same], 0.5, 3) == [first]
