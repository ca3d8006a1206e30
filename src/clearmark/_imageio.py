"""The one place where clearmark reads and writes image files.

Everything that touches Pillow, the file system or untrusted image bytes lives here, so the rest
of the package only ever sees one normalised shape: an RGB ``uint8`` array, an optional alpha
plane and an :class:`ImageMeta` that remembers how to write the image back the way it came.

Failures of the input are data, not crashes: every decode problem (empty, truncated, not an
image, too large, unreadable) is mapped here, at this one boundary, to
:class:`~clearmark._errors.ImageError` with the file name and a one-line reason; every write
problem to :class:`~clearmark._errors.OutputError`. Wrong arguments (a float array, a bad shape)
are programming errors and raise ``TypeError``/``ValueError``.

Outputs are written atomically (temp file in the destination folder, fsync, rename), so a run
that is killed half-way never leaves a half-written image that looks finished.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import stat
import struct
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageFile, JpegImagePlugin, TiffImagePlugin, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from clearmark._errors import ImageError, OutputError

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageMeta",
    "LoadLimits",
    "LoadedImage",
    "copy_file_atomic",
    "decode_image",
    "encode_image",
    "load_image",
    "read_dimensions",
    "write_bytes_atomic",
    "write_image",
]

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
)

Source = str | os.PathLike[str] | bytes | np.ndarray | Image.Image

_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
_CORRUPT = "truncated or corrupt image data"
_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION_TAG = 0x0112
_DEFAULT_QUALITY = 90
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_HIGH_DEPTH_GRAY = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Magic numbers of formats people do meet in photo folders but that we do not read, so the
# reason can say "unsupported format: HEIC" instead of "not an image".
_OTHER_MAGIC = (
    (0, b"\x00\x00\x01\x00", "ICO"),
    (0, b"8BPS", "PSD"),
    (0, b"%PDF", "PDF"),
    (4, b"ftypheic", "HEIC"),
    (4, b"ftypheix", "HEIC"),
    (4, b"ftypmif1", "HEIF"),
    (4, b"ftypavif", "AVIF"),
    (0, b"\xff\x0a", "JPEG XL"),
    (0, b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (0, b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (0, b"\xff\x4f\xff\x51", "JPEG 2000"),
    (0, b"II+\x00", "BigTIFF"),
    (0, b"MM\x00+", "BigTIFF"),
    (0, b"qoif", "QOI"),
)
# IJG (libjpeg) standard luminance quantisation table, natural (row-major) order.
_IJG_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
     14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
     18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.int64,
)  # fmt: skip


def _ijg_tables() -> np.ndarray:
    """The luminance table libjpeg writes for each quality 1..100 (row q-1), baseline-clamped."""
    quality = np.arange(1, 101, dtype=np.int64)
    scale = np.where(quality < 50, 5000 // quality, 200 - 2 * quality)
    return np.clip((_IJG_LUMA[None, :] * scale[:, None] + 50) // 100, 1, 255)


_QUALITY_TABLES = _ijg_tables()


@dataclass(frozen=True)
class LoadLimits:
    """Guards against hostile or absurd inputs, checked before any pixel is decoded."""

    max_pixels: int = 100_000_000
    max_bytes: int = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.max_pixels <= 0 or self.max_bytes <= 0:
            raise ValueError(f"limits must be positive, got {self}")


@dataclass(frozen=True)
class ImageMeta:
    """What is needed to write a processed image back like the original.

    ``webp_lossless`` is an addition to the original contract (defaulted, so existing
    constructors still work): without it a lossless WebP would come back lossy.
    """

    format: str
    mode: str
    icc_profile: bytes | None
    exif: bytes | None
    png_text: tuple[tuple[str, str], ...]
    jpeg_quality: int | None
    jpeg_subsampling: int | None
    dpi: tuple[float, float] | None
    webp_lossless: bool = False


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """A decoded image in the one shape the rest of clearmark works on.

    ``rgb`` is H x W x 3 ``uint8`` RGB, C-contiguous, orientation applied; ``alpha`` is H x W
    ``uint8`` or None. Both arrays are read-only: decoding hands them out without a copy and an
    ndarray input is shared, not duplicated, so edit a ``.copy()``. ``eq=False``: comparing
    arrays with ``==`` has no single truth value, so equality is identity (and it hashes).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    meta: ImageMeta
    source: str
    stored_size: tuple[int, int] | None = None  # full (width, height) when decoded reduced

    @property
    def size(self) -> tuple[int, int]:
        """The image's full (width, height), orientation applied, even after a reduced decode."""
        return self.stored_size or (self.rgb.shape[1], self.rgb.shape[0])


