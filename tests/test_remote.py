"""Removal through an endpoint: what is sent per image, APIRemover, and `clean --remover api`."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clearmark import APIRemover, Detection, Region, clean
from clearmark._cli import main
from clearmark._remote import plan_removal
from clearmark._remove import removal_mask
from clearmark._server import ServerConfig, create_app

from photos import photo, save, with_text
from serving import TOKEN, Recorder, live_server


def _detection(regions: list[Region], height: int = 300, width: int = 400) -> Detection:
    mask = np.zeros((height, width), np.uint8)
    for r in regions:
        mask[r.y + 1:r.y2 - 1, r.x + 1:r.x2 - 1] = 255
    return Detection(True, 0.9, tuple(regions), mask)


def test_a_few_boxes_go_as_rectangles() -> None:
    plan = plan_removal(_detection([Region(300, 260, 90, 25), Region(10, 10, 40, 12)]))
    assert plan == {"rectangles": [{"x": 10, "y": 10, "width": 40, "height": 12},
                                   {"x": 300, "y": 260, "width": 90, "height": 25}]}


def test_a_tiled_mark_goes_as_a_mask_of_exactly_the_pixels_to_rewrite() -> None:
    tiles = [Region(x, y, 12, 8) for x in range(0, 390, 24) for y in range(0, 290, 20)]
    detection = _detection(tiles)  # 255 boxes: 50 rectangles would cover far too much
    plan = plan_removal(detection)
    assert set(plan) == {"mask_file"}
    with Image.open(io.BytesIO(plan["mask_file"])) as image:
        sent = np.asarray(image)
    assert np.array_equal(sent, removal_mask(detection.mask, detection.regions, 2))


def test_nothing_is_planned_for_a_clean_image() -> None:
    assert plan_removal(Detection(False, 0.1, (), np.zeros((5, 5), np.uint8))) == {}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder(create_app(ServerConfig(tokens=frozenset({TOKEN}))))
    with live_server(recorder) as url:
        yield url, recorder


def test_api_remover_cleans_through_the_endpoint_and_pickles(
        server: tuple[str, Recorder]) -> None:
    url, recorder = server
    image, truth = with_text(photo("coffee", 400, 300))
    remover = APIRemover(url, token=TOKEN, rate=None)
    cleaned = clean(image, remover=remover)
    zone = truth > 0
    assert cleaned.shape == image.shape
    assert np.abs(cleaned[zone].astype(int) - image[zone]).mean() > 20
    assert recorder.submissions[-1] == {"image_file", "rectangles", "sync"}
    assert TOKEN not in repr(remover)
    copy = pickle.loads(pickle.dumps(remover))  # travels to worker processes
    assert np.array_equal(clean(image, remover=copy), cleaned)
    remover.close()
    copy.close()


def _folder(root: Path) -> Path:
    src = root / "src"
    for i, name in enumerate(["coffee", "astronaut", "chelsea", "rocket", "camera", "coins"]):
        rgb = np.array(photo(name, 400, 300))
        if i % 2 == 0:
            rgb = with_text(rgb, f"@shop_{i:02d}", corner="br" if i % 4 else "tl")[0]
        save(src / f"part{i % 2}/img{i}.jpg", rgb, quality=90)
    save(src / "alpha.png", np.dstack([with_text(photo("coffee", 400, 300))[0],
                                       np.full((300, 400), 200, np.uint8)]))
    (src / "notes.txt").write_text("not an image")
    return src


def _records(path: Path) -> dict[str, dict[str, object]]:
    return {str(r["rel"]): r for r in map(json.loads, path.read_text().splitlines())}


def _without_method(regions: object) -> list[dict[str, object]]:
    assert isinstance(regions, list)
    return [{k: v for k, v in r.items() if k != "method"} for r in regions]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_clean_via_the_api_matches_the_local_path_record_for_record(
        tmp_path: Path, server: tuple[str, Recorder], monkeypatch: pytest.MonkeyPatch) -> None:
    url, recorder = server
    src = _folder(tmp_path)
    monkeypatch.delenv("CLEARMARK_TOKEN", raising=False)
    assert main(["clean", str(src), "--out", str(tmp_path / "local"), "--jobs", "2"]) == 0
    monkeypatch.setenv("CLEARMARK_TOKEN", TOKEN)
    before = len(recorder.submissions)
    args = ["clean", str(src), "--out", str(tmp_path / "api"), "--api-base", url,
            "--rate", "100", "--jobs", "2"]
    assert main(args) == 0
    local = _records(tmp_path / "local/.clearmark/journal.jsonl")
    remote = _records(tmp_path / "api/.clearmark/journal.jsonl")
    assert set(remote) == set(local) and len(local) == 8
    for rel, record in local.items():
        other = remote[rel]
        assert set(other) == set(record)  # one record format, whichever remover
        for key in ("status", "width", "height", "watermarked", "score"):
            assert other[key] == record[key], (rel, key)
        assert _without_method(other["regions"]) == _without_method(record["regions"]), rel
        assert all(r["method"] == "api" for r in other["regions"])  # the endpoint says no more
        if record["status"] == "cleaned":  # the review page's previews, made on both paths
            assert set(other["thumbs"]) == set(record["thumbs"]) == {"before", "after", "zooms"}
            assert len(other["thumbs"]["zooms"]) == len(other["regions"])
            for name in (other["thumbs"]["before"], other["thumbs"]["after"],
                         *other["thumbs"]["zooms"]):
                assert (tmp_path / "api" / name).is_file()
    watermarked = [rel for rel, r in local.items() if r["watermarked"]]
    assert "alpha.png" in watermarked and len(watermarked) >= 3
    assert len(recorder.submissions) - before == len(watermarked)  # clean images: not sent
    for rel, record in remote.items():
        out = tmp_path / "api" / rel
        if record["status"] == "copied":
            assert _digest(out) == _digest(src / rel)
        elif record["status"] == "cleaned":
            with Image.open(out) as image, Image.open(src / rel) as original:
                assert (image.format, image.size, image.mode) == \
                    (original.format, original.size, original.mode)  # alpha kept too
    # a second run resumes everything and sends nothing
    assert main(args) == 0
    assert len(recorder.submissions) - before == len(watermarked)


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--remover", "api"], {}, "needs a token"),
    (["--api-base", "ftp://x"], {"CLEARMARK_TOKEN": "t"}, "http(s) URL"),
    (["--remover", "local", "--api-base", "http://x"], {}, "--api-base is for the API"),
    (["--remover", "api", "--rate", "0"], {"CLEARMARK_TOKEN": "t"}, "--rate"),
    (["--remover", "api", "--token-file", "/nonexistent/token"], {}, "token file"),
])
def test_api_usage_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str], args: list[str],
                                       env: dict[str, str], message: str) -> None:
    monkeypatch.delenv("CLEARMARK_TOKEN", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "src").mkdir()
    assert main(["clean", str(tmp_path / "src"), "--out", str(tmp_path / "dst"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "dst").exists()


def test_failures_are_records_and_the_token_stays_out_of_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    src = _folder(tmp_path)
    monkeypatch.setenv("CLEARMARK_TOKEN", "wrong-token-abc")
    app = create_app(ServerConfig(tokens=frozenset({TOKEN})))
    with live_server(app) as url:
        assert main(["clean", str(src), "--out", str(tmp_path / "dst"), "--api-base", url,
                     "--jobs", "1", "--rate", "100", "--jsonl", str(tmp_path / "r.jsonl")]) == 0
    records = _records(tmp_path / "dst/.clearmark/journal.jsonl")
    failed = [r for r in records.values() if r["status"] == "failed"]
    assert len(failed) >= 3 and all("HTTP 401" in str(r["error"]) for r in failed)
    assert all(not (tmp_path / "dst" / str(r["rel"])).exists() for r in failed)
    everything = (tmp_path / "r.jsonl").read_text() + capsys.readouterr().err + \
        (tmp_path / "dst/.clearmark/journal.jsonl").read_text()
    assert "wrong-token-abc" not in everything and f"{len(failed)} failed" in everything


def test_serve_without_the_extra_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in [n for n in sys.modules if n.split(".")[0] in ("starlette", "uvicorn")]:
        monkeypatch.setitem(sys.modules, name, None)  # as if they were not installed
    monkeypatch.delitem(sys.modules, "clearmark._server", raising=False)
    monkeypatch.delattr("clearmark._server", raising=False)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'clearmark[server]'" in err and err.count("\n") == 1


def test_an_interrupted_run_stops_at_once_and_resumes(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from clearmark import Client, LocalRemover
    from clearmark._pipeline import CleanTask, find_inputs
    from clearmark._remote import PrepareTask, run_remote

    release = threading.Event()

    class Stuck(LocalRemover):
        def remove(self, rgb: np.ndarray, detection: Detection) -> np.ndarray:
            release.wait(10)
            return super().remove(rgb, detection)

    src = _folder(tmp_path)
    dst = tmp_path / "dst"
    app = create_app(ServerConfig(tokens=frozenset({TOKEN})), remover=Stuck())
    with live_server(app) as url:
        def client(**options: object) -> Client:
            return Client(url, token=TOKEN, rate=None, **options)  # type: ignore[arg-type]

        task = PrepareTask(CleanTask(src=src, dst=dst))
        records = run_remote(task, find_inputs([src]), client, in_flight=2)
        first = next(records)  # a clean image's copy: the removals are stuck on the server
        started = time.monotonic()
        records.close()  # what Ctrl-C does to the CLI's loop
        assert time.monotonic() - started < 2
        release.set()
    assert first["status"] in ("copied", "skipped")
    monkeypatch.setenv("CLEARMARK_TOKEN", TOKEN)
    with live_server(create_app(ServerConfig(tokens=frozenset({TOKEN})))) as url:
        assert main(["clean", str(src), "--out", str(dst), "--api-base", url, "--jobs", "1",
                     "--rate", "100"]) == 0
    records_after = _records(dst / ".clearmark/journal.jsonl")
    assert {r["status"] for r in records_after.values()} <= {"cleaned", "copied", "skipped"}
    assert len(records_after) == 8


def test_uploads_over_the_cap_go_as_a_high_quality_jpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    from clearmark import _remote

    rgb = np.array(photo("coffee", 400, 300))
    assert _remote._image_upload(rgb).startswith(b"\x89PNG")
    monkeypatch.setattr(_remote, "MAX_UPLOAD", 100_000)
    small = _remote._image_upload(rgb)
    assert small.startswith(b"\xff\xd8") and len(small) < 100_000
    with Image.open(io.BytesIO(small)) as image:
        assert image.size == (400, 300)
