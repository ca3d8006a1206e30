"""clearmark inside a data pipeline: batch dicts, Hugging Face datasets, the transform.

The Hugging Face tests need the ``datasets`` extra. They skip with the install hint where it is
missing, except on CI (``CI`` set), which installs the extras: there a missing extra fails.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from clearmark import BatchCleaner, CleanTransform, clean, clean_dataset, detect

from extras import require
from photos import photo, save, with_text

ROOT = Path(__file__).resolve().parents[1]


def readme_blocks(needs_ray: bool) -> list[str]:
    """The python blocks of the README's "In a data pipeline" section, Ray ones or the others."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## In a data pipeline"):]
    section = section[: section.find("\n## ") if "\n## " in section else None]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    return [block for block in blocks if ("import ray" in block) == needs_ray]


def encoded(rgb: np.ndarray, fmt: str = "JPEG", **params: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, fmt, **params)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def marked() -> np.ndarray:
    return with_text(photo("coffee", 640, 480))[0]


@pytest.fixture(scope="module")
def plain() -> np.ndarray:
    return np.array(photo("astronaut", 640, 480))


# -- BatchCleaner ---------------------------------------------------------------------------------


def test_every_source_type_comes_back_as_its_own_type(tmp_path: Path, marked: np.ndarray,
                                                      plain: np.ndarray) -> None:
    jpeg = encoded(marked, quality=90)
    path = save(tmp_path / "marked.png", marked)
    clean_png = save(tmp_path / "clean.png", plain)
    images = [marked, Image.fromarray(marked), jpeg, str(path), plain,
              {"bytes": jpeg, "path": "a/marked.jpg"}, {"bytes": None, "path": str(clean_png)}]
    out = BatchCleaner()({"image": images, "id": list(range(7))})

    assert out["id"] == list(range(7))
    assert out["status"] == ["cleaned"] * 4 + ["copied", "cleaned", "copied"]
    assert out["error"] == [""] * 7
    assert out["watermarked"] == [True] * 4 + [False, True, False]
    cleaned = out["image"]
    assert np.array_equal(cleaned[0], clean(marked))
    assert isinstance(cleaned[1], Image.Image)
    assert np.array_equal(np.asarray(cleaned[1]), clean(marked))
    assert cleaned[2] == clean(jpeg)  # bytes in: the cleaned file, as clean() gives it
    assert cleaned[3] == clean(path)
    assert cleaned[4] is plain  # nothing found: the very same value, not a copy
    assert cleaned[5] == {"bytes": clean(jpeg), "path": "a/marked.jpg"}
    assert cleaned[6] == images[6]
    assert json.loads(out["regions"][0]) == detect(marked).to_dict()["regions"]
    assert out["score"][0] == detect(marked).to_dict()["score"]


def test_a_bad_row_is_a_failed_row_and_the_batch_goes_on(tmp_path: Path,
                                                         marked: np.ndarray) -> None:
    broken = b"\xff\xd8\xff\xe0 not really a jpeg"
    images = [broken, b"", str(tmp_path / "missing.jpg"), None, {"bytes": None, "path": None},
              marked.astype(np.float32), {"bytes": broken, "path": "x/y.jpg"}, marked]
    out = BatchCleaner()({"image": images})

    assert out["status"] == ["failed"] * 7 + ["cleaned"]
    errors = out["error"]
    assert "corrupt" in errors[0] and "empty file" in errors[1]
    assert "missing.jpg: file not found" in errors[2]
    assert all(errors[:7]) and errors[7] == ""
    assert errors[6].startswith("x/y.jpg:")  # a feature's failure names its path
    assert out["image"][0] is broken and out["image"][2] is None  # a path's output is bytes
    assert all(math.isnan(score) for score in out["score"][:7])
    assert out["regions"][:7] == ["[]"] * 7 and out["watermarked"][:7] == [False] * 7


def test_output_column_keeps_the_original(marked: np.ndarray) -> None:
    out = BatchCleaner(output_column="cleaned")({"image": [marked]})
    assert out["image"][0] is marked
    assert np.array_equal(out["cleaned"][0], clean(marked))


def test_ray_style_numpy_batches_work(tmp_path: Path, marked: np.ndarray,
                                      plain: np.ndarray) -> None:
    """Ray Data hands over numpy columns: a 4-D array, str_ paths, object arrays of bytes."""
    stacked = np.stack([marked, plain])
    paths = np.array([str(save(tmp_path / "a.png", marked)), str(save(tmp_path / "b.png", plain))])
    data = np.empty(2, dtype=object)
    data[:] = [encoded(marked), encoded(plain)]
    for column in (stacked, paths, data):
        out = BatchCleaner()({"image": column})
        assert out["status"] == ["cleaned", "copied"]
    assert out["image"][1] == data[1]


def test_a_cleaner_pickles_and_its_copy_does_the_same(marked: np.ndarray) -> None:
    cleaner = BatchCleaner(column="img")
    copy = pickle.loads(pickle.dumps(cleaner))
    first, second = cleaner({"img": [marked]}), copy({"img": [marked]})
    assert np.array_equal(first["img"][0], second["img"][0])
    assert first["regions"] == second["regions"]
    with pytest.raises(TypeError, match="dict of columns"):
        cleaner([marked])  # type: ignore[arg-type]


# -- Hugging Face datasets ------------------------------------------------------------------------