# --------------------------------------------------------------------------- loading


def load_image(
    source: Source, *, limits: LoadLimits = LoadLimits(), max_side: int | None = None
) -> LoadedImage:
    """Load a path, encoded bytes, an ndarray or a PIL image into a :class:`LoadedImage`.

    ``max_side`` lets a JPEG decode at a reduced scale (1/2, 1/4, 1/8) whose longer side is
    still at least ``max_side``: detection does not need every pixel. Other formats, and
    arrays, come back at full size.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, Image.Image):
        return _from_pil(source, limits)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_image(bytes(source), limits=limits, max_side=max_side)
    if isinstance(source, (str, os.PathLike)):
        name = os.fsdecode(source)
        data = _read_file(Path(name), name, limits)
        return decode_image(data, source=name, limits=limits, max_side=max_side)
    raise TypeError(f"cannot load an image from {type(source).__name__}")


def decode_image(
    data: bytes,
    *,
    source: str = "<bytes>",
    limits: LoadLimits = LoadLimits(),
    max_side: int | None = None,
) -> LoadedImage:
    """Decode encoded image bytes; every failure becomes an ImageError naming ``source``."""
    if max_side is not None and max_side <= 0:
        raise ValueError(f"max_side must be positive, got {max_side}")
    _check_bytes(len(data), limits, source)
    size = read_dimensions(data)
    if size is not None:
        _check_pixels(size, limits, source)
    try:
        with _quiet_pillow_guard(size):
            return _decode(data, source, limits, max_side)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        reason = "image is over Pillow's decompression-bomb limit (PIL.Image.MAX_IMAGE_PIXELS)"
        raise ImageError(source, reason) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(source, _unidentified_reason(data)) from exc
    except Exception as exc:  # the boundary: any decoder failure is a property of the file
        raise ImageError(source, _CORRUPT) from exc


def _decode(data: bytes, source: str, limits: LoadLimits, max_side: int | None) -> LoadedImage:
    """Open lazily, check the header size, then decode (load) and normalise."""
    im = Image.open(io.BytesIO(data), formats=_FORMATS)
    _check_pixels(im.size, limits, source)
    mode, full = im.mode, im.size
    if max_side is not None:
        _draft(im, max_side)
    im.load()  # decoding happens here; truncation must fail inside the caller's try
    if im.mode in ("LAB", "HSV"):
        raise ImageError(source, f"unsupported colour mode {im.mode}")
    exif, orientation = _exif_and_orientation(im)
    meta = ImageMeta(
        format="JPEG" if im.format == "MPO" else str(im.format),
        mode=mode,
        icc_profile=im.info.get("icc_profile") or None,
        exif=exif,
        png_text=_png_text(im),
        jpeg_quality=_jpeg_quality(im),
        jpeg_subsampling=_jpeg_subsampling(im),
        dpi=_dpi(im.info),
        webp_lossless=im.format == "WEBP" and _webp_is_lossless(data),
    )
    upright = im.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else im
    rgb, alpha = _pixels(upright)
    if orientation in (5, 6, 7, 8):  # a quarter turn swaps width and height
        full = (full[1], full[0])
    return LoadedImage(rgb=rgb, alpha=alpha, meta=meta, source=source, stored_size=full)


def _read_file(path: Path, source: str, limits: LoadLimits) -> bytes:
    """Read a whole file, turning every OS complaint into a one-line ImageError."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise ImageError(source, "is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise ImageError(source, "not a regular file")
        _check_bytes(info.st_size, limits, source)
        with path.open("rb") as f:
            return f.read()
    except FileNotFoundError as exc:
        raise ImageError(source, "file not found") from exc
    except IsADirectoryError as exc:
        raise ImageError(source, "is a directory, not a file") from exc
    except PermissionError as exc:
        raise ImageError(source, "cannot read file: permission denied") from exc
    except OSError as exc:
        raise ImageError(source, f"cannot read file: {_os_reason(exc)}") from exc


