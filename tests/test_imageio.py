"""Tests for clearmark._imageio: the one place images are read and written.

Every input is generated in tmp_path; the awkward-file corpus comes from badfiles.py.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from clearmark import _imageio
from clearmark._errors import ImageError, OutputError
from clearmark._imageio import (
    IMAGE_SUFFIXES,
    ImageMeta,
    LoadedImage,
    LoadLimits,
    copy_file_atomic,
    decode_image,
    encode_image,
    load_image,
    read_dimensions,
    write_bytes_atomic,
    write_image,
)

from badfiles import (
    ANIMATED_FIRST,
    BAD,
    GOOD,
    GRAY16_EXPECTED,
    ROTATED_STORED,
    png_bytes,
)

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif",
          "GIF": ".gif"}  # fmt: skip


def smooth(h: int = 48, w: int = 64) -> np.ndarray:
    """A photo-like gradient: compresses well and survives lossy codecs recognisably."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h)], -1).astype(np.uint8)


def noise(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


def save(im: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **options)
    return buffer.getvalue()


def exif_block(orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "clearmark-test"
    if orientation is not None:
        exif[0x0112] = orientation
    return exif.tobytes()


def parse_exif(block: bytes | None) -> Image.Exif:
    assert block is not None
    exif = Image.Exif()
    exif.load(block)
    return exif


def meta_for(fmt: str, mode: str = "RGB", **changes: Any) -> ImageMeta:
    return dataclasses.replace(ImageMeta(fmt, mode, None, None, (), None, None, None), **changes)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    ("fmt", "tolerance"),
    [("PNG", 0), ("BMP", 0), ("TIFF", 0), ("WEBP", 12), ("JPEG", 12), ("GIF", 40)],
)
def test_round_trip_keeps_format_size_and_pixels(tmp_path: Path, fmt: str, tolerance: int) -> None:
    path = tmp_path / f"in{SUFFIX[fmt]}"
    Image.fromarray(smooth()).save(path, fmt)
    loaded = load_image(path)
    out = tmp_path / "out" / path.name
    write_image(out, loaded.rgb, loaded.meta, alpha=loaded.alpha)
    again = load_image(out)
    assert (loaded.meta.format, again.meta.format) == (fmt, fmt)
    assert loaded.rgb.shape == again.rgb.shape == (48, 64, 3)
    assert loaded.alpha is None and again.alpha is None
    assert np.abs(again.rgb.astype(int) - loaded.rgb).max() <= tolerance
    assert np.abs(loaded.rgb.astype(int) - smooth()).mean() <= tolerance


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "GIF"])
def test_alpha_round_trip(tmp_path: Path, fmt: str) -> None:
    rgba = np.dstack([smooth(), np.tile(np.linspace(10, 255, 64, dtype=np.uint8), (48, 1))])
    if fmt == "GIF":  # GIF transparency is on/off per pixel
        rgba[:, :, 3] = np.where(rgba[:, :, 3] > 128, 255, 0)
    path = tmp_path / f"a{SUFFIX[fmt]}"
    Image.fromarray(rgba).save(path, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    loaded = load_image(path)
    assert loaded.alpha is not None
    np.testing.assert_array_equal(loaded.alpha, rgba[:, :, 3])
    write_image(path, loaded.rgb, loaded.meta, alpha=loaded.alpha)
    again = load_image(path)
    assert again.alpha is not None
    np.testing.assert_array_equal(again.alpha, rgba[:, :, 3])


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF"])
def test_icc_profile_survives(tmp_path: Path, fmt: str) -> None:
    loaded = decode_image(save(Image.fromarray(smooth()), fmt, icc_profile=SRGB))
    assert loaded.meta.icc_profile == SRGB
    again = decode_image(encode_image(loaded.rgb, loaded.meta))
    assert again.meta.icc_profile == SRGB


def test_profile_of_another_colour_space_is_not_attached() -> None:
    cmyk_profile = SRGB[:16] + b"CMYK" + SRGB[20:]  # only the header's colour space matters
    data = encode_image(smooth(), meta_for("JPEG", "CMYK", icc_profile=cmyk_profile))
    assert decode_image(data).meta.icc_profile is None


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_kept_with_orientation_reset(fmt: str) -> None:
    stored = noise(8, 12)
    loaded = decode_image(save(Image.fromarray(stored), fmt, exif=exif_block(6), quality=95))
    assert loaded.rgb.shape == (12, 8, 3)  # rotated upright
    exif = parse_exif(loaded.meta.exif)
    assert (exif[0x010F], exif[0x0112]) == ("clearmark-test", 1)
    again = decode_image(encode_image(loaded.rgb, loaded.meta))
    assert again.rgb.shape == (12, 8, 3)  # not rotated a second time
    assert parse_exif(again.meta.exif)[0x010F] == "clearmark-test"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "BMP"])