def test_datasets_map_keeps_the_image_feature(marked: np.ndarray, plain: np.ndarray) -> None:
    datasets = require("datasets", "datasets")
    images = [encoded(plain), encoded(photo("rocket", 640, 480)), encoded(marked)]
    ds = datasets.Dataset.from_dict({"image": images, "label": [0, 1, 2]})
    ds = ds.cast_column("image", datasets.Image())
    # batch 1 has no watermark and no failure: later batches must still be writable
    out = ds.map(BatchCleaner(), batched=True, batch_size=2)

    assert isinstance(out.features["image"], datasets.Image)
    assert out["status"] == ["copied", "copied", "cleaned"] and out["label"] == [0, 1, 2]
    assert out["error"] == ["", "", ""]
    assert json.loads(out[2]["regions"])
    result = np.asarray(out[2]["image"])
    assert np.array_equal(result, clean(np.asarray(ds[2]["image"])))  # PNG: lossless


def test_clean_dataset_keeps_formats_bytes_and_failures(tmp_path: Path, marked: np.ndarray,
                                                        plain: np.ndarray) -> None:
    datasets = require("datasets", "datasets")
    clean_jpeg, marked_jpeg = encoded(plain, quality=92), encoded(marked, quality=92)
    path = save(tmp_path / "marked.png", marked)
    images = [{"bytes": clean_jpeg, "path": "clean.jpg"}, {"bytes": b"junk", "path": "bad.jpg"},
              {"bytes": marked_jpeg, "path": "marked.jpg"}, {"bytes": None, "path": str(path)},
              None]
    ds = datasets.Dataset.from_dict({"image": images}).cast_column("image", datasets.Image())
    out = clean_dataset(ds, batch_size=2, num_proc=2)  # num_proc: the cleaner crosses processes

    assert out.features["image"] == datasets.Image()  # decoded again, as it came
    assert out["status"] == ["copied", "failed", "cleaned", "cleaned", "failed"]
    assert "bad.jpg" in out["error"][1] and out["error"][4]
    raw = out.cast_column("image", datasets.Image(decode=False))["image"]
    assert raw[0]["bytes"] == clean_jpeg  # untouched, byte for byte
    assert raw[1]["bytes"] == b"junk"
    assert raw[2] == {"bytes": clean(marked_jpeg), "path": "marked.jpg"}  # still a JPEG
    assert raw[3] == {"bytes": clean(path), "path": str(path)}
    assert raw[4] is None


def test_readme_datasets_example_runs_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    require("datasets", "datasets")
    monkeypatch.chdir(ROOT)
    (block,) = readme_blocks(needs_ray=False)
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    statuses = ["cleaned" if detect(f).watermarked else "copied" for f in namespace["files"]]
    assert list(namespace["cleaned"]["status"]) == statuses
    assert list(namespace["plain"]["status"]) == statuses
    assert isinstance(namespace["image"], Image.Image)


def test_clean_dataset_without_the_extra_says_how_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'clearmark\[datasets\]'"):
        clean_dataset(object())


# -- the transform --------------------------------------------------------------------------------


def test_transform_returns_the_type_it_was_given(marked: np.ndarray,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # any torch import would now fail
    transform = CleanTransform()
    assert np.array_equal(transform(marked), clean(marked))
    result = transform(Image.fromarray(marked))
    assert isinstance(result, Image.Image) and np.array_equal(np.asarray(result), clean(marked))
    assert transform(encoded(marked)) == clean(encoded(marked))
    assert "CleanTransform(" in repr(transform)


class _Tensor:
    """Just enough of torch.Tensor for the numpy round trip (torch is not installed here)."""

    device = "cpu"

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def detach(self) -> _Tensor:
        return self

    def cpu(self) -> _Tensor:
        return self

    def numpy(self) -> np.ndarray:
        return self.array

    def to(self, device: str) -> _Tensor:
        return self


_Tensor.__name__ = "Tensor"
_Tensor.__module__ = "torch"


def test_transform_takes_torch_style_tensors_through_numpy(
        marked: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch",
                        types.SimpleNamespace(Tensor=_Tensor, from_numpy=_Tensor))
    transform, expected = CleanTransform(), clean(marked)
    chw = np.ascontiguousarray(np.moveaxis(marked, -1, 0))
    assert np.array_equal(transform(_Tensor(chw)).array, np.moveaxis(expected, -1, 0))

    floats = chw.astype(np.float32) / 255 + np.float32(1e-4)  # not on the 1/255 grid
    result = transform(_Tensor(floats)).array
    assert result.dtype == np.float32 and result.shape == floats.shape
    changed = np.moveaxis(expected != marked, -1, 0)
    assert changed.any() and np.array_equal(result[~changed], floats[~changed])  # bit for bit
    assert np.allclose(result[changed] * 255, np.moveaxis(expected, -1, 0)[changed])

    batch = transform(_Tensor(np.stack([chw, chw]))).array
    assert batch.shape == (2, *chw.shape)
    assert np.array_equal(batch[1], np.moveaxis(expected, -1, 0))
    with pytest.raises(ValueError, match="channels"):
        transform(_Tensor(np.zeros((5, 8, 8), np.uint8)))


def test_import_clearmark_loads_no_optional_engine() -> None:
    code = ("import sys, clearmark; print(sorted(m for m in ('ray', 'datasets', 'torch', "
            "'clearmark.ray') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
