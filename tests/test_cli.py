"""The command line, run for real: ``clearmark detect`` and ``clearmark clean``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clearmark._cli import main

from badfiles import BAD, GOOD
from photos import photo, save, scenes, with_emblem, with_stamp, with_text

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A small folder: two watermarked photos (one nested), two clean ones, and a non-image."""
    folder = tmp_path / "src"
    save(folder / "wm_corner.jpg", with_text(photo("coffee"))[0], quality=92)
    save(folder / "trip/wm_dark.png", with_text(photo("chelsea"), corner="tl",
                                                colour=(20, 20, 20))[0])
    save(folder / "clean.jpg", np.array(photo("astronaut")), quality=90)
    save(folder / "trip/clean.webp", np.array(photo("rocket")), quality=90)
    (folder / "notes.txt").write_text("not an image")
    return folder


def _image(path: Path) -> tuple[str | None, tuple[int, int]]:
    """Format and size of a fully decoded image file (fails on a torn write)."""
    with Image.open(path) as image:
        image.load()
        return image.format, image.size


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- detect -----------------------------------------------------------------------------------


def test_detect_writes_one_line_per_image_with_relative_paths(
        src: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(src.parent)
    assert main(["detect", "src", "--jobs", "1", "--masks", "masks"]) == 0
    records = {r["path"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    images = {"src/clean.jpg", "src/trip/clean.webp", "src/trip/wm_dark.png", "src/wm_corner.jpg"}
    assert images <= set(records)
    wm = records["src/wm_corner.jpg"]
    assert wm["watermarked"] is True and wm["width"] == 800 and wm["height"] == 600
    assert wm["regions"] and set(wm["regions"][0]) == {"x", "y", "width", "height", "score",
                                                       "kind"}
    assert wm["mask"] == "masks/wm_corner.png"
    with Image.open(src.parent / "masks/wm_corner.png") as image:
        mask = np.asarray(image)
    assert mask.shape == (600, 800) and set(np.unique(mask)) == {0, 255}
    assert records["src/trip/wm_dark.png"]["mask"] == "masks/trip/wm_dark.png"
    clean = records["src/clean.jpg"]
    assert clean["watermarked"] is False and clean["mask"] is None and clean["error"] is None


def test_detect_reports_bad_files_and_goes_on(bad_corpus: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.jsonl"
    folder = next(iter(bad_corpus.values())).parent
    assert main(["detect", str(folder), "--jsonl", str(out), "--jobs", "2"]) == 0
    records = {Path(str(r["path"])).name: r for r in _lines(out)}
    assert len(records) == len(bad_corpus)
    for name, path in bad_corpus.items():
        record = records[path.name]
        if name in BAD:
            assert BAD[name] in str(record["error"]) and path.name in str(record["error"])
            assert record["watermarked"] is None
        if name in GOOD:
            assert record["error"] is None and record["width"]
    assert f"{len(bad_corpus)} seen" in capsys.readouterr().err


def test_sensitivity_moves_the_decision(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    # a faint mark that scores about 0.46: found at high sensitivity, left alone at low
    image, _ = with_text(photo("chelsea"), "@sunny_days_88", opacity=0.32, height_share=0.03)
    path = save(tmp_path / "faint.png", image)
    found = {}
    for level in ("low", "normal", "high"):
        assert main(["detect", str(path), "--sensitivity", level, "--jobs", "1"]) == 0
        (record,) = map(json.loads, capsys.readouterr().out.splitlines())
        found[level] = record["watermarked"]
    assert found == {"low": False, "normal": False, "high": True}


def test_sensitivity_and_threshold_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["detect", str(tmp_path), "--sensitivity", "high", "--threshold", "0.4"])


def test_detect_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["detect", str(tmp_path / "nope")]) == 2


# -- clean ------------------------------------------------------------------------------------


def test_clean_writes_every_image_and_never_touches_src(src: Path, tmp_path: Path) -> None:
    before = _digests(src)
    dst = tmp_path / "dst"
    report = tmp_path / "clean.jsonl"
    assert main(["clean", str(src), "--out", str(dst), "--jsonl", str(report), "--jobs", "2"]) == 0
    assert _digests(src) == before
    for name in ("clean.jpg", "trip/clean.webp"):  # judged clean: byte-for-byte copies
        assert (dst / name).read_bytes() == (src / name).read_bytes()
    for name in ("wm_corner.jpg", "trip/wm_dark.png"):
        assert _image(dst / name) == (_image(src / name)[0], (800, 600))
        assert (dst / name).read_bytes() != (src / name).read_bytes()
    statuses = {Path(str(r["path"])).name: r["status"] for r in _lines(report)}
    assert statuses == {"wm_corner.jpg": "cleaned", "wm_dark.png": "cleaned",
                        "clean.jpg": "copied", "clean.webp": "copied", "notes.txt": "skipped"}


def test_cleaned_pixels_are_closer_to_the_original(tmp_path: Path) -> None:
    original = photo("coffee")
    marked, truth = with_text(original)
    save(tmp_path / "src/a.png", marked)
    assert main(["clean", str(tmp_path / "src"), "--out", str(tmp_path / "dst"),
                 "--jobs", "1"]) == 0
    with Image.open(tmp_path / "dst/a.png") as image:
        cleaned = np.asarray(image.convert("RGB")).astype(int)
    zone = truth > 0
    assert np.abs(cleaned[zone] - original[zone]).mean() < \
        0.4 * np.abs(marked[zone].astype(int) - original[zone]).mean()


def test_clean_refuses_dst_inside_src(src: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _digests(src)
    assert main(["clean", str(src), "--out", str(src / "out")]) == 2
    assert "inside SRC" in capsys.readouterr().err
    assert _digests(src) == before
    assert main(["clean", str(src), "--out", str(src)]) == 2


def test_clean_reports_unreadable_files_and_goes_on(bad_corpus: dict[str, Path],
                                                   tmp_path: Path) -> None:
    folder = next(iter(bad_corpus.values())).parent
    report = tmp_path / "r.jsonl"
    assert main(["clean", str(folder), "--out", str(tmp_path / "dst"), "--jsonl", str(report),
                 "--jobs", "1"]) == 0
    records = {Path(str(r["path"])).name: r for r in _lines(report)}
    assert len(records) == len(bad_corpus)
    for name, path in bad_corpus.items():
        record = records[path.name]
        if name in BAD:
            assert record["status"] == "failed" and path.name in str(record["error"])
            assert not (tmp_path / "dst" / path.name).exists()
        if name in GOOD:
            assert record["status"] in ("copied", "cleaned")
            assert (tmp_path / "dst" / path.name).exists()


def test_rerun_resumes_and_redoes_only_changed_or_missing_work(src: Path, tmp_path: Path) -> None:
    dst, report = tmp_path / "dst", tmp_path / "r.jsonl"
    args = ["clean", str(src), "--out", str(dst), "--jsonl", str(report), "--jobs", "1"]
    assert main(args) == 0
    assert not any(r["resumed"] for r in _lines(report))
    (dst / "clean.jpg").unlink()  # lost output: redone
    save(src / "trip/clean.webp", np.array(photo("coins")), quality=90)  # changed source: redone
    os.utime(src / "trip/clean.webp", ns=(1, 1))
    assert main(args) == 0
    resumed = {Path(str(r["path"])).name: r["resumed"] for r in _lines(report)}
    assert resumed == {"wm_corner.jpg": True, "wm_dark.png": True, "clean.jpg": False,
                       "clean.webp": False, "notes.txt": False}
    assert (dst / "trip/clean.webp").read_bytes() == (src / "trip/clean.webp").read_bytes()
    assert main([*args, "--no-resume"]) == 0
    assert not any(r["resumed"] for r in _lines(report))


def test_half_written_outputs_do_not_count(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "wm_corner.jpg").write_bytes(b"\xff\xd8\xff half")  # no journal record: redone
    (dst / ".wm_corner.jpg.x1y2z3.clearmark-tmp").write_bytes(b"partial")
    assert main(["clean", str(src), "--out", str(dst), "--jobs", "1"]) == 0
    assert _image(dst / "wm_corner.jpg")[1] == (800, 600)
    assert not list(dst.rglob("*.clearmark-tmp"))


def test_kill_9_mid_run_loses_nothing_and_redoes_nothing(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    names = ["coffee", "astronaut", "chelsea", "rocket"]
    for i in range(40):
        image = photo(names[i % 4], 1024, 768)
        if i % 2 == 0:
            image = with_text(image, f"@user_{i:03d}")[0]
        save(src / f"d{i % 3}/img{i:03d}.jpg", np.array(image), quality=90)
    command = [sys.executable, "-m", "clearmark", "clean", str(src), "--out", str(dst),
               "--jobs", "2"]
    journal = dst / ".clearmark" / "journal.jsonl"
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _journal_count(journal) < 6:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_first = {r["rel"] for r in _journal(journal) if r["status"] in ("cleaned", "copied")}
    assert 6 <= len(done_first) < 40, "the kill must land mid-run"
    lines_first = _journal_count(journal)

    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    second = _journal(journal)[lines_first:]
    redone = {r["rel"] for r in second} & done_first
    assert not redone, f"redid finished work: {sorted(redone)}"
    final = {r["rel"]: r["status"] for r in _journal(journal)}
    assert len(final) == 40 and set(final.values()) <= {"cleaned", "copied"}
    for path in src.rglob("*.jpg"):
        assert _image(dst / path.relative_to(src))[1] == (1024, 768)
    assert not list(dst.rglob("*.clearmark-tmp"))
    assert f"{len(done_first)} resumed" in finished.stderr


def _journal(path: Path) -> list[dict[str, str]]:
    records = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a torn last line from the kill
            records.append(json.loads(line))
    return records


def _journal_count(path: Path) -> int:
    return len(_journal(path)) if path.exists() else 0


def test_console_script_cleans_the_samples(tmp_path: Path) -> None:
    installed = Path(sys.executable).parent / "clearmark"  # the console script, when installed
    command = [str(installed)] if installed.exists() else [sys.executable, "-m", "clearmark"]
    dst = tmp_path / "samples-clean"
    result = subprocess.run([*command, "clean", str(SAMPLES), "--out", str(dst)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for sample in SAMPLES.iterdir():
        if sample.suffix in (".py", ".md"):
            continue
        out = dst / sample.name
        if sample.name.startswith("clean_"):
            assert out.read_bytes() == sample.read_bytes()
        else:
            assert out.read_bytes() != sample.read_bytes()
            assert _image(out)[0] == _image(sample)[0]
    assert "0 failed" in result.stderr


def test_progress_bar_is_drawn_on_a_terminal_only(src: Path, tmp_path: Path) -> None:
    from io import StringIO

    from rich.console import Console

    screen = StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)
    assert main(["clean", str(src), "--out", str(tmp_path / "a"), "--jobs", "1"],
                console=terminal) == 0
    assert "clean" in screen.getvalue() and "5/5" in screen.getvalue()
    log = StringIO()
    quiet = Console(file=log, force_terminal=False, width=100)
    assert main(["clean", str(src), "--out", str(tmp_path / "b"), "--jobs", "1"],
                console=quiet) == 0
    assert log.getvalue().count("\n") == 1  # just the summary line
    assert "5 seen" in log.getvalue() and "2 cleaned" in log.getvalue()


def test_folder_evidence_finds_a_mark_no_single_image_shows(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean = scenes(12)
    marked, truths = with_emblem(clean)
    folder = tmp_path / "app"
    for i, image in enumerate(marked):
        save(folder / f"{i:02d}.png", image)
    save(folder / "other/plain.png", np.array(photo("coins")))
    assert main(["detect", str(folder), "--jobs", "1", "--no-folder-evidence"]) == 0
    alone = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert not any(r["watermarked"] for r in alone)
    assert main(["detect", str(folder), "--jobs", "2"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    flagged = {Path(r["path"]).name for r in records if r["watermarked"]}
    assert flagged == {f"{i:02d}.png" for i in range(12)}
    assert {r["regions"][0]["kind"] for r in records if r["watermarked"]} == {"folder"}

    dst, report = tmp_path / "dst", tmp_path / "clean.jsonl"
    assert main(["clean", str(folder), "--out", str(dst), "--jobs", "1", "--jsonl",
                 str(report)]) == 0
    index = json.loads((dst / ".clearmark/marks/index.json").read_text())
    assert [name for _, name in index[folder.as_posix()] if name]  # kept for reruns
    # removed with the matte the folder's photos estimated together
    cleaned = {Path(r["path"]).name: r for r in map(json.loads, report.read_text().splitlines())}
    assert {cleaned[f"{i:02d}.png"]["regions"][0]["method"] for i in range(12)} == {
        "folder-matte"}
    zone = truths[0] > 0
    for i in range(12):
        out = np.asarray(Image.open(dst / f"{i:02d}.png").convert("RGB"), np.float64)
        error = np.sqrt(np.mean((out[zone] - clean[i][zone]) ** 2))
        assert error < 3.0, f"{i:02d}.png: {error:.1f} grey levels off in the mark's zone"
    assert (dst / "other/plain.png").read_bytes() == (folder / "other/plain.png").read_bytes()
    assert main(["clean", str(folder), "--out", str(tmp_path / "dst2"), "--jobs", "1"]) == 0
    assert (dst / "00.png").read_bytes() != (folder / "00.png").read_bytes()


# -- learn, --template ------------------------------------------------------------------------


def test_learn_makes_a_template_that_detect_and_clean_use(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "agency"
    for i, image in enumerate(scenes(16)):
        save(folder / f"{i:02d}.jpg", with_stamp(image, 400, 360), quality=92)
    template = tmp_path / "lumen.npz"
    assert main(["learn", str(folder), "--out", str(template)]) == 0
    assert "from 16 images" in capsys.readouterr().err
    # the mark elsewhere, larger, on a photo of another size; and a clean photo
    other = tmp_path / "other"
    save(other / "marked.png", with_stamp(np.array(photo("coins", 1024, 768)), 60, 60, 1.5))
    save(other / "clean.png", np.array(photo("astronaut", 900, 675)))
    assert main(["detect", str(other), "--template", str(template), "--jobs", "1"]) == 0
    records = {Path(r["path"]).name: r for r in map(json.loads,
                                                      capsys.readouterr().out.splitlines())}
    assert "template" in {region["kind"] for region in records["marked.png"]["regions"]}
    assert not records["clean.png"]["watermarked"]
    dst = tmp_path / "dst"
    assert main(["clean", str(other), "--out", str(dst), "--template", str(template),
                 "--no-report", "--jobs", "1"]) == 0
    assert (dst / "clean.png").read_bytes() == (other / "clean.png").read_bytes()
    assert (dst / "marked.png").read_bytes() != (other / "marked.png").read_bytes()


def test_learn_says_when_a_folder_shares_no_mark(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    names = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins",
             "hubble_deep_field", "clock", "immunohistochemistry", "brick", "gravel", "grass")
    for name in names:  # twelve different photos, nothing in common
        save(tmp_path / "plain" / f"{name}.png", np.array(photo(name, 640, 480)))
    assert main(["learn", str(tmp_path / "plain"), "--out", str(tmp_path / "m.npz")]) == 1
    assert "no mark shared" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()
    # and folder evidence finds nothing in such a folder
    assert main(["detect", str(tmp_path / "plain"), "--jobs", "1"]) == 0
    kinds = {region["kind"] for line in capsys.readouterr().out.splitlines()
             for region in json.loads(line)["regions"]}
    assert "folder" not in kinds


def test_a_template_that_is_not_one_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "logo.npz"
    bogus.write_bytes(b"not a mark")
    assert main(["detect", str(tmp_path), "--template", str(bogus)]) == 2
    assert "logo.npz" in capsys.readouterr().err
