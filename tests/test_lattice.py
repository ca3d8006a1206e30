"""The lattice remover: a tiled mark's lattice from its mask, one matte over all copies."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage import data

from clearmark._lattice import (
    FILLED,
    INVERTED,
    UNTOUCHED,
    Lattice,
    lattice_of_mask,
    remove_tiled,
)


def _rotated(vectors: list[tuple[float, float]], degrees: float) -> np.ndarray:
    angle = math.radians(degrees)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return np.array(vectors, np.float64) @ rotation.T


def _cell_pattern(rows: int, cols: int, text: str = "SAMPLE") -> np.ndarray:
    """A float32 (rows, cols) cell, 1 on anti-aliased text strokes, 0 elsewhere."""
    cell = np.zeros((rows * 4, cols * 4), np.uint8)
    cv2.putText(cell, text, (cols // 2, rows * 2), cv2.FONT_HERSHEY_SIMPLEX, cols / 100,
                255, max(2, cols // 20), cv2.LINE_AA)
    return cv2.resize(cell, (cols, rows), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def tiled_alpha(shape: tuple[int, int], basis: np.ndarray, opacity: float,
                offset: tuple[float, float] = (7.3, 11.6)) -> np.ndarray:
    """An exactly periodic alpha: every pixel reads the cell at its fractional lattice
    coordinates (bilinear, wrapping), so copies land at every sub-pixel phase."""
    rows, cols = math.ceil(math.hypot(*basis[1])), math.ceil(math.hypot(*basis[0]))
    cell = _cell_pattern(rows, cols)
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    coords = np.stack([xs.ravel() - offset[0], ys.ravel() - offset[1]], 1) @ np.linalg.inv(basis)
    coords -= np.floor(coords)
    map_x = (coords[:, 0] * cols - 0.5).reshape(shape).astype(np.float32)
    map_y = (coords[:, 1] * rows - 0.5).reshape(shape).astype(np.float32)
    alpha = cv2.remap(cell, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    return np.clip(alpha, 0.0, 1.0) * opacity


def blend(photo: np.ndarray, alpha: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    a = alpha[..., None]
    return np.clip(np.rint(a * np.array(colour) + (1 - a) * photo), 0, 255).astype(np.uint8)


def jpeg(rgb: np.ndarray, quality: int = 92) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)


def grown_mask(alpha: np.ndarray, grow: int = 1) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    return cv2.dilate(np.where(alpha > 0.02, 255, 0).astype(np.uint8), kernel)


def psnr(out: np.ndarray, clean: np.ndarray, zone: np.ndarray) -> float:
    diff = out[zone].astype(np.float64) - clean[zone]
    return 10 * math.log10(255**2 / max(float(np.mean(diff * diff)), 1e-12))


def same_lattice(found: np.ndarray, true: np.ndarray, tolerance: float) -> bool:
    """Whether two bases span the same lattice (an integer change of basis with det +-1)
    within ``tolerance`` px."""
    change = found @ np.linalg.inv(true)
    whole = np.rint(change)
    return (abs(abs(np.linalg.det(whole)) - 1) < 1e-9
            and float(np.abs(found - whole @ true).max()) < tolerance)


BASES = {
    "square": np.array([[96.0, 0.0], [0.0, 64.0]]),
    "rotated": _rotated([(150.0, 0.0), (0.0, 70.0)], 28.0),
    "staggered": _rotated([(170.0, 0.0), (85.0, 60.0)], -35.0),
    "fractional": np.array([[123.4, 17.7], [-41.2, 88.9]]),
}


@pytest.mark.parametrize("name", sorted(BASES))
def test_lattice_of_mask_recovers_the_basis_to_a_tenth_of_a_pixel(name: str) -> None:
    basis = BASES[name]
    mask = grown_mask(tiled_alpha((480, 640), basis, 0.3))
    found = lattice_of_mask(mask)
    assert found is not None
    assert same_lattice(found.basis, basis, 0.1)
    assert found.strength > 0.7


def test_lattice_of_mask_says_none_when_the_mask_does_not_repeat() -> None:
    mask = np.zeros((400, 600), np.uint8)
    cv2.putText(mask, "(c) A. Photographer", (20, 380), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 255, 3)
    assert lattice_of_mask(mask) is None
    rng = np.random.default_rng(3)
    for _ in range(12):
        x, y = rng.integers(0, 560), rng.integers(0, 360)
        cv2.circle(mask, (int(x), int(y)), int(rng.integers(5, 30)), 255, -1)
    assert lattice_of_mask(mask) is None


@pytest.mark.parametrize("shape", [(0, 0), (1, 1), (8, 8), (12, 300)])
def test_lattice_of_mask_handles_empty_and_tiny_masks(shape: tuple[int, int]) -> None:
    assert lattice_of_mask(np.zeros(shape, np.uint8)) is None
    assert lattice_of_mask(np.full(shape, 255, np.uint8)) is None


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[:, :, :3])


@pytest.fixture(scope="module")
def marked(astronaut: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(watermarked JPEG, alpha, mask): a white tiled mark at 30 % over the astronaut."""
    alpha = tiled_alpha(astronaut.shape[:2], BASES["staggered"], 0.3)
    return jpeg(blend(astronaut, alpha, (255, 255, 255))), alpha, grown_mask(alpha)


