"""The folder runner: inputs, ordering, the journal, and surviving dying workers."""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest

from clearmark import Detection, LocalRemover, OutputError, _pipeline
from clearmark._imageio import LoadLimits
from clearmark._marks import MarkStore, folder_key, learn_marks, load_mark
from clearmark._pipeline import (
    CleanTask,
    DetectTask,
    Input,
    Journal,
    find_inputs,
    fingerprint,
    is_done,
    remove_stale_temp_files,
    run,
)
from clearmark._report import Thumbnailer

from photos import photo, save, scenes, with_emblem, with_text


def _items(names: list[str]) -> list[Input]:
    return [Input(Path("/nowhere") / name, PurePosixPath(name)) for name in names]


class Echo:
    """A picklable task: its record names the item and the worker's process."""

    def __call__(self, item: Input) -> dict[str, Any]:
        return {"path": str(item.path), "pid": os.getpid(), "error": None}


class DiesOn(Echo):
    """Kills its worker process outright (as the OOM killer would) on one file."""

    def __init__(self, fatal: str) -> None:
        self.fatal = fatal

    def __call__(self, item: Input) -> dict[str, Any]:
        if item.rel.name == self.fatal:
            os._exit(1)
        return super().__call__(item)

    def failure_record(self, item: Input) -> dict[str, Any]:
        return {"path": str(item.path), "pid": None, "error": None}


