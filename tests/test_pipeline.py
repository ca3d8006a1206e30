"""The folder runner: inputs, ordering, the journal, and surviving dying workers."""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest

from clearmark import Detection, LocalRemover, OutputError
from clearmark._pipeline import (
    CleanTask,
    Input,
    Journal,
    find_inputs,
    fingerprint,
    is_done,
    remove_stale_temp_files,
    run,
)
from clearmark._report import Thumbnailer

from photos import photo, save, with_text


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
