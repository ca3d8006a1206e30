"""clearmark on Ray: the Ray Data actor, and folder jobs run by Ray against the local engine.

One local Ray cluster (2 CPUs, no dashboard) serves the module. These tests need the ``ray``
extra: they skip with the install hint where it is missing, except on CI (``CI`` set), which
installs the extras: there a missing extra fails.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from PIL import Image

from clearmark import clean, detect
from clearmark._pipeline import CleanTask, Input, Record, find_inputs, run

from extras import require
from photos import photo, save, scenes, with_emblem, with_text

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray() -> Iterator[ModuleType]:
    """A local 2-CPU cluster for this module; test classes travel to workers by value."""
    ray = require("ray", "ray")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Ray Data's own, on first use
        importlib.import_module("ray.data").DataContext.get_current()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING, object_store_memory=200 * 1024 * 1024)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


def encoded(rgb: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    """Marked, clean and corrupt files, as a Ray dataset of bytes would hold them."""
    marked = with_text(photo("coffee", 640, 480))[0]
    clean_one = np.array(photo("astronaut", 640, 480))
    return [encoded(marked), encoded(clean_one), b"\x89PNG broken", encoded(marked, "JPEG"),
            encoded(np.array(photo("rocket", 640, 480)))]


# -- Ray Data: the actor ------------------------------------------------------------------------


def _map(ray: ModuleType, cls: type, images: list[bytes], **kwargs: Any) -> list[dict[str, Any]]:
    rows = [{"id": i, "image": data} for i, data in enumerate(images)]
    dataset = ray.data.from_items(rows).map_batches(
        cls, compute=ray.data.ActorPoolStrategy(size=2), batch_size=2, **kwargs)
    return sorted(dataset.take_all(), key=lambda row: row["id"])


def test_cleaner_as_a_ray_actor_gives_what_the_library_gives(ray: ModuleType,
                                                            images: list[bytes]) -> None:
    import clearmark.ray

    rows = _map(ray, clearmark.ray.Cleaner, images)
    assert [row["status"] for row in rows] == ["cleaned", "copied", "failed", "cleaned", "copied"]
    assert rows[2]["error"].startswith("<bytes>: ") and rows[2]["image"] == images[2]
    for row, data in zip(rows, images, strict=True):
        if row["status"] != "failed":
            assert row["image"] == clean(data)
            assert json.loads(row["regions"]) == detect(data).to_dict()["regions"]


def _killer(base: type) -> type:
    """``base`` whose worker process dies (os._exit) on image 3, the first time only."""

    class DiesOnce(base):  # type: ignore[misc, valid-type]
        def __init__(self, marker: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.marker = Path(marker)

        def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
            if 3 in list(batch["id"]) and not self.marker.exists():
                self.marker.touch()
                os._exit(1)  # as a segfault or the OOM killer would
            return super().__call__(batch)  # type: ignore[no-any-return]

    return DiesOnce


def test_a_worker_killed_mid_batch_loses_no_row(ray: ModuleType, images: list[bytes],
                                                tmp_path: Path) -> None:
    import clearmark.ray

    marker = tmp_path / "died"
    rows = _map(ray, _killer(clearmark.ray.Cleaner), images,
                fn_constructor_kwargs={"marker": str(marker)})
    assert marker.exists()  # the worker really died, mid-batch
    assert [row["id"] for row in rows] == [0, 1, 2, 3, 4]
    assert [row["status"] for row in rows] == ["cleaned", "copied", "failed", "cleaned", "copied"]
    assert rows[3]["image"] == clean(images[3])


def test_readme_ray_example_runs_as_written(ray: ModuleType,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## In a data pipeline"):]
    section = section[: section.find("\n## ") if "\n## " in section else None]
    (block,) = [b for b in section.split("```python\n")[1:] if "import ray" in b]
    namespace: dict[str, Any] = {}
    exec(compile(block[: block.index("```")], "README.md", "exec"), namespace)
    rows = namespace["ds"].take_all()
    names = sorted(Path(row["path"]).name for row in rows)
    assert names == sorted(p.name for p in (ROOT / "samples").iterdir()
                           if p.suffix in (".jpg", ".png", ".webp"))
    for row in rows:
        expected = "cleaned" if detect(Path(row["path"]).read_bytes()).watermarked else "copied"
        assert row["status"] == expected


# -- folder jobs: the Ray engine against the local one ----------------------------------------


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small SRC with marked and clean images in three formats, a broken file and a note;
    the test runs from its parent, so paths are relative as on a command line."""
    marked = with_text(photo("coffee", 640, 480))[0]
    save(tmp_path / "src/a_marked.jpg", marked, quality=90)
    save(tmp_path / "src/b_clean.png", np.array(photo("astronaut", 640, 480)))
    save(tmp_path / "src/c_marked.png", with_text(photo("rocket", 640, 480), corner="tl")[0])
    save(tmp_path / "src/d/e_marked.webp", marked, quality=85)
    save(tmp_path / "src/d/f_clean.jpg", np.array(photo("chelsea", 640, 480)), quality=88)
    (tmp_path / "src/d/g_broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (tmp_path / "src/notes.txt").write_text("not an image")
    monkeypatch.chdir(tmp_path)
    return Path("src")


def _comparable(record: Record) -> Record:
    """A record without what differs between two runs: the timing and the DST folder."""
    return {k: v for k, v in record.items() if k not in ("seconds", "output")}


def _outputs(dst: Path) -> dict[str, bytes]:
    return {str(p.relative_to(dst)): p.read_bytes() for p in sorted(dst.rglob("*"))
            if p.is_file() and ".clearmark" not in p.parts}


def test_ray_engine_writes_what_the_local_engine_writes(ray: ModuleType, folder: Path) -> None:
    import clearmark.ray

    local = list(run(CleanTask(folder, Path("local")), find_inputs([folder]), jobs=1))
    on_ray = list(clearmark.ray.run(CleanTask(folder, Path("on_ray")), find_inputs([folder]),
                                    workers=2, batch_size=2, chunk_size=3))
    assert [r["status"] for r in local] == ["cleaned", "copied", "cleaned", "skipped", "cleaned",
                                            "copied", "failed"]
    assert [_comparable(r) for r in on_ray] == [_comparable(r) for r in local]  # same order
    assert on_ray[0]["output"] == "on_ray/a_marked.jpg" and on_ray[0]["path"] == "src/a_marked.jpg"
    assert _outputs(Path("on_ray")) == _outputs(Path("local"))  # byte-identical
    assert len(_outputs(Path("local"))) == 5


@dataclass(frozen=True)
class KillsOn(CleanTask):
    """A clean task whose worker process dies on one file, every time."""

    fatal: str = ""

    def __call__(self, item: Input) -> Record:
        if item.rel.name == self.fatal:
            os._exit(1)
        return super().__call__(item)


def test_a_file_that_keeps_killing_its_worker_is_recorded_as_failed(ray: ModuleType,
                                                                    folder: Path) -> None:
    import clearmark.ray

    task = KillsOn(folder, Path("dst"), fatal="c_marked.png")
    records = list(clearmark.ray.run(task, find_inputs([folder]), workers=2, batch_size=2))
    assert [r["rel"] for r in records] == [str(i.rel) for i in find_inputs([folder])]
    assert [r["status"] for r in records] == ["cleaned", "copied", "failed", "skipped", "cleaned",
                                              "copied", "failed"]
    assert records[2]["error"] == "src/c_marked.png: worker process died while processing it"
    assert records[2]["fingerprint"]  # a full record: the journal can resume it later
    assert sorted(_outputs(Path("dst"))) == ["a_marked.jpg", "b_clean.png", "d/e_marked.webp",
                                             "d/f_clean.jpg"]


def test_ray_engine_starts_and_stops_its_own_cluster(tmp_path: Path) -> None:
    """Without a Ray connection in the process, run() starts a local cluster and stops it."""
    require("ray", "ray")
    save(tmp_path / "src/a.png", with_text(photo("coffee", 320, 240), height_share=0.06)[0])
    code = ("import clearmark.ray, ray; from pathlib import Path; "
            "from clearmark._pipeline import CleanTask, find_inputs; "
            "records = list(clearmark.ray.run(CleanTask(Path('src'), Path('dst')), "
            "find_inputs(['src']), address='local')); "
            "print(ray.is_initialized(), [r['status'] for r in records])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False ['cleaned']"
    assert (tmp_path / "dst/a.png").is_file()


def test_without_ray_the_import_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.delitem(sys.modules, "clearmark.ray", raising=False)
    with pytest.raises(ImportError, match=r"^clearmark.ray needs Ray: pip install "
                                          r"'clearmark\[ray\]'$"):
        importlib.import_module("clearmark.ray")


def test_cli_engine_ray_matches_the_local_engine(ray: ModuleType, tmp_path: Path) -> None:
    """`clearmark clean --engine ray` writes the same bytes as the local engine."""
    from clearmark._cli import main

    src = tmp_path / "src"
    save(src / "wm.jpg", with_text(photo("coffee"))[0], quality=90)
    save(src / "clean.png", np.array(photo("astronaut")))
    assert main(["clean", str(src), "--out", str(tmp_path / "local"), "--jobs", "1"]) == 0
    assert main(["clean", str(src), "--out", str(tmp_path / "ray"), "--engine", "ray",
                 "--jobs", "2"]) == 0
    for name in ("wm.jpg", "clean.png"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def test_cli_engine_ray_removes_a_folder_mark_with_its_matte_as_the_local_engine_does(
        ray: ModuleType, tmp_path: Path) -> None:
    """Ray learns the folder's mark and its matte in a pass before the job; the local engine
    learns them as it goes. Both invert the same matte, to the byte."""
    from clearmark._cli import main

    marked, _ = with_emblem(scenes(12))
    src = tmp_path / "app"
    for i, image in enumerate(marked):
        save(src / f"{i:02d}.png", image)
    outputs = {}
    for engine in ("local", "ray"):
        report = tmp_path / f"{engine}.jsonl"
        assert main(["clean", str(src), "--out", str(tmp_path / engine), "--engine", engine,
                     "--jobs", "2", "--jsonl", str(report)]) == 0
        records = [json.loads(line) for line in report.read_text().splitlines()]
        assert {r["regions"][0]["method"] for r in records} == {"folder-matte"}
        outputs[engine] = {name: (tmp_path / engine / name).read_bytes()
                           for name in sorted(p.name for p in src.iterdir())}
    assert outputs["ray"] == outputs["local"]
