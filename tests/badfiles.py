"""Generators for the awkward-input corpus shared by the test suite (no committed binaries).

Each ``write_*`` function creates one file in ``folder`` and returns its path.
:func:`make_bad_corpus` writes them all; :data:`BAD` maps the names that must fail to the
reason clearmark reports, and :data:`GOOD` lists the awkward-but-valid ones that must load.
A CLI test can point ``clearmark detect`` at the folder and check one line per file.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# Expected outcome per corpus name: a substring of the ImageError reason...
BAD: dict[str, str] = {
    "zero_byte": "empty file (0 bytes)",
    "truncated_jpeg": "truncated or corrupt image data",
    "text_as_jpg": "not an image (unrecognised format)",
    "png_bomb": "image is 50000x50000 = 2500.0 MP, over the 100 MP limit",
}
# ...or valid files that must load.
GOOD: frozenset[str] = frozenset({"png_16bit", "cmyk_jpeg", "rotated_jpeg", "animated_gif"})

GRAY16_VALUES = (0, 257, 32768, 65535)  # one column each in png_16bit ...
GRAY16_EXPECTED = (0, 1, 128, 255)  # ... and what they must scale to in 8 bit
CMYK_RED = (0, 255, 255, 0)  # C, M, Y, K of cmyk_jpeg: pure red on screen
ROTATED_STORED = (32, 48)  # rotated_jpeg stored as H x W, EXIF orientation 6 (turn 90° CW)
ANIMATED_FIRST = (255, 0, 0)  # first frame colour of animated_gif


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk with a valid CRC, for hand-made PNGs Pillow would refuse to write."""
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_bytes(width: int, height: int, depth: int, colour: int, idat: bytes) -> bytes:
    """A minimal PNG: signature, IHDR, one IDAT (already compressed), IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def write_zero_byte(folder: Path) -> Path:
    """An empty file with an image suffix (interrupted downloads look like this)."""
    path = folder / "empty.jpg"
    path.write_bytes(b"")
    return path


def write_truncated_jpeg(folder: Path) -> Path:
    """A noisy JPEG cut in the middle of its scan data."""
    noise = np.random.default_rng(7).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    full = folder / "full.tmp"
    Image.fromarray(noise).save(full, "JPEG", quality=90)
    data = full.read_bytes()
    full.unlink()
    path = folder / "truncated.jpg"
    path.write_bytes(data[: len(data) * 6 // 10])
    return path


def write_text_as_jpg(folder: Path) -> Path:
    """A text file wearing a .jpg suffix."""
    path = folder / "notes.jpg"
    path.write_text("these are not the pixels you are looking for\n")
    return path


def write_png_bomb(folder: Path, width: int = 50_000, height: int = 50_000) -> Path:
    """A PNG whose header claims ``width`` x ``height`` RGB, with a tiny IDAT."""
    path = folder / "bomb.png"
    path.write_bytes(png_bytes(width, height, 8, 2, zlib.compress(b"\x00" * 64)))
    return path


def write_16bit_png(folder: Path) -> Path:
    """A 16-bit grayscale PNG, 4 rows x one column per :data:`GRAY16_VALUES`."""
    row = np.array(GRAY16_VALUES, dtype=">u2").tobytes()
    raw = b"".join(b"\x00" + row for _ in range(4))
    path = folder / "gray16.png"
    path.write_bytes(png_bytes(len(GRAY16_VALUES), 4, 16, 0, zlib.compress(raw)))
    return path


def write_cmyk_jpeg(folder: Path) -> Path:
    """A CMYK JPEG as Photoshop writes them (Adobe APP14, inverted), filled with red."""
    path = folder / "cmyk.jpg"
    Image.new("CMYK", (24, 16), CMYK_RED).save(path, "JPEG", quality=95)
    return path


def write_rotated_jpeg(folder: Path, orientation: int = 6) -> Path:
    """A landscape JPEG, red 16x16 block at the stored top-left, with EXIF ``orientation``.

    With orientation 6 the displayed image is portrait and the block is at the top-right.
    """
    stored = np.full((*ROTATED_STORED, 3), 128, dtype=np.uint8)
    stored[:16, :16] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "clearmark-test"
    path = folder / "rotated.jpg"
    Image.fromarray(stored).save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


def write_animated_gif(folder: Path) -> Path:
    """Three frames, red then green then blue: only the first must be seen."""
    frames = [Image.new("RGB", (20, 12), c) for c in (ANIMATED_FIRST, (0, 255, 0), (0, 0, 255))]
    path = folder / "animated.gif"
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return path


def make_bad_corpus(folder: Path) -> dict[str, Path]:
    """Write the whole corpus into ``folder`` (created if needed); name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "zero_byte": write_zero_byte(folder),
        "truncated_jpeg": write_truncated_jpeg(folder),
        "text_as_jpg": write_text_as_jpg(folder),
        "png_bomb": write_png_bomb(folder),
        "png_16bit": write_16bit_png(folder),
        "cmyk_jpeg": write_cmyk_jpeg(folder),
        "rotated_jpeg": write_rotated_jpeg(folder),
        "animated_gif": write_animated_gif(folder),
    }
