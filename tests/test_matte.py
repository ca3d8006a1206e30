"""Blend inversion: a semi-transparent mark over a real photo comes off, an opaque one is filled."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from clearmark import Detection, LocalRemover, Region
from clearmark._matte import (
    Matte,
    estimate_matte,
    fuse,
    inversion_weight,
    invert_blend,
    invertible,
    marked_pixels,
    remove_known_mark,
)

from photos import photo

WHITE = np.array([255.0, 255.0, 255.0], np.float32)


def _emblem(height: int, width: int) -> np.ndarray:
    """Anti-aliased coverage (0..1) of a filled disc with a hole and a thick bar: a logo."""
    big = np.zeros((height * 4, width * 4), np.uint8)
    cy, cx, r = height * 2, width * 2, min(height, width) * 3 // 2
    cv2.circle(big, (cx, cy), r, 255, -1)
    cv2.circle(big, (cx, cy), r // 3, 0, -1)
    cv2.rectangle(big, (cx - 2 * r, cy + r + 8), (cx + 2 * r, cy + r + 40), 255, -1)
    small = cv2.resize(big, (width, height), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def _blend(rgb: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
    out = alpha[..., None] * colour + (1 - alpha[..., None]) * rgb.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def marked() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean photo, watermarked photo, alpha): a white emblem at opacity 0.35, a fifth of
    the image's height, over the cat's fur (as the benchmark's logos)."""
    clean = np.ascontiguousarray(photo("chelsea", 320, 240))
    alpha = np.zeros(clean.shape[:2], np.float32)
    alpha[150:200, 200:250] = 0.35 * _emblem(50, 50)
    return clean, _blend(clean, alpha, WHITE), alpha


def _truth(alpha: np.ndarray) -> Detection:
    mask = np.where(alpha > 0.01, 255, 0).astype(np.uint8)
    ys, xs = np.nonzero(mask)
    box = Region(int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1,
                 kind="logo")
    return Detection(True, 1.0, (box,), mask)


def _psnr(a: np.ndarray, b: np.ndarray, zone: np.ndarray) -> float:
    diff = a[zone].astype(np.float64) - b[zone]
    return float(10 * np.log10(255**2 / max(np.mean(diff * diff), 1e-9)))


