"""Tiled marks: a faint text or logo repeated on a lattice is found, its mask drawn; photos,
brick walls and stripes are left alone."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from clearmark._tiled import MIN_SIDE, TiledFinding, find_tiled, tiled_mask

from photos import font, photo

WHITE, DARK = (255, 255, 255), (60, 60, 60)


def _text_tile(text: str, size: int) -> np.ndarray:
    """The text's alpha (0..1), tight."""
    face = font(size)
    left, top, right, bottom = face.getbbox(text)
    layer = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    ImageDraw.Draw(layer).text((1 - left, 1 - top), text, font=face, fill=255)
    return np.asarray(layer, np.float32) / 255.0


def _logo_tile(size: int) -> np.ndarray:
    """A ring around a filled triangle: a logo with an inside."""
    layer = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(layer)
    draw.ellipse((size * 0.1, size * 0.1, size * 0.9, size * 0.9), outline=255, width=size // 10)
    draw.polygon([(size * 0.5, size * 0.25), (size * 0.72, size * 0.7), (size * 0.28, size * 0.7)],
                 fill=255)
    return np.asarray(layer, np.float32) / 255.0


def tiled(rgb: np.ndarray, tile: np.ndarray, *, angle: float = 30.0, opacity: float = 0.25,
          colour: tuple[int, int, int] = WHITE, step: tuple[float, float] = (1.5, 3.0),
          stagger: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``tile`` repeated every step x its size (every other row shifted by half a step when
    ``stagger``), rotated by ``angle`` and blended over ``rgb``; return (image, truth)."""
    height, width = rgb.shape[:2]
    th, tw = tile.shape
    sx, sy = round(tw * step[0]), round(th * step[1])
    side = int(math.hypot(height, width)) + 2 * max(sx, sy)
    canvas = np.zeros((side, side), np.float32)
    for row, y in enumerate(range(0, side - th, sy)):
        for x in range((row % 2) * sx // 2 if stagger else 0, side - tw, sx):
            canvas[y:y + th, x:x + tw] = np.maximum(canvas[y:y + th, x:x + tw], tile)
    turn = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
    turn[:, 2] += (width / 2 - side / 2, height / 2 - side / 2)
    alpha = np.clip(cv2.warpAffine(canvas, turn, (width, height)), 0, 1)[:, :, None] * opacity
    out = alpha * np.asarray(colour, np.float32) + (1 - alpha) * rgb.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), alpha[:, :, 0] > 0.02


def gray(rgb: np.ndarray, side: int = 512) -> np.ndarray:
    """The working copy find_tiled expects: gray, long side ``side``."""
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    height, width = image.shape
    factor = side / max(height, width)
    return cv2.resize(image, (round(width * factor), round(height * factor)),
                      interpolation=cv2.INTER_AREA)


def brick_wall(seed: int, width: int = 800, height: int = 600) -> np.ndarray:
    """A running-bond brick wall: bricks of their own shade and grain, laid slightly unevenly,
    seen a little askew, as in a photo."""
    rng = np.random.default_rng(seed)
    brick_w = int(width * rng.uniform(0.08, 0.16))
    brick_h = int(brick_w * rng.uniform(0.35, 0.45))
    joint = max(2, brick_h // 7)
    side = int(math.hypot(width, height)) + 2 * brick_w
    wall = np.full((side, side), rng.uniform(150, 190), np.float32)
    for row, y in enumerate(range(0, side, brick_h)):
        x = -(row % 2) * brick_w // 2 + int(rng.integers(-2, 3))
        while x < side:
            length = brick_w + int(rng.integers(-2, 3))
            wall[y:y + brick_h - joint, max(x, 0):x + length - joint] = rng.normal(110, 15)
            x += length
    wall += cv2.GaussianBlur(rng.normal(0, 12, wall.shape).astype(np.float32), (0, 0), 1.2)
    turn = cv2.getRotationMatrix2D((side / 2, side / 2), rng.uniform(-4, 4), 1.0)
    turn[:, 2] += (width / 2 - side / 2, height / 2 - side / 2)
    source = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    moved = (source + rng.uniform(-0.03, 0.03, (4, 2)) * [width, height]).astype(np.float32)
    wall = cv2.warpAffine(wall, turn, (width, height))
    wall = cv2.warpPerspective(wall, cv2.getPerspectiveTransform(source, moved), (width, height),
                               borderMode=cv2.BORDER_REFLECT)
    return np.clip(wall, 0, 255).astype(np.uint8)


def covered(finding: TiledFinding, truth: np.ndarray) -> tuple[float, float]:
    """(share of the mark's pixels in the mask, share of the mask within 1 % of the mark)."""
    height, width = truth.shape
    mask = tiled_mask(finding, width, height) > 0
    margin = max(1, round(0.01 * min(height, width)))
    near = cv2.dilate(truth.astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8)) > 0
    return float(mask[truth].mean()), float(near[mask].mean())


def brightened(rgb: np.ndarray) -> np.ndarray:
    """A bright photo (stock sites put dark grey marks on those)."""
    return np.clip(255 * (rgb / 255.0) ** 0.5, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("scene", "angle", "colour"), [
    ("coffee", 30.0, WHITE), ("chelsea", 0.0, WHITE), ("camera", -40.0, WHITE),
    ("rocket", 90.0, (225, 225, 225)), ("camera", 22.0, DARK), ("chelsea", -35.0, DARK)])
def test_a_tiled_text_is_found_and_masked(scene: str, angle: float,
                                          colour: tuple[int, int, int]) -> None:
    base = brightened(photo(scene)) if colour == DARK else photo(scene)
    image, truth = tiled(base, _text_tile("© SAMPLE", 34), angle=angle, colour=colour)
    finding = find_tiled(gray(image))
    assert finding is not None and finding.watermarked
    assert finding.polarity == (1 if colour[0] > 128 else -1)
    recall, precision = covered(finding, truth)
    assert recall > 0.85 and precision > 0.85


def test_a_tiled_logo_is_masked_inside_too() -> None:
    image, truth = tiled(photo("coffee"), _logo_tile(60), angle=15.0, step=(1.8, 1.8),
                         stagger=False)
    finding = find_tiled(gray(image))
    assert finding is not None and finding.watermarked
    recall, precision = covered(finding, truth)
    assert recall > 0.85 and precision > 0.85


def test_a_faint_mark_is_still_found() -> None:
    image, _ = tiled(photo("coffee"), _text_tile("PREVIEW", 30), angle=-25.0, opacity=0.15)
    finding = find_tiled(gray(image))
    assert finding is not None and finding.watermarked


@pytest.mark.parametrize("scene", ["coffee", "astronaut", "chelsea", "camera", "rocket",
                                   "coins", "hubble_deep_field"])
def test_clean_photos_are_not_flagged(scene: str) -> None:
    finding = find_tiled(gray(photo(scene)))
    assert finding is None or not finding.watermarked


@pytest.mark.parametrize("seed", range(4))
def test_a_brick_wall_is_not_a_tiled_mark(seed: int) -> None:
    finding = find_tiled(gray(np.dstack([brick_wall(seed)] * 3)))
    assert finding is None or not finding.watermarked


def test_stripes_are_not_a_tiled_mark() -> None:
    ys, xs = np.mgrid[0:480, 0:640].astype(np.float32)
    stripes = 128 + 60 * np.sign(np.sin(2 * np.pi * (0.8 * xs + 0.6 * ys) / 23.0))
    finding = find_tiled(np.clip(stripes, 0, 255).astype(np.uint8))
    assert finding is None or not finding.watermarked


@pytest.mark.parametrize("image", [
    pytest.param(lambda: tiled(photo("coffee"), _text_tile("© SAMPLE", 34), angle=30.0)[0],
                 id="tiled"),
    pytest.param(lambda: np.dstack([brick_wall(1)] * 3), id="bricks")])
def test_a_floor_drops_only_lattices_scoring_below_it(
        image: Callable[[], np.ndarray]) -> None:
    """A caller's threshold, passed as the floor, spares the costly cues on lattices the
    cheap ones rule out, and changes no decision at that threshold."""
    work = gray(image())
    full, floored = find_tiled(work), find_tiled(work, floor=0.5)
    assert full is not None  # a lattice is verified either way: the floor has work to do
    if full.score >= 0.5:
        assert floored is not None and floored.score == full.score
        assert np.array_equal(floored.cell, full.cell)
    else:
        assert floored is None


def test_the_mask_is_the_same_mark_at_any_size() -> None:
    image, truth = tiled(photo("coffee", 1024, 768), _text_tile("© SAMPLE", 50), angle=35.0)
    finding = find_tiled(gray(image, 1024))  # a larger copy is reduced to the working side
    assert finding is not None and finding.watermarked
    full = tiled_mask(finding, 1024, 768)
    half = tiled_mask(finding, 512, 384)
    assert full.shape == (768, 1024) and set(np.unique(full)) <= {0, 255}
    shrunk = cv2.resize(full, (512, 384), interpolation=cv2.INTER_AREA) > 127
    assert np.mean(shrunk == (half > 0)) > 0.97
    assert covered(finding, truth)[0] > 0.85


def test_a_finding_pickles_with_its_mask() -> None:
    image, _ = tiled(photo("chelsea"), _text_tile("DO NOT COPY", 30), angle=-30.0)
    finding = find_tiled(gray(image))
    assert finding is not None
    again = pickle.loads(pickle.dumps(finding))
    assert again.score == finding.score and again.basis == finding.basis
    assert np.array_equal(tiled_mask(again, 640, 480), tiled_mask(finding, 640, 480))


@pytest.mark.parametrize("bad", [np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64), np.float32),
                                 np.zeros(64, np.uint8)])
def test_wrong_arrays_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        find_tiled(bad)


@pytest.mark.parametrize("image", [np.zeros((MIN_SIDE - 1, 400), np.uint8),
                                   np.full((480, 640), 128, np.uint8)])
def test_images_without_a_lattice_give_nothing(image: np.ndarray) -> None:
    assert find_tiled(image) is None


def test_a_mask_needs_a_size() -> None:
    image, _ = tiled(photo("coffee"), _text_tile("© SAMPLE", 34))
    finding = find_tiled(gray(image))
    assert finding is not None
    with pytest.raises(ValueError):
        tiled_mask(finding, 0, 480)