def test_find_inputs_walks_folders_sorted_and_keeps_given_paths(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    for name in ("b/2.jpg", "b/1.jpg", "a.png", "c/d/e.gif"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    found = list(find_inputs(["a.png", "."]))
    assert [str(i.rel) for i in found] == ["a.png", "a.png", "b/1.jpg", "b/2.jpg", "c/d/e.gif"]
    assert str(found[0].path) == "a.png" and str(found[2].path) == "b/1.jpg"


@pytest.mark.parametrize("jobs", [1, 2])
def test_records_come_back_in_input_order(jobs: int) -> None:
    items = _items([f"{i:03d}.jpg" for i in range(30)])
    records = list(run(Echo(), items, jobs=jobs))
    assert [r["path"] for r in records] == [str(i.path) for i in items]
    in_parent = {r["pid"] for r in records} == {os.getpid()}
    assert in_parent == (jobs == 1)  # jobs > 1 really runs in worker processes


def test_a_dying_worker_costs_one_record_not_the_run() -> None:
    items = _items([f"{i:02d}.jpg" for i in range(12)])
    records = list(run(DiesOn("05.jpg"), items, jobs=2))
    assert [r["path"] for r in records] == [str(i.path) for i in items]
    failed = [r for r in records if r["error"]]
    assert [r["path"] for r in failed] == ["/nowhere/05.jpg"]
    assert "worker process died" in failed[0]["error"]
    assert all(r["pid"] for r in records if not r["error"])  # the others really ran


class SamplesAndDiesOn(DiesOn):
    """A learning task that never learns anything (no working copies), dying on one file."""

    def sample(self, item: Input) -> dict[str, Any]:
        return self(item)

    def refit(self, record: dict[str, Any], finding: Any) -> None:
        raise AssertionError("nothing was learned, so nothing can be refitted")


def test_a_dying_worker_while_a_folder_is_learned_costs_one_record(tmp_path: Path) -> None:
    items = [Input(Path("/nowhere") / f"{i:02d}.jpg", PurePosixPath(f"{i:02d}.jpg"), True)
             for i in range(12)]
    store = MarkStore(tmp_path / "marks")
    records = list(run(SamplesAndDiesOn("05.jpg"), items, jobs=2, learn=store))
    assert [r["path"] for r in records] == [str(i.path) for i in items]
    assert [r["path"] for r in records if r["error"]] == ["/nowhere/05.jpg"]
    assert store.index == {"/nowhere": []}  # learned: the folder has no mark


def _marked_folder(root: Path) -> Path:
    """A folder of 14 photos sharing a faint emblem no single photo shows, and a subfolder
    of two clean photos."""
    marked, _ = with_emblem(scenes(14))
    for i, image in enumerate(marked):
        save(root / "app" / f"{i:02d}.png", image)
    for name in ("coins", "camera"):
        save(root / "app" / "other" / f"{name}.png", np.array(photo(name)))
    return root / "app"


def test_marks_are_learned_from_the_decision_pass_without_decoding_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _marked_folder(tmp_path)
    items = list(find_inputs([folder]))
    # the separate learning pass (Ray, the endpoint) and what it leads to
    learn_marks((item.path for item in items), MarkStore(tmp_path / "before"), LoadLimits())
    before = list(run(DetectTask(marks=tmp_path / "before"), items))
    # learning as the decision pass goes: every file is decoded once
    loads: list[str] = []
    real_load = _pipeline.load_image

    def counting_load(source: Any, **kwargs: Any) -> Any:
        loads.append(str(source))
        return real_load(source, **kwargs)

    monkeypatch.setattr(_pipeline, "load_image", counting_load)
    store = MarkStore(tmp_path / "as-it-goes")
    records = list(run(DetectTask(marks=store.folder), items, learn=store))
    assert sorted(loads) == sorted(str(item.path) for item in items)
    assert [r["path"] for r in records] == [str(item.path) for item in items]
    flagged = {Path(r["path"]).name for r in records if r["watermarked"]}
    assert flagged == {f"{i:02d}.png" for i in range(14)}
    assert records == before  # the same decisions, and no private keys left in
    assert [name for _, name in store.index[folder_key(items[0].path)] if name]


def test_the_learning_pass_gives_marks_their_matte_when_asked(tmp_path: Path) -> None:
    folder = _marked_folder(tmp_path)
    paths = [item.path for item in find_inputs([folder])]
    for mattes in (False, True):
        store = MarkStore(tmp_path / f"marks-{mattes}")
        assert learn_marks(paths, store, LoadLimits(), mattes=mattes) == 1
        (name,) = [name for _, name in store.index[folder_key(paths[0])] if name]
        matte = load_mark(str(store.folder / name)).matte
        assert (matte is not None) == mattes
        if matte is not None:
            assert matte.size == (640, 480) and matte.support == 14


def test_a_folder_past_its_sample_is_decided_with_the_mark_in_the_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _marked_folder(tmp_path)
    monkeypatch.setattr(_pipeline, "LOOK_AT", 10)  # files 11-14 come after the sample
    store = MarkStore(tmp_path / "marks")
    records = list(run(DetectTask(marks=store.folder), find_inputs([folder]), jobs=2,
                       learn=store))
    flagged = sorted(Path(r["path"]).name for r in records if r["watermarked"])
    assert flagged == [f"{i:02d}.png" for i in range(14)]


def test_journal_ignores_a_torn_last_line_and_keeps_the_last_record(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append({"rel": "a.jpg", "status": "failed"})
    journal.append({"rel": "a.jpg", "status": "cleaned"})
    journal.append({"rel": "b.jpg", "status": "copied"})
    journal.close()
    with open(journal.path, "a") as handle:
        handle.write('{"rel": "c.jpg", "sta')  # kill -9 mid-write
    records = journal.load()
    assert {k: v["status"] for k, v in records.items()} == {"a.jpg": "cleaned",
                                                            "b.jpg": "copied"}
    journal.append({"rel": "d.jpg", "status": "copied"})  # appending after a torn line works
    journal.close()
    assert "d.jpg" in Journal(tmp_path).load()


def test_is_done_needs_status_unchanged_source_and_output(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "a.jpg").write_bytes(b"one")
    item = Input(src / "a.jpg", PurePosixPath("a.jpg"))
    record = {"rel": "a.jpg", "status": "copied", "fingerprint": fingerprint(item.path)}
    assert not is_done(record, item, dst)  # no output yet
    (dst / "a.jpg").write_bytes(b"one")
    assert is_done(record, item, dst)
    assert not is_done({**record, "status": "failed"}, item, dst)
    assert not is_done(None, item, dst)
    (src / "a.jpg").write_bytes(b"changed")
    assert not is_done(record, item, dst)


def test_stale_temp_files_are_removed_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/.a.jpg.1234abcd.clearmark-tmp").write_bytes(b"x")
    (tmp_path / ".hidden").write_bytes(b"keep")
    (tmp_path / "a.clearmark-tmp").write_bytes(b"keep: not our pattern")
    assert remove_stale_temp_files(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        ".hidden", "a.clearmark-tmp"]


def test_journal_lines_are_plain_json(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append({"rel": "ü/é.jpg", "status": "copied"})
    journal.close()
    assert json.loads(journal.path.read_text(encoding="utf-8"))["rel"] == "ü/é.jpg"


class PlainRemover:
    """A remover with ``remove`` only: it cannot say how it removed a region."""

    def remove(self, rgb: np.ndarray, detection: Detection) -> np.ndarray:
        return LocalRemover().remove(rgb, detection)


def test_clean_records_the_method_per_region_and_makes_previews_only_when_asked(
        tmp_path: Path) -> None:
    src = tmp_path / "src"
    save(src / "a.png", with_text(photo("coffee", 400, 300))[0])
    item = next(find_inputs([src]))
    plain = CleanTask(src, tmp_path / "plain")(item)  # the library default: no previews
    assert plain["status"] == "cleaned" and "thumbs" not in plain
    assert not (tmp_path / "plain/.clearmark").exists()
    assert {r["method"] for r in plain["regions"]} <= {"matte", "harmonic", "telea", "ns"}
    unexplained = CleanTask(src, tmp_path / "other", remover=PlainRemover())(item)
    assert [r["method"] for r in unexplained["regions"]] == [None] * len(plain["regions"])
    shown = CleanTask(src, tmp_path / "shown", thumbs=True)(item)
    assert (tmp_path / "shown" / shown["thumbs"]["after"]).is_file()


def test_a_preview_that_cannot_be_written_costs_the_picture_not_the_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(self: Thumbnailer, rel: str, *args: object) -> None:
        raise OutputError(str(self.dst / rel), "no space left on device")

    monkeypatch.setattr(Thumbnailer, "cleaned", full_disk)
    src = tmp_path / "src"
    save(src / "a.png", with_text(photo("coffee", 400, 300))[0])
    record = CleanTask(src, tmp_path / "dst", thumbs=True)(next(find_inputs([src])))
    assert record["status"] == "cleaned" and record["error"] is None
    assert "no space left" in record["thumbs"]["error"]