def test_dpi_survives(fmt: str) -> None:
    loaded = decode_image(save(Image.fromarray(smooth()), fmt, dpi=(300, 150)))
    assert loaded.meta.dpi == pytest.approx((300, 150), abs=0.1)
    again = decode_image(encode_image(loaded.rgb, loaded.meta))
    assert again.meta.dpi == pytest.approx((300, 150), abs=0.1)


def test_png_text_chunks_survive_in_order() -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Title", "a lake")
    info.add_itxt("Comment", "été ✓ 水")
    info.add_text("Software", "clearmark tests", zip=True)
    loaded = decode_image(save(Image.fromarray(smooth()), "PNG", pnginfo=info))
    expected = (("Title", "a lake"), ("Comment", "été ✓ 水"), ("Software", "clearmark tests"))
    assert loaded.meta.png_text == expected
    assert decode_image(encode_image(loaded.rgb, loaded.meta)).meta.png_text == expected


@pytest.mark.parametrize("quality", [60, 75, 85, 92, 95])
def test_jpeg_quality_is_estimated_and_kept(quality: int) -> None:
    loaded = decode_image(save(Image.fromarray(smooth()), "JPEG", quality=quality))
    assert loaded.meta.jpeg_quality is not None
    assert abs(loaded.meta.jpeg_quality - quality) <= 2
    again = decode_image(encode_image(loaded.rgb, loaded.meta))
    assert again.meta.jpeg_quality is not None
    assert abs(again.meta.jpeg_quality - loaded.meta.jpeg_quality) <= 2


@pytest.mark.parametrize("subsampling", [0, 1, 2])
def test_jpeg_subsampling_is_kept(subsampling: int) -> None:
    loaded = decode_image(save(Image.fromarray(smooth()), "JPEG", subsampling=subsampling))
    assert loaded.meta.jpeg_subsampling == subsampling
    again = decode_image(encode_image(loaded.rgb, loaded.meta))
    assert again.meta.jpeg_subsampling == subsampling


@pytest.mark.parametrize("lossless", [True, False])
def test_webp_stays_lossless_or_lossy(lossless: bool) -> None:
    rgb = noise(16, 16)
    loaded = decode_image(save(Image.fromarray(rgb), "WEBP", lossless=lossless))
    assert loaded.meta.webp_lossless is lossless
    data = encode_image(loaded.rgb, loaded.meta)
    assert (b"VP8L" in data[:40]) is lossless
    if lossless:
        np.testing.assert_array_equal(decode_image(data).rgb, rgb)


def test_grayscale_stays_gray_until_coloured() -> None:
    loaded = decode_image(save(Image.fromarray(smooth()[:, :, 0]), "PNG"))
    assert loaded.meta.mode == "L" and loaded.rgb.shape == (48, 64, 3)
    assert Image.open(io.BytesIO(encode_image(loaded.rgb, loaded.meta))).mode == "L"
    coloured = loaded.rgb.copy()
    coloured[0, 0] = (255, 0, 0)
    assert Image.open(io.BytesIO(encode_image(coloured, loaded.meta))).mode == "RGB"