def _check_bytes(size: int, limits: LoadLimits, source: str) -> None:
    """Refuse empty files and files too big to be worth reading into memory."""
    if size == 0:
        raise ImageError(source, "empty file (0 bytes)")
    if size > limits.max_bytes:
        mib = 1024 * 1024
        reason = f"file is {size / mib:.1f} MiB, over the {limits.max_bytes / mib:g} MiB limit"
        raise ImageError(source, reason)


def _check_pixels(size: tuple[int, int], limits: LoadLimits, source: str) -> None:
    """Refuse decompression bombs from the header alone, before a pixel is allocated."""
    width, height = size
    if width * height > limits.max_pixels:
        megapixels = width * height / 1e6
        reason = (
            f"image is {width}x{height} = {megapixels:.1f} MP, "
            f"over the {limits.max_pixels / 1e6:g} MP limit"
        )
        raise ImageError(source, reason)


@contextlib.contextmanager
def _quiet_pillow_guard(size: tuple[int, int] | None) -> Iterator[None]:
    """Keep Pillow's own bomb warning from leaking out while our limit is in charge.

    Pillow warns above ``Image.MAX_IMAGE_PIXELS`` (its limit, not the caller's). When our
    header sniff already shows the image is below it, nothing global is touched; otherwise
    (rare: huge or unsniffable files) the warning is filtered for this call. Pillow's hard
    error at twice its limit is translated by the caller.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit is None or (size is not None and size[0] * size[1] <= limit):
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _draft(im: ImageFile.ImageFile, max_side: int) -> None:
    """Ask libjpeg for a DCT-scaled decode whose longer side stays >= ``max_side``."""
    width, height = im.size
    longest = max(width, height)
    if im.format not in ("JPEG", "MPO") or longest <= max_side:
        return
    wanted = (-(-width * max_side // longest), -(-height * max_side // longest))
    im.draft(None, wanted)


def _unidentified_reason(data: bytes) -> str:
    """Name the format when Pillow gave up: ours but broken, someone else's, or not an image."""
    if _sniff_format(data) is not None:
        return _CORRUPT
    for offset, magic, name in _OTHER_MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return f"unsupported format: {name}"
    return "not an image (unrecognised format)"


# --------------------------------------------------------------------------- metadata


def _exif_and_orientation(im: Image.Image) -> tuple[bytes | None, int]:
    """The EXIF block to keep (orientation reset to 1) and the orientation to apply."""
    raw = im.info.get("exif")
    if isinstance(raw, bytes) and raw:
        block = raw if raw.startswith(_EXIF_HEADER) else _EXIF_HEADER + raw
        return _reset_orientation(block)
    if isinstance(im, TiffImagePlugin.TiffImageFile):
        return None, int(im.tag_v2.get(_ORIENTATION_TAG, 1))
    return None, 1


def _reset_orientation(block: bytes) -> tuple[bytes, int]:
    """Patch Orientation to 1 in place, so maker notes and offsets stay byte-exact.

    Re-serialising with Pillow would rebuild the EXIF and can break maker-note offsets;
    patching two bytes cannot. An unparsable block is kept as is, with orientation 1.
    """
    try:
        order, entries = _ifd0(block[len(_EXIF_HEADER) :])
    except (struct.error, IndexError, ValueError):
        return block, 1
    for pos, tag, kind, value in entries:
        if tag == _ORIENTATION_TAG and value in _TRANSPOSE:
            start = len(_EXIF_HEADER) + pos + 8
            one = struct.pack(order + ("H" if kind == 3 else "I"), 1)
            return block[:start] + one + block[start + len(one) :], value
    return block, 1


