"""Real photos with known watermarks, for tests (scikit-image's public-domain / CC0 photos).

Kept independent of bench/synth.py on purpose: tests need a few fixed, easy-to-read cases,
the benchmark needs a broad random distribution.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage import data

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu")


@cache
def photo(name: str = "coffee", width: int = 800, height: int = 600) -> np.ndarray:
    """A real RGB photo resized to width x height (read-only; copy before changing it)."""
    rgb = getattr(data, name)()
    if rgb.ndim == 2:
        rgb = np.dstack([rgb] * 3)
    resized = cv2.resize(rgb[:, :, :3], (width, height), interpolation=cv2.INTER_AREA)
    resized.setflags(write=False)
    return resized


def font(size: int, bold: bool = True) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for folder in FONT_DIRS:
        if Path(folder, name).exists():
            return ImageFont.truetype(str(Path(folder, name)), size)
    import matplotlib  # pragma: no cover - machines without system DejaVu

    return ImageFont.truetype(str(Path(matplotlib.__file__).parent / "mpl-data/fonts/ttf" / name),
                              size)


def with_text(rgb: np.ndarray, text: str = "@sunny_days_88", *, corner: str = "br",
              colour: tuple[int, int, int] = (255, 255, 255), opacity: float = 1.0,
              height_share: float = 0.045) -> tuple[np.ndarray, np.ndarray]:
    """Composite ``text`` near a corner; return (image, truth mask 0/255)."""
    height, width = rgb.shape[:2]
    size = max(8, round(height * height_share))
    layer = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(layer)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font(size))
    margin = round(0.03 * min(width, height))
    x = margin - left if corner[1] == "l" else width - margin - right
    y = margin - top if corner[0] == "t" else height - margin - bottom
    draw.text((x, y), text, fill=255, font=font(size))
    alpha = np.asarray(layer, np.float32)[:, :, None] / 255.0 * opacity
    out = alpha * np.asarray(colour, np.float32) + (1 - alpha) * rgb.astype(np.float32)
    mask = (alpha[:, :, 0] > 0.02).astype(np.uint8) * 255
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), mask


def save(path: Path, rgb: np.ndarray, **params: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, **params)
    return path


SCENES = ["coffee", "astronaut", "chelsea", "rocket", "camera", "coins", "hubble_deep_field"]


def scenes(count: int, width: int = 640, height: int = 480) -> list[np.ndarray]:
    """``count`` different photos: seven scenes, plain and mirrored, shifted crops."""
    images = []
    for i in range(count):
        base = photo(SCENES[i % len(SCENES)], width + 40, height + 40)
        if (i // len(SCENES)) % 2:
            base = base[:, ::-1]
        dx, dy = (i * 7) % 40, (i * 11) % 40
        images.append(np.ascontiguousarray(base[dy:dy + height, dx:dx + width]))
    return images


def _emblem(height: int, width: int) -> np.ndarray:
    """A faint app logo away from the borders (a ring with a bar): alpha in 0..1."""
    layer = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(layer)
    cx, cy = width * 0.69, height * 0.6
    draw.ellipse((cx - 40, cy - 40, cx + 40, cy + 40), outline=255, width=9)
    draw.rectangle((cx - 15, cy - 6, cx + 15, cy + 6), fill=255)
    return np.asarray(layer, np.float32) / 255.0


def with_emblem(images: list[np.ndarray], opacity: float = 0.45
                ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The same faint white emblem at the same place on every photo, as an app stamps it;
    return (images, truth masks). No single photo shows it clearly enough to detect."""
    alpha = _emblem(*images[0].shape[:2])[:, :, None] * opacity
    marked = [np.rint(alpha * 255 + (1 - alpha) * image).astype(np.uint8) for image in images]
    truth = (alpha[:, :, 0] > 0.02).astype(np.uint8) * 255
    return marked, [truth] * len(images)


def with_stamp(rgb: np.ndarray, x: int, y: int, scale: float = 1.0,
               opacity: float = 0.5) -> np.ndarray:
    """A faint white logo (a ring with a bar) and a word beside it, top-left at (x, y),
    ``scale`` times its usual size (155 x 53 px): a mark with detail, as a template
    should have."""
    height, width = rgb.shape[:2]
    layer = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(layer)
    r = 26 * scale
    cx, cy = x + r, y + r
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=255, width=max(2, round(6 * scale)))
    draw.rectangle((cx - 10 * scale, cy - 4 * scale, cx + 10 * scale, cy + 4 * scale), fill=255)
    draw.text((x + 2.3 * r, cy), "lumen", fill=255, font=font(round(28 * scale)), anchor="lm")
    alpha = np.asarray(layer, np.float32)[:, :, None] / 255.0 * opacity
    return np.rint(alpha * 255 + (1 - alpha) * rgb).astype(np.uint8)


def with_lockup(rgb: np.ndarray, text: str = "@sunny_days_88", *, opacity: float = 0.45,
                size: int = 22) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """An app-style mark in the bottom-right corner: a white disc with a hole (2.2 x the font
    size) right before a handle, one blend; return (image, the disc's box)."""
    height, width = rgb.shape[:2]
    layer = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(layer)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font(size))
    side = round(size * 2.2)
    x, y = width - 20 - (side + side // 5 + right - left), height - 20 - side
    cx, cy, r = x + side / 2, y + side / 2, side / 2
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    draw.ellipse((cx - 0.45 * r, cy - 0.45 * r, cx + 0.45 * r, cy + 0.45 * r), fill=0)
    draw.text((x + side + side // 5 - left, cy - (bottom + top) / 2), text, fill=255,
              font=font(size))
    alpha = np.asarray(layer, np.float32)[:, :, None] / 255.0 * opacity
    out = alpha * 255.0 + (1 - alpha) * rgb.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), (x, y, side, side)