def test_palette_with_transparency_becomes_alpha_and_writes_rgba() -> None:
    index = np.zeros((6, 8), dtype=np.uint8)
    index[:, 4:] = 1
    im = Image.fromarray(index).convert("P")
    im.putpalette([0, 0, 255, 255, 255, 0] + [0] * 762)
    loaded = decode_image(save(im, "PNG", transparency=1))
    assert loaded.meta.mode == "P" and loaded.alpha is not None
    assert (loaded.alpha[:, :4] == 255).all() and (loaded.alpha[:, 4:] == 0).all()
    assert tuple(loaded.rgb[0, 0]) == (0, 0, 255)
    written = Image.open(io.BytesIO(encode_image(loaded.rgb, loaded.meta, alpha=loaded.alpha)))
    assert written.mode == "RGBA"


# --------------------------------------------------------------------------- orientation

UPRIGHT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda s: s,
    2: np.fliplr,
    3: lambda s: np.rot90(s, 2),
    4: np.flipud,
    5: lambda s: s.transpose(1, 0, 2),
    6: lambda s: np.rot90(s, -1),
    7: lambda s: np.rot90(s, 2).transpose(1, 0, 2),
    8: lambda s: np.rot90(s, 1),
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied(orientation: int) -> None:
    stored = noise(4, 6)
    loaded = decode_image(save(Image.fromarray(stored), "PNG", exif=exif_block(orientation)))
    np.testing.assert_array_equal(loaded.rgb, UPRIGHT[orientation](stored))
    assert loaded.rgb.flags.c_contiguous
    assert parse_exif(loaded.meta.exif).get(0x0112) == 1


def test_tiff_orientation_tag_is_applied() -> None:
    stored = noise(4, 6)
    loaded = decode_image(save(Image.fromarray(stored), "TIFF", tiffinfo={0x0112: 8}))
    np.testing.assert_array_equal(loaded.rgb, UPRIGHT[8](stored))


@pytest.mark.parametrize(("orientation", "corner"), [(6, "top-right"), (8, "bottom-left")])
def test_rotated_jpeg_marker_lands_where_a_viewer_shows_it(
    tmp_path: Path, orientation: int, corner: str
) -> None:
    from badfiles import write_rotated_jpeg

    loaded = load_image(write_rotated_jpeg(tmp_path, orientation))
    assert loaded.rgb.shape[:2] == ROTATED_STORED[::-1]  # portrait now
    rows = slice(0, 8) if corner.startswith("top") else slice(-8, None)
    cols = slice(-8, None) if corner.endswith("right") else slice(0, 8)
    assert loaded.rgb[rows, cols, 0].mean() > 220 and loaded.rgb[rows, cols, 1].mean() < 40
    assert loaded.rgb[:8, :8, 1].mean() > 100  # the displayed top-left is plain gray


# --------------------------------------------------------------------------- awkward but valid


def test_corpus_valid_files_load(bad_corpus: dict[str, Path]) -> None:
    for name in GOOD:
        assert isinstance(load_image(bad_corpus[name]), LoadedImage), name


def test_16_bit_gray_is_scaled_not_clipped(bad_corpus: dict[str, Path]) -> None:
    loaded = load_image(bad_corpus["png_16bit"])
    assert loaded.meta.mode.startswith("I;16")
    assert tuple(loaded.rgb[0, :, 0]) == GRAY16_EXPECTED
    assert (loaded.rgb[..., 0] == loaded.rgb[..., 2]).all()
    assert Image.open(io.BytesIO(encode_image(loaded.rgb, loaded.meta))).mode == "L"