def _ifd0(tiff: bytes) -> tuple[str, list[tuple[int, int, int, int]]]:
    """Byte order and (entry offset, tag, type, value) of IFD0's SHORT/LONG entries."""
    order = {b"II": "<", b"MM": ">"}[tiff[:2]]
    (offset,) = struct.unpack(order + "I", tiff[4:8])
    (count,) = struct.unpack(order + "H", tiff[offset : offset + 2])
    entries = []
    for pos in range(offset + 2, offset + 2 + 12 * count, 12):
        tag, kind = struct.unpack(order + "HH", tiff[pos : pos + 4])
        if kind in (3, 4):
            fmt = order + ("H" if kind == 3 else "I")
            (value,) = struct.unpack(fmt, tiff[pos + 8 : pos + 8 + struct.calcsize(fmt)])
            entries.append((pos, tag, kind, value))
    return order, entries


def _png_text(im: Image.Image) -> tuple[tuple[str, str], ...]:
    """PNG tEXt/zTXt/iTXt chunks in file order (Pillow keeps them in an ordered dict)."""
    text = getattr(im, "text", None) if im.format == "PNG" else None
    return tuple((str(key), str(value)) for key, value in (text or {}).items())


def _jpeg_quality(im: Image.Image) -> int | None:
    """Estimate the IJG quality from the luminance table: the quality whose table is closest.

    Ties go to the higher quality, so re-encoding never loses more than the source did.
    """
    tables = getattr(im, "quantization", None)
    if not tables or len(tables.get(0, ())) != 64:
        return None
    distance = np.abs(_QUALITY_TABLES - np.asarray(tables[0], dtype=np.int64)).sum(axis=1)
    return int(100 - np.argmin(distance[::-1]))


def _jpeg_subsampling(im: Image.Image) -> int | None:
    """Pillow's subsampling code of a colour JPEG, None when unknown or not applicable."""
    code = JpegImagePlugin.get_sampling(im)
    return code if code >= 0 else None


def _dpi(info: dict[str | tuple[int, int], Any]) -> tuple[float, float] | None:
    """Resolution as two positive floats, or None (absent or meaningless)."""
    try:
        x, y = (float(v) for v in info["dpi"])
    except (KeyError, TypeError, ValueError):
        return None
    return (x, y) if x > 0 and y > 0 else None


def _webp_is_lossless(data: bytes) -> bool:
    """Whether the (first frame's) bitstream is VP8L; Pillow does not tell."""
    pos = 12
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if kind in (b"VP8L", b"VP8 "):
            return kind == b"VP8L"
        pos += 8 + (16 if kind == b"ANMF" else size + (size & 1))
    return False


# --------------------------------------------------------------------------- pixels


