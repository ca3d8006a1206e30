"""The review page: thumbnails, the page builder, and ``clean`` / ``report`` writing it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from clearmark import Region
from clearmark._cli import main
from clearmark._report import (
    LOW_BAND,
    Thumbnailer,
    is_low,
    load_runs,
    record_run,
    render,
    write_report,
)

from photos import photo, save, scenes, with_text

METHODS = {"matte", "harmonic", "telea", "ns"}


def _record(rel: str, status: str, score: float | None = None, **fields: Any) -> dict[str, Any]:
    """A journal record as CleanTask writes it."""
    return {"path": f"src/{rel}", "rel": rel, "output": f"dst/{rel}", "status": status,
            "width": 800, "height": 600, "watermarked": status == "cleaned", "score": score,
            "regions": [], "error": None, "fingerprint": [1, 2], "seconds": 0.25, **fields}


def _box(x: int, y: int, kind: str = "text", method: str = "matte") -> dict[str, Any]:
    return {"x": x, "y": y, "width": 120, "height": 30, "score": 0.9, "kind": kind,
            "method": method}


RECORDS = [
    _record("a.jpg", "cleaned", 0.97, regions=[_box(600, 540), _box(10, 10, "logo", "telea")],
            thumbs={"before": "t/a-before.jpg", "after": "t/a-after.jpg",
                    "zooms": ["t/a-zoom0.jpg", "t/a-zoom1.jpg"]}),
    _record("b.jpg", "cleaned", 0.55, regions=[_box(5, 5, method="harmonic")]),  # low
    _record("c.jpg", "copied", 0.05, thumbs={"before": "t/c-before.jpg"}),
    _record("d.jpg", "copied", 0.41),  # low: a near miss
    _record("e.jpg", "failed", None, watermarked=None, thumbs={"before": "t/e-before.jpg"},
            error="src/e.jpg: truncated or corrupt image data"),
    _record("notes.txt", "skipped", None, error="src/notes.txt: not an image file name"),
]


def _data(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page,
                      re.S)
    assert found is not None
    return json.loads(found[1])  # type: ignore[no-any-return]


def _count(page: str, key: str) -> int:
    found = re.search(rf'<dd id="count-{key}">(\d+)</dd>', page)
    assert found is not None, key
    return int(found[1])


# -- the page builder -----------------------------------------------------------------------


def test_page_counts_filters_and_entries() -> None:
    page = render(RECORDS, [{"seconds": 2.5, "finished": "2026-01-02T03:04:05+00:00"}],
                  threshold=0.5, title="dst")
    counts = {key: _count(page, key) for key in ("seen", "watermarked", "cleaned", "unchanged",
                                                  "failed", "skipped", "low")}
    assert counts == {"seen": 6, "watermarked": 2, "cleaned": 2, "unchanged": 2, "failed": 1,
                      "skipped": 1, "low": 2}
    assert re.search(r'data-filter="failed"[^>]*>Failed <span class="n">1</span>', page)
    assert "<td>logo</td><td>1</td><td>1</td>" in page and "<td>text</td><td>2</td><td>2</td>" \
        in page  # per kind: regions, images
    assert "removal methods (regions): harmonic 1, matte 1, telea 1" in page
    assert "time: 2.5 s" in page and "worker time 1.5 s" in page
    assert f"within {LOW_BAND:g} of the detector threshold 0.5" in page

    entries = {e["path"]: e for e in _data(page)["entries"]}
    assert entries["a.jpg"]["regions"][1] == [10, 10, 120, 30, 0.9, "logo", "telea",
                                              "t/a-zoom1.jpg"]
    assert entries["a.jpg"]["before"] == "t/a-before.jpg" and "low" not in entries["a.jpg"]
    assert entries["b.jpg"]["low"] == 1 and "before" not in entries["b.jpg"]
    failed = entries["e.jpg"]
    assert failed["error"].endswith("corrupt image data") and "before" not in failed  # reason only
    assert entries["c.jpg"]["before"] == "t/c-before.jpg" and entries["c.jpg"]["regions"] == []


def test_every_string_is_escaped() -> None:
    nasty = '<script>alert("x")</script> <img src=x onerror=alert(1)> \'&amp; é \u2028.jpg'
    records = [_record(nasty, "failed", error=f"src/{nasty}: </script><b>bold</b> <!--"),
               _record("k.jpg", "cleaned", 0.9, regions=[_box(0, 0, kind="<i>k</i>")]),
               _record("bad-\udcff.jpg", "copied", 0.1)]  # not valid UTF-8 on disk
    page = render(records, [], threshold=0.5, title='<dst> & "co"')
    assert page.count("<script") == 2 and page.count("</script>") == 2  # ours only
    assert "<img src=x" not in page and "<b>bold" not in page and "<!--" not in page
    assert "<i>k</i>" not in page and "<td>&lt;i&gt;k&lt;/i&gt;</td>" in page
    assert "<title>clearmark report: &lt;dst&gt; &amp; &quot;co&quot;</title>" in page
    entries = _data(page)["entries"]
    assert entries[0]["path"] == nasty and entries[0]["error"].endswith("<b>bold</b> <!--")
    assert entries[2]["path"] == "bad-\udcff.jpg"
    page.encode("utf-8")  # writable as it is


def test_low_confidence_is_near_the_threshold_either_way() -> None:
    def low(status: str, score: float | None) -> bool:
        return is_low({"status": status, "score": score}, 0.5)

    assert low("cleaned", 0.6) and low("copied", 0.4) and low("cleaned", 0.5)
    assert not low("cleaned", 0.7) and not low("copied", 0.2)
    assert not low("failed", 0.5) and not low("copied", None)


def test_many_entries_go_in_as_data_and_are_drawn_a_page_at_a_time() -> None:
    records = [_record(f"photos/{i // 1000:03d}/IMG_{i:06d}.jpg", "copied", 0.1,
                       thumbs={"before": f".clearmark/thumbs/ab/{i:020d}-before.jpg"})
               for i in range(20_000)]
    page = render(records, [], threshold=0.5, title="dst")
    data = _data(page)
    assert len(data["entries"]) == 20_000 and data["pageSize"] == 48
    assert 'class="card"' not in page  # no card in the markup: the script draws one page
    assert len(page) / 20_000 < 150  # bytes per entry: 100 000 images make a page of ~15 MB


def test_older_or_damaged_records_still_make_a_page(tmp_path: Path) -> None:
    older = {"path": "src/old.jpg", "rel": "old.jpg", "status": "cleaned", "score": 0.9,
             "watermarked": True, "regions": [{"x": 1, "y": 2, "width": 3, "height": 4,
                                               "score": 0.9, "kind": "text"}]}  # no method
    damaged = {"rel": "x.jpg", "status": "copied", "score": "high", "regions": "none",
               "thumbs": ["not", "a", "dict"], "seconds": float("nan")}
    page = write_report(tmp_path, [older, damaged], threshold=0.5)
    entries = _data(page.read_text())["entries"]
    assert entries[0]["regions"] == [[1, 2, 3, 4, 0.9, "text", "", None]]
    assert entries[1] == {"path": "x.jpg", "status": "copied", "score": None, "regions": []}


def test_runs_give_the_time_and_the_threshold(tmp_path: Path) -> None:
    record_run(tmp_path, seconds=3.0, threshold=0.5, seen=4, resumed=0)
    record_run(tmp_path, seconds=1.5, threshold=0.8, seen=4, resumed=3)
    with open(tmp_path / ".clearmark/runs.jsonl", "a") as handle:
        handle.write('{"torn": ')
    assert [run["seen"] for run in load_runs(tmp_path)] == [4, 4]
    page = write_report(tmp_path, [_record("a.jpg", "copied", 0.7)]).read_text()
    assert "time: 4.5 s over 2 runs" in page
    assert _count(page, "low") == 1  # 0.7 is near the last run's threshold, 0.8


# -- thumbnails -------------------------------------------------------------------------------


def _bbox(mask: np.ndarray) -> Region:
    rows, cols = np.nonzero(mask)
    return Region(int(cols.min()), int(rows.min()), int(np.ptp(cols)) + 1,
                  int(np.ptp(rows)) + 1)


def test_thumbnails_of_100_images_stay_small(tmp_path: Path) -> None:
    thumbs = Thumbnailer(tmp_path)
    made: list[dict[str, Any]] = []
    for i, image in enumerate(scenes(100, 800, 600)):
        if i % 3:
            made.append(thumbs.unchanged(f"{i}.jpg", image))
            continue
        marked, truth = with_text(image, f"@shop_{i:03d}")
        made.append(thumbs.cleaned(f"{i}.jpg", marked, image, [_bbox(truth)]))
    files = sorted((tmp_path / ".clearmark/thumbs").rglob("*.jpg"))
    named = {str(tmp_path / p) for m in made for p in [m["before"], m.get("after"),
                                                        *m.get("zooms", [])] if p}
    assert {str(f) for f in files} == named and len(files) == 100 + 2 * 34
    grid = sum(f.stat().st_size for f in files if f.name.endswith("-before.jpg"))
    everything = sum(f.stat().st_size for f in files)
    assert grid < 400_000  # 100 grid thumbnails of busy photos: ~370 KB
    assert everything < 800_000  # and with a third cleaned (after, zooms): ~700 KB
    for name in (made[0]["before"], made[0]["after"], made[1]["before"]):
        with Image.open(tmp_path / name) as image:
            assert image.format == "JPEG" and image.size == (192, 144)
    with Image.open(tmp_path / made[0]["zooms"][0]) as zoom:
        assert zoom.width <= 256 < 2 * zoom.width and zoom.height < zoom.width  # before over after


def test_regions_are_drawn_on_the_before_thumbnail_only(tmp_path: Path) -> None:
    image = np.full((600, 800, 3), 128, np.uint8)
    made = Thumbnailer(tmp_path).cleaned("a.png", image, image, [Region(400, 300, 200, 100)])

    def pixels(name: str) -> np.ndarray:
        with Image.open(tmp_path / name) as thumb:
            return np.asarray(thumb.convert("RGB")).astype(int)

    before, after = pixels(made["before"]), pixels(made["after"])
    assert np.abs(before[75:93, 95:98] - 128).max() > 60  # the box's left edge (x 400 -> 96)
    assert np.abs(before[20:60, 20:60] - 128).max() < 8  # elsewhere untouched
    assert np.abs(after - 128).max() < 8


def test_previews_an_image_no_longer_has_are_deleted(tmp_path: Path) -> None:
    image = np.array(photo("coffee", 480, 360))
    thumbs = Thumbnailer(tmp_path)
    regions = [Region(20 + 120 * i, 40, 80, 30) for i in range(3)]
    first = thumbs.cleaned("a.png", image, image, regions)
    assert len(first["zooms"]) == 3 and all((tmp_path / z).is_file() for z in first["zooms"])
    again = thumbs.cleaned("a.png", image, image, regions[:1])  # redone with one region
    assert again["zooms"] == first["zooms"][:1]
    assert [(tmp_path / z).is_file() for z in first["zooms"]] == [True, False, False]
    unchanged = thumbs.unchanged("a.png", image)  # redone and left as it was
    assert not (tmp_path / first["after"]).exists() and not (tmp_path / first["zooms"][0]).exists()
    assert (tmp_path / unchanged["before"]).is_file()
    kept = thumbs.unchanged("b.png", image)  # another image's previews are not touched
    assert (tmp_path / kept["before"]).is_file() and (tmp_path / unchanged["before"]).is_file()


# -- the command line -------------------------------------------------------------------------


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    save(folder / "wm.jpg", with_text(photo("coffee", 480, 360))[0], quality=92)
    save(folder / "sub/wm2.png", with_text(photo("chelsea", 480, 360), "@my_cats_2024",
                                           corner="tl", colour=(20, 20, 20))[0])
    save(folder / "clean.jpg", np.array(photo("astronaut", 480, 360)), quality=90)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    (folder / "notes.txt").write_text("not an image")
    return folder


def _journal(dst: Path) -> dict[str, dict[str, Any]]:
    lines = (dst / ".clearmark/journal.jsonl").read_text().splitlines()
    return {r["rel"]: r for r in map(json.loads, lines)}


def test_clean_writes_the_review_page_and_its_thumbnails(src: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    dst = tmp_path / "dst"
    jsonl = tmp_path / "r.jsonl"
    assert main(["clean", str(src), "--out", str(dst), "--jobs", "1", "--jsonl", str(jsonl)]) == 0
    assert f"review: {dst / 'report.html'}" in capsys.readouterr().err
    page = (dst / "report.html").read_text()
    assert [_count(page, k) for k in ("seen", "cleaned", "unchanged", "failed", "skipped")] == \
        [5, 2, 1, 1, 1]
    records = _journal(dst)
    for rel in ("wm.jpg", "sub/wm2.png"):
        record = records[rel]
        assert {r["method"] for r in record["regions"]} <= METHODS
        thumbs = record["thumbs"]
        assert len(thumbs["zooms"]) == len(record["regions"])
        for name in (thumbs["before"], thumbs["after"], *thumbs["zooms"]):
            assert (dst / name).is_file()
    assert set(records["clean.jpg"]["thumbs"]) == {"before"}
    assert "thumbs" not in records["broken.jpg"]
    public = {Path(r["path"]).name: r for r in map(json.loads, jsonl.read_text().splitlines())}
    assert public["wm.jpg"]["regions"][0]["method"] in METHODS  # the JSONL report says it too
    entries = {e["path"]: e for e in _data(page)["entries"]}
    assert entries["sub/wm2.png"]["after"] == records["sub/wm2.png"]["thumbs"]["after"]


def test_no_report_then_report_later(src: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "dst"
    assert main(["clean", str(src), "--out", str(dst), "--jobs", "1", "--no-report"]) == 0
    assert not (dst / "report.html").exists() and not (dst / ".clearmark/thumbs").exists()
    assert "review:" not in capsys.readouterr().err
    assert main(["report", str(dst)]) == 0
    assert "5 seen, 2 cleaned, 1 unchanged, 1 failed, 1 skipped" in capsys.readouterr().err
    entries = _data((dst / "report.html").read_text())["entries"]
    assert len(entries) == 5 and not any("before" in e for e in entries)  # no previews made
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "holds no clean run" in capsys.readouterr().err


def test_a_resumed_run_reports_every_record_of_the_journal(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    assert main(["clean", str(src), "--out", str(dst), "--jobs", "1"]) == 0
    save(src / "later.jpg", with_text(photo("rocket", 480, 360), "@late_one")[0], quality=90)
    assert main(["clean", str(src), "--out", str(dst), "--jobs", "1"]) == 0
    page = (dst / "report.html").read_text()
    assert _count(page, "seen") == 6 and _count(page, "cleaned") == 3
    assert len(load_runs(dst)) == 2 and "over 2 runs" in page
    assert "before" in _journal(dst)["later.jpg"]["thumbs"]