def test_the_matte_finds_the_marks_colour_and_opacity(marked: tuple[np.ndarray, ...]) -> None:
    _, image, alpha = marked
    window = (slice(130, 220), slice(180, 270))
    hole = cv2.dilate((alpha > 0.01).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    matte = estimate_matte(image[window], hole[window])
    assert matte is not None
    assert len(matte.opacities) == 1 and abs(matte.opacities[0] - 0.35) < 0.04
    assert np.abs(np.array(matte.colours[0]) - WHITE).max() <= 10
    assert invertible(matte)


def test_inversion_recovers_the_photo_far_better_than_inpainting(
        marked: tuple[np.ndarray, ...]) -> None:
    clean, image, alpha = marked
    detection = _truth(alpha)
    cleaned, records = LocalRemover().remove_explained(image, detection)
    zone = detection.mask > 0
    telea = cv2.inpaint(image, detection.mask, 5, cv2.INPAINT_TELEA)
    assert records[0]["method"] == "matte" and records[0]["inverted"] > 0.5
    assert _psnr(cleaned, clean, zone) > 34.0
    assert _psnr(cleaned, clean, zone) > _psnr(telea, clean, zone) + 6.0


def test_a_known_mark_is_inverted_almost_exactly(marked: tuple[np.ndarray, ...]) -> None:
    clean, image, alpha = marked
    patch = alpha[150:200, 200:250]
    cleaned = remove_known_mark(image, WHITE, patch, 200, 150)
    under = alpha > 0
    assert np.abs(cleaned[under].astype(int) - clean[under]).max() <= 2
    assert np.array_equal(cleaned[~under], image[~under])
    via_remover = LocalRemover().remove_known(image, np.broadcast_to(WHITE, (*patch.shape, 3)),
                                              patch, 200, 150)
    assert np.array_equal(via_remover, cleaned)


@pytest.mark.parametrize("x, y", [(-30, -20), (300, 200), (1000, 1000)])
def test_a_known_mark_may_hang_off_the_image(marked: tuple[np.ndarray, ...], x: int,
                                             y: int) -> None:
    _, image, alpha = marked
    cleaned = remove_known_mark(image, WHITE, alpha[150:200, 200:250], x, y)
    assert cleaned.shape == image.shape and cleaned is not image


def test_known_mark_inputs_are_checked(marked: tuple[np.ndarray, ...]) -> None:
    _, image, _ = marked
    with pytest.raises(ValueError, match="alpha"):
        remove_known_mark(image, WHITE, np.zeros((2, 2, 2)), 0, 0)
    with pytest.raises(TypeError):
        remove_known_mark(image.astype(np.float32), WHITE, np.zeros((2, 2)), 0, 0)
    assert np.array_equal(remove_known_mark(image, WHITE, np.zeros((4, 4)), 0, 0), image)


def test_an_opaque_mark_is_filled_not_inverted(marked: tuple[np.ndarray, ...]) -> None:
    clean, _, alpha = marked
    opaque = np.where(alpha > 0, np.minimum(alpha / 0.35, 1.0), 0.0).astype(np.float32)
    image = _blend(clean, opaque, WHITE)
    cleaned, records = LocalRemover().remove_explained(image, _truth(opaque))
    assert records[0]["method"] in ("harmonic", "telea", "ns")
    assert records[0]["inverted"] == 0.0
    assert not np.any(cleaned[opaque > 0.9] == 255)  # no white left inside


def test_pixels_above_the_opaque_level_get_no_inversion_weight() -> None:
    rgb = np.full((30, 30, 3), 100, np.float32)
    alpha = np.zeros((30, 30), np.float32)
    alpha[5:25, 5:15] = 0.3
    alpha[5:25, 15:25] = 0.9
    hole = alpha > 0
    matte = Matte(alpha, np.broadcast_to(WHITE, (30, 30, 3)).copy(), rgb, hole, ((255.0,) * 3,),
                  (0.9,))
    image = alpha[..., None] * WHITE + (1 - alpha[..., None]) * rgb
    weight = inversion_weight(image, hole, matte)
    assert (weight[alpha >= 0.85] == 0).all()
    assert (weight[8:22, 7:12] > 0.5).all()
    fused, _ = fuse(image, hole, matte)
    assert np.abs(fused[hole] - 100).max() < 2.0  # filled from the inverted neighbours
    assert np.allclose(invert_blend(image, alpha, WHITE)[alpha < 0.85], 100, atol=1e-3)


def test_a_flat_hole_has_no_matte() -> None:
    flat = np.full((20, 20, 3), 80, np.uint8)
    hole = np.zeros((20, 20), bool)
    hole[5:15, 5:15] = True
    assert estimate_matte(flat, hole) is None
    assert estimate_matte(flat, np.ones((20, 20), bool)) is None
    assert estimate_matte(flat, np.zeros((20, 20), bool)) is None


def _bars_and_word() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, truth, word) on a 130 x 90 crop of a photo: three white bars at opacity 0.9,
    and 10 px below them a dark blue word block (a second mark colour)."""
    clean = np.ascontiguousarray(photo("coffee", 320, 240))[40:170, 40:130]
    alpha = np.zeros(clean.shape[:2], np.float32)
    colour = np.zeros((*clean.shape[:2], 3), np.float32)
    for x in (20, 40, 60):
        alpha[20:80, x:x + 8] = 0.9
        colour[20:80, x:x + 8] = WHITE
    word = np.zeros(clean.shape[:2], bool)
    word[90:105, 20:68] = True
    alpha[word] = 0.9
    colour[word] = (20, 20, 120)
    out = alpha[..., None] * colour + (1 - alpha[..., None]) * clean.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), alpha > 0, word


def test_the_marked_pixels_hug_the_strokes_inside_a_fat_hole() -> None:
    image, truth, _ = _bars_and_word()
    hole = cv2.dilate(truth.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    matte = estimate_matte(image, hole)
    assert matte is not None
    marked = marked_pixels(image, hole, matte)
    assert not marked[~hole].any()  # a subset of the hole
    assert marked[truth].all()  # every stroke pixel, both colours
    far = hole & ~(cv2.dilate(truth.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
    assert marked[far].mean() < 0.2  # the photo 3-4 px off the strokes is left alone


def test_a_colour_the_palette_missed_is_still_marked() -> None:
    image, truth, word = _bars_and_word()
    hole = cv2.dilate(truth.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    white_only = estimate_matte(image, hole, palette=(((255.0, 255.0, 255.0),), (0.9,)))
    assert white_only is not None and len(white_only.colours) == 1
    assert not (white_only.alpha[word] > 0).all()  # the palette alone loses the word
    assert marked_pixels(image, hole, white_only)[word].all()


def test_the_ring_grows_the_marked_pixels_within_the_hole() -> None:
    image, truth, _ = _bars_and_word()
    hole = cv2.dilate(truth.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    matte = estimate_matte(image, hole)
    assert matte is not None
    tight, ringed = (marked_pixels(image, hole, matte, ring) for ring in (0, 2))
    assert tight.sum() < ringed.sum() and not (tight & ~ringed).any()
    assert not ringed[~hole].any()
