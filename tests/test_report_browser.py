"""The review page in a real browser: Debian's headless Chromium, driven by Playwright.

Playwright (the ``test`` extra) brings its own driver; the browser is the system's
``/usr/bin/chromium`` (``apt-get install chromium``; never ``playwright install``). Without
it these tests skip, except on CI, which installs it. Screenshots are kept as artifacts in
``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clearmark._cli import main
from clearmark._report import write_report

from photos import photo, save, with_text

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ODD_NAME = '<b>"odd"</b> & é.jpg'
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync"]

if not CHROMIUM.exists() and not os.environ.get("CI"):  # CI installs it: fail there instead
    pytest.skip(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page that fails the test on a script error, a dialog (an injected alert) or a
    request that leaves the file system."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
    page.on("request", lambda request: None if request.url.startswith("file://")
            else problems.append(f"request: {request.url}"))
    yield page
    context.close()
    assert not problems


def _keep(page: Page, tmp_path: Path, name: str) -> Path:
    """A screenshot in the test's folder, copied to tests/artifacts/."""
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / name)
    return shot


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A real ``clean`` run: three watermarked images (one with an odd name), two clean ones,
    an unreadable one and a non-image."""
    src = tmp_path / "src"
    save(src / "wm.jpg", with_text(photo("coffee", 480, 360))[0], quality=92)
    save(src / "sub/wm2.png", with_text(photo("chelsea", 480, 360), "@my_cats_2024",
                                        corner="tl", colour=(20, 20, 20))[0])
    save(src / ODD_NAME, with_text(photo("camera", 480, 360), "@odd_name_01")[0], quality=90)
    save(src / "clean.jpg", np.array(photo("astronaut", 480, 360)), quality=90)
    save(src / "sub/clean.png", np.array(photo("rocket", 480, 360)))
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    (src / "notes.txt").write_text("not an image")
    dst = tmp_path / "dst"
    assert main(["clean", str(src), "--out", str(dst), "--jobs", "1"]) == 0
    return dst


def _statuses(dst: Path) -> dict[str, int]:
    lines = (dst / ".clearmark/journal.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return {status: sum(r["status"] == status for r in records)
            for status in ("cleaned", "copied", "failed", "skipped")}


def test_counts_filter_zoom_and_screenshot(run: Path, page: Page, tmp_path: Path) -> None:
    page.goto((run / "report.html").as_uri())
    statuses = _statuses(run)
    assert statuses == {"cleaned": 3, "copied": 2, "failed": 1, "skipped": 1}
    shown = {key: int(page.inner_text(f"#count-{key}")) for key in
             ("seen", "cleaned", "unchanged", "failed", "skipped")}
    assert shown == {"seen": 7, "cleaned": 3, "unchanged": 2, "failed": 1, "skipped": 1}
    cards = page.locator("article.card")
    assert cards.count() == 7
    assert cards.first.get_attribute("data-status") == "cleaned"  # highest score first
    assert page.get_by_text(ODD_NAME, exact=True).count() == 1  # shown as text, not markup
    page.wait_for_function("() => [...document.querySelectorAll('.pics img')].slice(0, 4)"
                           ".every((img) => img.complete && img.naturalWidth > 0)")
    _keep(page, tmp_path, "report-grid.png")

    page.click("#filters button[data-filter=failed]")
    assert cards.count() == 1 and cards.first.get_attribute("data-status") == "failed"
    assert "corrupt" in cards.first.inner_text() and cards.first.locator("img").count() == 0
    page.click("#filters button[data-filter=unchanged]")
    assert [cards.nth(i).get_attribute("data-status") for i in range(cards.count())] == \
        ["copied", "copied"]

    page.click("#filters button[data-filter=cleaned]")
    page.locator("button.zoom-open").first.click()
    dialog = page.locator("#zoom")
    assert dialog.get_attribute("open") is not None
    page.wait_for_function("() => document.getElementById('zoom-img').naturalWidth > 0")
    caption = page.inner_text("#zoom-caption")
    assert "region 1 of" in caption and any(m in caption for m in ("matte", "harmonic",
                                                                   "telea", "ns"))
    assert _keep(page, tmp_path, "report-zoom.png").stat().st_size > 10_000
    page.keyboard.press("Escape")
    assert dialog.get_attribute("open") is None


def _records(count: int) -> list[dict[str, Any]]:
    return [{"rel": f"photos/IMG_{i:05d}.jpg", "status": "failed" if i % 50 == 0 else "copied",
             "score": None if i % 50 == 0 else (i % 997) / 997, "regions": [],
             "error": "unreadable" if i % 50 == 0 else None} for i in range(count)]


def test_thousands_of_entries_are_paged(page: Page, tmp_path: Path) -> None:
    write_report(tmp_path, _records(5000), threshold=0.5)
    page.goto((tmp_path / "report.html").as_uri())
    cards = page.locator("article.card")
    assert cards.count() == 48 and page.inner_text("#page") == "page 1 of 105"
    assert page.is_disabled("#prev")
    page.click("#next")
    assert page.inner_text("#page") == "page 2 of 105" and cards.count() == 48
    assert page.inner_text("#shown") == "showing 49\u201396 of 5000"
    page.click("#filters button[data-filter=failed]")
    assert page.inner_text("#page") == "page 1 of 3" and cards.count() == 48
    page.fill("#search", "IMG_0010")  # IMG_00100 .. IMG_00109: one of them failed
    assert cards.count() == 1 and page.inner_text("#shown") == "showing 1\u20131 of 1"
    page.fill("#search", "")
    page.select_option("#sort", "name")
    assert cards.first.inner_text().startswith("photos/IMG_00000.jpg")