def _pixels(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Normalise any Pillow mode to (RGB uint8, alpha uint8 or None), read-only."""
    if im.mode in _HIGH_DEPTH_GRAY:
        gray = _to_8bit(np.asarray(im))
        return _readonly(np.repeat(gray[:, :, None], 3, axis=2)), None
    if im.has_transparency_data:
        rgba = np.asarray(im if im.mode == "RGBA" else im.convert("RGBA"))
        rgb = _readonly(np.ascontiguousarray(rgba[:, :, :3]))
        return rgb, _readonly(np.ascontiguousarray(rgba[:, :, 3]))
    return np.asarray(im if im.mode == "RGB" else im.convert("RGB")), None


def _to_8bit(values: np.ndarray) -> np.ndarray:
    """Scale 16-bit (or 32-bit int, or float) gray to 8 bit by rounding, never by clipping.

    Integers are taken as 0..65535 (65535 -> 255, 32768 -> 128); floats as 0..1 when they fit
    there, else as 0..255.
    """
    if values.dtype.kind == "f":
        values = np.nan_to_num(values)
        scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
        return np.clip(values * scale + 0.5, 0, 255).astype(np.uint8)
    wide = np.clip(values, 0, 65535).astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _readonly(array: np.ndarray) -> np.ndarray:
    """Mark an array read-only, so every LoadedImage array behaves the same way."""
    array.flags.writeable = False
    return array


def _from_array(array: np.ndarray) -> LoadedImage:
    """Accept an RGB, RGBA or gray uint8 array (the ML convention); share, never copy RGB."""
    if array.dtype != np.uint8:
        raise TypeError(
            f"image arrays must be uint8, got {array.dtype}; convert first, e.g. "
            "(x * 255).round().astype(np.uint8) for floats in 0..1"
        )
    shape = array.shape
    if array.ndim == 3 and shape[2] in (3, 4):
        rgb = array[:, :, :3] if shape[2] == 4 else array
        alpha = array[:, :, 3] if shape[2] == 4 else None
        mode = "RGBA" if alpha is not None else "RGB"
    elif array.ndim == 2:
        rgb, alpha, mode = np.repeat(array[:, :, None], 3, axis=2), None, "L"
    else:
        raise ValueError(
            f"image arrays must be H x W x 3 (RGB), H x W x 4 (RGBA) or H x W (gray), "
            f"got shape {shape}"
        )
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"image array is empty (shape {shape})")
    rgb = _readonly(np.ascontiguousarray(rgb).view())
    alpha = None if alpha is None else _readonly(np.ascontiguousarray(alpha))
    return LoadedImage(rgb=rgb, alpha=alpha, meta=_plain_meta(mode, {}), source="<array>")


def _from_pil(im: Image.Image, limits: LoadLimits) -> LoadedImage:
    """Take a PIL image as it is: its pixels are what the caller sees, so no EXIF rotation."""
    source = "<PIL image>"
    _check_pixels(im.size, limits, source)
    try:
        im.load()
        rgb, alpha = _pixels(im)
    except Exception as exc:  # a lazily opened PIL image can still fail to decode
        raise ImageError(source, _CORRUPT) from exc
    return LoadedImage(rgb=rgb, alpha=alpha, meta=_plain_meta(im.mode, im.info), source=source)


def _plain_meta(mode: str, info: dict[str | tuple[int, int], Any]) -> ImageMeta:
    """Meta for in-memory inputs: written as PNG, keeping only a profile and resolution."""
    return ImageMeta(
        format="PNG",
        mode=mode,
        icc_profile=info.get("icc_profile") or None,
        exif=None,
        png_text=(),
        jpeg_quality=None,
        jpeg_subsampling=None,
        dpi=_dpi(info),
    )


# --------------------------------------------------------------------------- header sniffing


def _sniff_format(data: bytes) -> str | None:
    """Which of our formats the magic number claims (cheap, no decoding)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data.startswith(b"BM"):
        return "BMP"
    return None


def read_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a JPEG/PNG/GIF/WebP/TIFF/BMP, or None.

    Pure byte parsing, so a decompression bomb is refused before Pillow sees it.
    """
    reader = _SIZE_READERS.get(_sniff_format(data) or "")
    if reader is None:
        return None
    try:
        return reader(data)
    except (struct.error, IndexError, KeyError, ValueError):
        return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    """IHDR is always the first chunk."""
    if data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _gif_size(data: bytes) -> tuple[int, int] | None:
    """The logical screen size, which is what Pillow reports."""
    width, height = struct.unpack("<HH", data[6:10])
    return width, height


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    """OS/2 core headers use 16-bit sizes; later ones 32-bit, height negative for top-down."""
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:
        width, height = struct.unpack("<HH", data[18:22])
        return width, height
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """Lossy (VP8), lossless (VP8L) and extended (VP8X canvas) headers."""
    kind = data[12:16]
    if kind == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L":
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the marker segments to the first start-of-frame."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF or marker in _JPEG_STANDALONE:
            pos += 1 if marker == 0xFF else 2
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        if marker == 0xDA:
            return None
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """ImageWidth (256) and ImageLength (257) of the first IFD, i.e. the first page."""
    _, entries = _ifd0(data)
    tags = {tag: value for _, tag, _, value in entries}
    return (tags[256], tags[257]) if 256 in tags and 257 in tags else None


_SIZE_READERS: dict[str, Callable[[bytes], tuple[int, int] | None]] = {
    "PNG": _png_size,
    "GIF": _gif_size,
    "BMP": _bmp_size,
    "WEBP": _webp_size,
    "JPEG": _jpeg_size,
    "TIFF": _tiff_size,
}


# --------------------------------------------------------------------------- encoding


def encode_image(rgb: np.ndarray, meta: ImageMeta, *, alpha: np.ndarray | None = None) -> bytes:
    """Encode pixels in the original's format, keeping what the original carried.

    Alpha is kept where the format has it (PNG, WebP, TIFF; GIF as transparency) and
    dropped for JPEG and BMP (Pillow cannot read a BMP alpha back). Grayscale originals stay
    grayscale while the pixels are still gray (GIF needs RGBA to quantise transparency).
    """
    _check_pixels_arg(rgb, alpha)
    fmt = meta.format.upper()
    if fmt not in _SAVE_OPTIONS:
        raise ValueError(f"cannot write format {meta.format!r}; expected one of {_FORMATS}")
    alpha = alpha if fmt in ("PNG", "WEBP", "TIFF", "GIF") else None
    gray = meta.mode in _GRAY_MODES and _is_gray(rgb) and (alpha is None or fmt != "GIF")
    im = _pil_image(rgb, alpha, gray)
    options = _SAVE_OPTIONS[fmt](meta, im)
    if meta.icc_profile and fmt != "GIF" and _icc_fits(meta.icc_profile, im.mode):
        options["icc_profile"] = meta.icc_profile
    if meta.exif and fmt in ("JPEG", "PNG", "WEBP"):
        options["exif"] = meta.exif
    if meta.dpi and fmt in ("JPEG", "PNG", "TIFF", "BMP"):
        options["dpi"] = meta.dpi
    buffer = io.BytesIO()
    try:
        im.save(buffer, format=fmt, **options)
    except (OSError, ValueError) as exc:
        raise OutputError(f"<{fmt} encoder>", f"cannot encode: {exc}") from exc
    return buffer.getvalue()


def _check_pixels_arg(rgb: np.ndarray, alpha: np.ndarray | None) -> None:
    """Reject arrays that are not what LoadedImage hands out (programming errors)."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise TypeError(f"rgb must be a uint8 ndarray, got {getattr(rgb, 'dtype', type(rgb))}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be H x W x 3, got shape {rgb.shape}")
    if alpha is None:
        return
    if not isinstance(alpha, np.ndarray) or alpha.dtype != np.uint8:
        raise TypeError(f"alpha must be a uint8 ndarray, got {getattr(alpha, 'dtype', alpha)}")
    if alpha.shape != rgb.shape[:2]:
        raise ValueError(f"alpha must be {rgb.shape[:2]}, got shape {alpha.shape}")


def _is_gray(rgb: np.ndarray) -> bool:
    """R == G == B everywhere: a grayscale original can then be written back as gray."""
    return bool(np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and
                np.array_equal(rgb[:, :, 0], rgb[:, :, 2]))  # fmt: skip


def _pil_image(rgb: np.ndarray, alpha: np.ndarray | None, gray: bool) -> Image.Image:
    """Build the L/LA/RGB/RGBA image to save."""
    im = Image.fromarray(np.ascontiguousarray(rgb[:, :, 0]) if gray else rgb)
    if alpha is not None:
        im.putalpha(Image.fromarray(alpha))
    return im


def _icc_fits(profile: bytes, mode: str) -> bool:
    """A profile only describes pixels of its own colour space (bytes 16..20 of the header).

    A CMYK original's profile must not be attached to the RGB we write, nor an RGB profile
    to a grayscale output.
    """
    space = profile[16:20]
    return space == (b"GRAY" if mode in ("L", "LA") else b"RGB ")


def _jpeg_options(meta: ImageMeta, im: Image.Image) -> dict[str, Any]:
    """Same quality and chroma subsampling as the source, so quality does not drift."""
    options: dict[str, Any] = {"quality": meta.jpeg_quality or _DEFAULT_QUALITY}
    if meta.jpeg_subsampling is not None and im.mode == "RGB":
        options["subsampling"] = meta.jpeg_subsampling
    return options


def _png_options(meta: ImageMeta, im: Image.Image) -> dict[str, Any]:
    """Text chunks back in their original order."""
    if not meta.png_text:
        return {}
    info = PngInfo()
    for key, value in meta.png_text:
        info.add_text(key, value)
    return {"pnginfo": info}


def _webp_options(meta: ImageMeta, im: Image.Image) -> dict[str, Any]:
    """Lossless stays lossless; lossy sources get a high fixed quality."""
    return {"lossless": True} if meta.webp_lossless else {"quality": _DEFAULT_QUALITY}


def _tiff_options(meta: ImageMeta, im: Image.Image) -> dict[str, Any]:
    """Lossless LZW: smaller than raw and readable everywhere."""
    return {"compression": "tiff_lzw"}


def _no_options(meta: ImageMeta, im: Image.Image) -> dict[str, Any]:
    """BMP and GIF need nothing (Pillow quantises GIF, keeping transparency)."""
    return {}


_SAVE_OPTIONS: dict[str, Callable[[ImageMeta, Image.Image], dict[str, Any]]] = {
    "JPEG": _jpeg_options,
    "PNG": _png_options,
    "WEBP": _webp_options,
    "TIFF": _tiff_options,
    "BMP": _no_options,
    "GIF": _no_options,
}


# --------------------------------------------------------------------------- atomic writes


def write_image(
    path: str | os.PathLike[str],
    rgb: np.ndarray,
    meta: ImageMeta,
    *,
    alpha: np.ndarray | None = None,
) -> None:
    """Encode and write atomically: the destination is either the old file or the new one."""
    try:
        data = encode_image(rgb, meta, alpha=alpha)
    except OutputError as exc:
        raise OutputError(os.fsdecode(path), exc.reason) from exc
    write_bytes_atomic(path, data)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, durable: bool = True
                       ) -> None:
    """Write bytes via a temp file in the same folder, fsync, rename; create parent folders.

    ``durable=False`` skips the fsyncs (still all or nothing): for files that can be made
    again, such as review thumbnails, where two fsyncs would cost more than the file.
    """
    with _atomic_output(path, durable=durable) as (out, _):
        out.write(data)