def test_remove_tiled_recovers_the_photo_better_than_a_fill(
        astronaut: np.ndarray, marked: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    image, _, mask = marked
    done = remove_tiled(image, mask)
    assert done is not None
    out, method = done
    zone = mask > 0
    before = psnr(image, astronaut, zone)
    telea = psnr(cv2.inpaint(image, mask, 5, cv2.INPAINT_TELEA), astronaut, zone)
    after = psnr(out, astronaut, zone)
    assert after > before + 10
    assert after > telea + 4
    assert (method[zone] == INVERTED).mean() > 0.95


def test_remove_tiled_changes_nothing_outside_the_mask(
        marked: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    image, _, mask = marked
    done = remove_tiled(image, mask)
    assert done is not None
    out, method = done
    outside = mask == 0
    assert np.array_equal(out[outside], image[outside])
    assert (method[outside] == UNTOUCHED).all()
    assert image.flags.writeable and out is not image


def test_remove_tiled_takes_a_given_lattice(
        astronaut: np.ndarray, marked: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    image, _, mask = marked
    given = Lattice(BASES["staggered"], 1.0, 0.0)
    done = remove_tiled(image, mask, lattice=given)
    assert done is not None
    assert psnr(done[0], astronaut, mask > 0) > psnr(image, astronaut, mask > 0) + 10


def test_remove_tiled_removes_a_dark_mark_from_a_bright_photo() -> None:
    photo = np.ascontiguousarray(data.coffee()[:, :, :3])
    alpha = tiled_alpha(photo.shape[:2], BASES["rotated"], 0.25)
    image = jpeg(blend(photo, alpha, (40, 40, 40)))
    mask = grown_mask(alpha)
    done = remove_tiled(image, mask)
    assert done is not None
    zone = mask > 0
    telea = psnr(cv2.inpaint(image, mask, 5, cv2.INPAINT_TELEA), photo, zone)
    assert psnr(done[0], photo, zone) > max(psnr(image, photo, zone) + 5, telea + 1)


def test_remove_tiled_leaves_mask_pixels_that_do_not_repeat(
        marked: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    image, _, mask = marked
    extra = mask.copy()
    cv2.circle(extra, (256, 256), 12, 255, -1)  # one blob, in no other copy
    blob = (extra > 0) & (mask == 0)
    done = remove_tiled(image, extra)
    assert done is not None
    out, method = done
    assert (method[blob] == UNTOUCHED).mean() > 0.9
    untouched = blob & (method == UNTOUCHED)
    assert np.array_equal(out[untouched], image[untouched])


def test_remove_tiled_fills_an_opaque_mark(astronaut: np.ndarray) -> None:
    alpha = tiled_alpha(astronaut.shape[:2], BASES["square"], 1.0)
    image = blend(astronaut, alpha, (255, 255, 255))
    mask = grown_mask(alpha)
    done = remove_tiled(image, mask)
    assert done is not None
    out, method = done
    core = alpha > 0.95
    assert (method[core] == FILLED).mean() > 0.9
    assert psnr(out, astronaut, core) > psnr(image, astronaut, core) + 5


def test_remove_tiled_without_a_lattice_says_none(astronaut: np.ndarray) -> None:
    mask = np.zeros(astronaut.shape[:2], np.uint8)
    cv2.putText(mask, "(c) Studio", (40, 480), cv2.FONT_HERSHEY_SIMPLEX, 1.5, 255, 4)
    assert remove_tiled(astronaut, mask) is None


def test_remove_tiled_handles_empty_masks_and_tiny_images() -> None:
    image = np.full((6, 5, 3), 90, np.uint8)
    out, method = remove_tiled(image, np.zeros((6, 5), np.uint8)) or (None, None)
    assert out is not None and np.array_equal(out, image) and not method.any()
    mask = np.zeros((6, 5), np.uint8)
    mask[2:4, 2:4] = 255
    assert remove_tiled(image, mask) is None


def test_remove_tiled_checks_its_inputs(marked: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    image, _, mask = marked
    with pytest.raises(TypeError):
        remove_tiled(image.astype(np.float32), mask)
    with pytest.raises(ValueError, match="shape"):
        remove_tiled(image, mask[:-1])
    with pytest.raises(ValueError, match="2-D"):
        lattice_of_mask(np.zeros((4, 4, 3), np.uint8))