def test_16_bit_rgb_png_is_scaled() -> None:
    row = np.array([[65535, 32768, 0]], dtype=">u2").tobytes()
    loaded = decode_image(png_bytes(1, 1, 16, 2, zlib.compress(b"\x00" + row)))
    assert tuple(loaded.rgb[0, 0]) == (255, 128, 0)


def test_adobe_cmyk_jpeg_gives_the_right_colour(bad_corpus: dict[str, Path]) -> None:
    path = bad_corpus["cmyk_jpeg"]
    assert b"Adobe" in path.read_bytes()  # the inverted-CMYK flavour
    loaded = load_image(path)
    assert loaded.meta.mode == "CMYK"
    assert np.abs(loaded.rgb.astype(int) - (255, 0, 0)).max() <= 4
    again = decode_image(encode_image(loaded.rgb, loaded.meta))
    assert np.abs(again.rgb.astype(int) - (255, 0, 0)).max() <= 8


def test_animated_gif_gives_first_frame(bad_corpus: dict[str, Path]) -> None:
    loaded = load_image(bad_corpus["animated_gif"])
    assert (loaded.rgb == ANIMATED_FIRST).all()


def test_multipage_tiff_gives_first_page(tmp_path: Path) -> None:
    pages = [Image.new("RGB", (10, 8), (0, 200, 0)), Image.new("RGB", (30, 20), (200, 0, 0))]
    path = tmp_path / "pages.tiff"
    pages[0].save(path, "TIFF", save_all=True, append_images=pages[1:])
    loaded = load_image(path)
    assert loaded.rgb.shape == (8, 10, 3) and (loaded.rgb == (0, 200, 0)).all()


def test_max_side_decodes_jpeg_at_reduced_scale() -> None:
    data = save(Image.fromarray(smooth(600, 800)), "JPEG", quality=80)
    small = decode_image(data, max_side=100)
    assert 100 <= max(small.rgb.shape[:2]) < 200
    assert small.meta.jpeg_quality == decode_image(data).meta.jpeg_quality
    png = decode_image(save(Image.fromarray(smooth(60, 80)), "PNG"), max_side=10)
    assert png.rgb.shape == (60, 80, 3)


def test_decoded_arrays_are_read_only_and_contiguous() -> None:
    loaded = decode_image(save(Image.fromarray(noise(5, 7, 4)), "PNG"))
    assert loaded.alpha is not None
    for array in (loaded.rgb, loaded.alpha):
        assert array.dtype == np.uint8 and array.flags.c_contiguous
        assert not array.flags.writeable


# --------------------------------------------------------------------------- in-memory inputs


def test_rgb_array_is_shared_not_copied() -> None:
    array = noise(5, 7)
    loaded = load_image(array)
    assert np.shares_memory(loaded.rgb, array) and array.flags.writeable
    assert (loaded.source, loaded.meta.format, loaded.meta.mode) == ("<array>", "PNG", "RGB")


def test_rgba_and_gray_arrays_are_normalised() -> None:
    rgba = noise(5, 7, 4)
    loaded = load_image(rgba)
    np.testing.assert_array_equal(loaded.rgb, rgba[:, :, :3])
    np.testing.assert_array_equal(loaded.alpha, rgba[:, :, 3])
    assert loaded.rgb.flags.c_contiguous
    gray = load_image(rgba[:, :, 0])
    assert gray.rgb.shape == (5, 7, 3) and gray.meta.mode == "L"
    assert (gray.rgb == rgba[:, :, :1]).all()


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64, np.bool_])
def test_non_uint8_arrays_raise_type_error(dtype: type) -> None:
    with pytest.raises(TypeError, match=np.dtype(dtype).name):
        load_image(np.zeros((4, 4, 3), dtype=dtype))


@pytest.mark.parametrize("shape", [(4, 4, 2), (4, 4, 1), (4, 4, 5), (2, 4, 4, 3), (4,), (0, 4, 3)])
def test_bad_array_shapes_raise_value_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=re.escape(str(shape))):
        load_image(np.zeros(shape, dtype=np.uint8))