def copy_file_atomic(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy byte for byte with the same atomic protocol, keeping mtime and permissions."""
    with contextlib.ExitStack() as stack:
        try:
            source = stack.enter_context(Path(src).open("rb"))
        except OSError as exc:
            reason = f"cannot read {os.fsdecode(src)}: {_os_reason(exc)}"
            raise OutputError(os.fsdecode(dst), reason) from exc
        out, temp = stack.enter_context(_atomic_output(dst))
        shutil.copyfileobj(source, out, 1 << 20)
        out.flush()  # before copystat: a later flush would bump the copied mtime
        shutil.copystat(src, temp)


@contextlib.contextmanager
def _atomic_output(path: str | os.PathLike[str], *, durable: bool = True
                   ) -> Iterator[tuple[BinaryIO, Path]]:
    """Yield (file, temp path); publish by rename only if the body and fsync succeed.

    On any failure, including KeyboardInterrupt, the temp file is removed and the destination
    is untouched; OS errors become OutputError.
    """
    shown, dest = os.fsdecode(path), Path(path)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        temp, fd = _create_temp(dest)
    except OSError as exc:
        raise OutputError(shown, _os_reason(exc)) from exc
    try:
        with os.fdopen(fd, "wb") as out:
            yield out, temp
            out.flush()
            if durable:
                os.fsync(out.fileno())
        os.replace(temp, dest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        if isinstance(exc, OSError):
            raise OutputError(shown, _os_reason(exc)) from exc
        raise
    if durable:
        _fsync_dir(dest.parent)


def _create_temp(dest: Path) -> tuple[Path, int]:
    """Create ``.{name}.{random}.clearmark-tmp`` next to ``dest``, with umask permissions.

    Not ``tempfile.mkstemp``: its 0600 mode would end up on the published file.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temp = dest.with_name(f".{dest.name[:200]}.{secrets.token_hex(4)}.clearmark-tmp")
        with contextlib.suppress(FileExistsError):
            return temp, os.open(temp, flags, 0o666)
    raise FileExistsError(f"no free temp name next to {dest}")


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable where the platform allows opening a folder (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    with contextlib.suppress(OSError):
        os.fsync(fd)
    os.close(fd)


def _os_reason(exc: OSError) -> str:
    """A short lower-case reason ("permission denied", "no space left on device")."""
    return (exc.strerror or str(exc)).lower()
