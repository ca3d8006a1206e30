"""Regenerate the sample images in samples/ (watermarked and clean) from scikit-image's photos.

Run from the repository root:  python samples/make_samples.py
The watermarks come from bench/synth.py with fixed seeds, and the encoders get fixed settings,
so running it twice gives byte-identical files (on the same library versions).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "bench"))
import synth  # noqa: E402  (bench/ is not a package; its folder is put on sys.path above)

SEED = 2024
SAVE_ARGS = {  # fixed encoder settings: reproducible bytes, and no metadata to carry dates
    ".jpg": {"quality": 90, "subsampling": "4:2:0", "optimize": False},
    ".png": {"compress_level": 9},
    ".webp": {"quality": 85, "method": 4},
}


def fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Largest centred crop of the target aspect, resized: whole photos, as users have them."""
    h, w = image.shape[:2]
    ch, cw = min(h, round(w * height / width)), min(w, round(h * width / height))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return synth.resize_to(image[y0:y0 + ch, x0:x0 + cw], width, height)


def framed(image: np.ndarray, frac: float = 0.04) -> np.ndarray:
    """A white print-style border: long straight high-contrast edges, and still no watermark."""
    h, w = image.shape[:2]
    b = round(frac * min(h, w))
    out = np.full_like(image, 255)
    out[b:h - b, b:w - b] = synth.resize_to(image, w - 2 * b, h - 2 * b)
    return out


Make = Callable[[np.ndarray, np.random.Generator], synth.Composite]

# name, photo, size, how the mark is made (None: the photo stays clean)
SAMPLES: list[tuple[str, str, tuple[int, int], Make | None]] = [
    ("wm_handle.jpg", "astronaut", (800, 600), lambda im, rng: synth.corner_text(
        im, rng, style="handle", colour=synth.WHITE, opacity=0.9, position="br",
        effect="shadow", size=0.045)),
    ("wm_url_dark.png", "camera", (640, 480), lambda im, rng: synth.corner_text(
        im, rng, style="url", colour=(25, 25, 25), opacity=0.85, position="tr",
        effect="none")),
    ("wm_logo_text.jpg", "coffee", (800, 600), lambda im, rng: synth.logo_text(
        im, rng, opacity=0.8, position="bl")),
    ("wm_bottom_text.webp", "chelsea", (640, 480), lambda im, rng: synth.corner_text(
        im, rng, style="copyright", colour=synth.WHITE, opacity=0.75, position="bc",
        effect="outline", size=0.05)),
    ("clean_coffee.jpg", "coffee", (960, 720), None),
    ("clean_sky.png", "camera", (800, 600), None),
    ("clean_framed.jpg", "rocket", (800, 600), None),
]


def photo(name: str) -> np.ndarray:
    """A photo by name from scikit-image's permissively licensed colour or grayscale sets."""
    return dict(synth.photos(optional=False) + synth.gray_photos())[name]


def main(out: Path = HERE) -> None:
    """Write every sample; each gets its own seed so editing one never shifts the others."""
    for i, (name, source, (w, h), make) in enumerate(SAMPLES):
        image = fit(photo(source), w, h)
        if make is None:
            pixels = framed(image) if "framed" in name else image
        else:
            pixels = make(image, np.random.default_rng(SEED + i)).image
        path = out / name
        Image.fromarray(pixels).save(path, **SAVE_ARGS[path.suffix])
        print(f"{name:22s} {w}x{h} {path.stat().st_size // 1024:5d} KiB  "
              f"{source} ({synth.photo_licence(source)})")


if __name__ == "__main__":
    main()