def test_pil_images_are_accepted_as_they_are() -> None:
    loaded = load_image(Image.fromarray(noise(5, 7, 4)))
    assert loaded.alpha is not None and loaded.source == "<PIL image>"
    assert (loaded.meta.format, loaded.meta.mode) == ("PNG", "RGBA")
    data = save(Image.fromarray(noise(64, 64)), "JPEG")
    lazy = Image.open(io.BytesIO(data[: len(data) // 2]))
    with pytest.raises(ImageError, match="<PIL image>: truncated"):
        load_image(lazy)


def test_unsupported_source_type() -> None:
    with pytest.raises(TypeError, match="int"):
        load_image(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("name", sorted(BAD))
def test_corpus_bad_files_fail_with_name_and_reason(bad_corpus: dict[str, Path], name: str) -> None:
    path = bad_corpus[name]
    with pytest.raises(ImageError) as caught:
        load_image(path)
    assert str(caught.value) == f"{path}: {BAD[name]}"
    assert caught.value.source == str(path)


def test_bomb_fails_fast_from_the_header(bad_corpus: dict[str, Path]) -> None:
    start = time.perf_counter()
    with pytest.raises(ImageError, match=re.escape("2500.0 MP")):
        load_image(bad_corpus["png_bomb"])
    assert time.perf_counter() - start < 0.5


def test_pixel_limit_is_rechecked_when_the_header_is_not_sniffed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_imageio, "read_dimensions", lambda data: None)
    limit = "image is 20x10 = 0.0 MP, over the 0.0001 MP limit"
    with pytest.raises(ImageError, match=re.escape(limit)):
        decode_image(save(Image.new("RGB", (20, 10)), "PNG"), limits=LoadLimits(max_pixels=100))


def test_pillow_bomb_guard_never_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow's warning would be an error here (filterwarnings=error); its error is mapped."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert decode_image(save(Image.new("RGB", (40, 40)), "PNG")).rgb.shape == (40, 40, 3)
    with pytest.raises(ImageError, match="MAX_IMAGE_PIXELS"):
        decode_image(save(Image.new("RGB", (64, 64)), "PNG"))


def test_file_size_limit() -> None:
    with pytest.raises(ImageError, match="over the"):
        decode_image(save(Image.new("RGB", (20, 10)), "PNG"), limits=LoadLimits(max_bytes=10))


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LoadLimits(max_pixels=0)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.png"
    path.write_bytes(save(Image.new("RGB", (4, 4)), "PNG"))
    if os.geteuid() == 0:  # root reads anything: fake the denial to test the mapping
        real_open = Path.open

        def deny(self: Path, *args: object, **kwargs: object) -> object:
            if self == path:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

        monkeypatch.setattr(Path, "open", deny)
    else:
        path.chmod(0)
    with pytest.raises(ImageError, match=re.escape(f"{path}: cannot read file: permission denied")):
        load_image(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=re.escape(f"{tmp_path / 'nope.jpg'}: file not found")):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match=re.escape(f"{tmp_path}: is a directory")):
        load_image(str(tmp_path))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "truncated or corrupt image data"),
        (b"\x00\x00\x01\x00" + b"\x00" * 40, "unsupported format: ICO"),
        (b"\x00\x00\x00\x18ftypheic" + b"\x00" * 40, "unsupported format: HEIC"),
        (b"hello world", "not an image (unrecognised format)"),
    ],
)
def test_reasons_for_unreadable_bytes(data: bytes, reason: str) -> None:
    with pytest.raises(ImageError, match=re.escape(f"<bytes>: {reason}")):
        decode_image(data)


VALID = {fmt: save(Image.fromarray(noise(24, 40)), fmt) for fmt in SUFFIX}


