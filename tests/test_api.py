"""The library calls: every source type in, the same type out."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import clearmark
from clearmark import ImageError, clean, clean_batch, detect, detect_batch

from photos import photo, save, with_text

PUBLIC = {
    "MAX_RECTANGLES", "APIError", "APIStatusError", "BatchCleaner", "CleanTransform",
    "ClearmarkError", "Detection", "DetectorConfig", "ImageError", "LoadLimits", "LocalRemover",
    "OutputError", "Region", "Remover", "TaskFailed", "TaskTimeout", "__version__", "clean",
    "clean_batch", "clean_dataset", "detect", "detect_batch",
    "APIRemover", "AsyncClient", "Client", "PollPolicy", "RateLimiter", "Submission", "TaskInfo",
    "TaskResult",
}


def test_the_public_surface_is_exactly_all() -> None:
    assert set(clearmark.__all__) == PUBLIC
    assert clearmark.__all__ == sorted(clearmark.__all__, key=lambda n: (not n.isupper(), n))
    for name in clearmark.__all__:
        assert hasattr(clearmark, name)


def test_errors_share_one_root() -> None:
    for name in ("ImageError", "OutputError", "APIError", "APIStatusError", "TaskFailed",
                 "TaskTimeout"):
        assert issubclass(getattr(clearmark, name), clearmark.ClearmarkError)


@pytest.fixture(scope="module")
def marked() -> tuple[np.ndarray, np.ndarray]:
    return with_text(photo("coffee"))


def test_ndarray_in_ndarray_out(marked: tuple[np.ndarray, np.ndarray]) -> None:
    image, truth = marked
    result = clean(image)
    assert isinstance(result, np.ndarray) and result.shape == image.shape
    assert result.dtype == np.uint8
    assert not np.array_equal(result[truth > 0], image[truth > 0])
    assert np.array_equal(result[:100], image[:100])  # far from the mark: untouched


def test_rgba_and_gray_arrays_keep_their_shape(marked: tuple[np.ndarray, np.ndarray]) -> None:
    image, _ = marked
    rgba = np.dstack([image, np.full(image.shape[:2], 200, np.uint8)])
    result = clean(rgba)
    assert result.shape == rgba.shape and np.array_equal(result[..., 3], rgba[..., 3])
    gray = np.ascontiguousarray(image[..., 1])
    assert clean(gray).shape == gray.shape


def test_pil_in_pil_out(marked: tuple[np.ndarray, np.ndarray]) -> None:
    image, _ = marked
    result = clean(Image.fromarray(image))
    assert isinstance(result, Image.Image) and result.size == (800, 600)
    assert result.mode == "RGB"


def test_bytes_and_paths_give_the_cleaned_file(tmp_path: Path,
                                               marked: tuple[np.ndarray, np.ndarray]) -> None:
    path = save(tmp_path / "a.jpg", marked[0], quality=90)
    for source in (path, str(path), path.read_bytes()):
        data = clean(source)
        assert isinstance(data, bytes) and data != path.read_bytes()
        with Image.open(io.BytesIO(data)) as out:
            assert out.format == "JPEG" and out.size == (800, 600)


def test_clean_images_come_back_unchanged(tmp_path: Path) -> None:
    original = np.array(photo("astronaut"))
    path = save(tmp_path / "clean.png", original)
    assert clean(path) == path.read_bytes()
    assert clean(path.read_bytes()) == path.read_bytes()
    assert np.array_equal(clean(original), original)


def test_detect_accepts_every_source_type(tmp_path: Path,
                                          marked: tuple[np.ndarray, np.ndarray]) -> None:
    image, _ = marked
    path = save(tmp_path / "a.png", image)
    results = detect_batch([image, Image.fromarray(image), path, path.read_bytes()])
    assert [r.watermarked for r in results] == [True] * 4
    assert len({r.regions for r in results}) == 1  # same pixels, same answer


def test_clean_batch_keeps_order_and_types(tmp_path: Path,
                                           marked: tuple[np.ndarray, np.ndarray]) -> None:
    image, _ = marked
    path = save(tmp_path / "a.png", image)
    inputs = [image, Image.fromarray(image), path.read_bytes(), np.array(photo("rocket"))]
    outputs = clean_batch(inputs)
    assert [type(o) for o in outputs] == [np.ndarray, Image.Image, bytes, np.ndarray]
    assert np.array_equal(outputs[3], inputs[3])


def test_unreadable_input_raises_image_error_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ImageError, match=r"broken\.jpg"):
        detect(broken)
    with pytest.raises(ImageError):
        clean(b"")


def test_detection_is_json_ready(marked: tuple[np.ndarray, np.ndarray]) -> None:
    import json

    detection = detect(marked[0])
    data = json.loads(json.dumps(detection.to_dict()))
    assert data["watermarked"] is True and data["regions"]
    rectangles = detection.rectangles()
    assert 1 <= len(rectangles) <= 50
    assert set(rectangles[0]) == {"x", "y", "width", "height"}