@pytest.mark.parametrize("fmt", sorted(VALID))
@settings(max_examples=25, deadline=None)
@given(fraction=st.floats(0.0, 0.999))
def test_any_truncation_is_an_image_error_or_an_image(fmt: str, fraction: float) -> None:
    data = VALID[fmt][: int(len(VALID[fmt]) * fraction)]
    try:
        loaded = decode_image(data)
    except ImageError as exc:
        assert str(exc).startswith("<bytes>: ")
    else:
        assert loaded.rgb.shape == (24, 40, 3)


@pytest.mark.parametrize("fmt", sorted(SUFFIX))
@settings(max_examples=10, deadline=None)
@given(width=st.integers(1, 300), height=st.integers(1, 300))
def test_read_dimensions_matches_pillow(fmt: str, width: int, height: int) -> None:
    assert read_dimensions(save(Image.new("RGB", (width, height)), fmt)) == (width, height)


def test_read_dimensions_of_garbage_is_none() -> None:
    assert read_dimensions(b"not an image") is None
    assert read_dimensions(b"\xff\xd8\xff") is None


def test_suffixes() -> None:
    assert {".jpg", ".jpeg", ".png", ".webp", ".tif", ".gif"} <= IMAGE_SUFFIXES
    assert all(s == s.lower() and s.startswith(".") for s in IMAGE_SUFFIXES)


# --------------------------------------------------------------------------- encoding args


def test_encode_rejects_wrong_arguments() -> None:
    with pytest.raises(TypeError):
        encode_image(smooth().astype(np.float32), meta_for("PNG"))
    with pytest.raises(ValueError, match="H x W x 3"):
        encode_image(smooth()[:, :, :2], meta_for("PNG"))
    with pytest.raises(ValueError, match="alpha"):
        encode_image(smooth(), meta_for("PNG"), alpha=np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="HEIC"):
        encode_image(smooth(), meta_for("HEIC"))


# --------------------------------------------------------------------------- atomic writes


def test_write_replaces_existing_file_with_normal_permissions(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "out.png"
    write_bytes_atomic(path, b"old")
    write_image(path, smooth(), meta_for("PNG"))
    np.testing.assert_array_equal(load_image(path).rgb, smooth())
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["out.png"]


def test_temp_file_is_hidden_next_to_the_destination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Path] = []
    real_replace = os.replace

    def spy(src: Path, dst: Path) -> None:
        seen.append(Path(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    write_bytes_atomic(tmp_path / "out.png", b"data")
    assert seen[0].parent == tmp_path
    assert re.fullmatch(r"\.out\.png\.[0-9a-f]+\.clearmark-tmp", seen[0].name)


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_write_leaves_no_temp_and_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    existing = tmp_path / "old.png"
    existing.write_bytes(b"previous")

    def boom(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, boom)
    for path in (tmp_path / "new.png", existing):
        with pytest.raises(OutputError, match=re.escape(f"{path}: no space left on device")):
            write_image(path, smooth(), meta_for("PNG"))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.png"]
    assert existing.read_bytes() == b"previous"


def test_write_into_a_file_as_folder_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(OutputError, match="file"):
        write_bytes_atomic(tmp_path / "file" / "out.png", b"data")


def test_copy_keeps_bytes_mtime_and_mode(tmp_path: Path) -> None:
    src = tmp_path / "src.jpg"
    src.write_bytes(os.urandom(3 << 20))
    src.chmod(0o640)
    os.utime(src, (1_000_000_000, 1_000_000_000))
    dst = tmp_path / "copy" / "dst.jpg"
    copy_file_atomic(src, dst)
    assert dst.read_bytes() == src.read_bytes()
    assert dst.stat().st_mtime == 1_000_000_000
    assert dst.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in dst.parent.iterdir()) == ["dst.jpg"]


def test_copy_of_missing_source_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot read"):
        copy_file_atomic(tmp_path / "missing.jpg", tmp_path / "dst.jpg")
    assert list(tmp_path.iterdir()) == []
