"""Contract tests: the real clients against the real server, in-process and over sockets.

- the same AsyncClient through httpx.ASGITransport and over a socket on 127.0.0.1;
- the blocking Client over a socket, callbacks end to end;
- the published curl and requests examples of docs/removal-api.md, verbatim (base URL and
  token substituted), and this README's examples, against a running `clearmark serve`;
- a folder run against a server that fails in every way it can.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
import requests
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from clearmark import (
    APIStatusError,
    AsyncClient,
    Client,
    Detection,
    LocalRemover,
    PollPolicy,
    Submission,
    TaskFailed,
)
from clearmark._cli import main
from clearmark._fetch import parse_networks
from clearmark._server import ServerConfig, create_app

from photos import photo, save, with_text
from serving import TOKEN, Faulty, decode, lifespan, live_server, marked, png

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT.parent / "shared" / "docs" / "removal-api.md"
FAST = PollPolicy(interval=0.05, max_interval=0.2, deadline=20, retry_base=0.05)
IMAGE, TRUTH = marked()
IMAGE_PNG = png(IMAGE)
ys, xs = np.nonzero(TRUTH)
BOX = [{"x": int(xs.min()) - 2, "y": int(ys.min()) - 2, "width": int(np.ptp(xs)) + 5,
        "height": int(np.ptp(ys)) + 5}]


def _config(**options: Any) -> ServerConfig:
    return ServerConfig(tokens=frozenset({TOKEN}), **options)


@contextlib.asynccontextmanager
async def _async_client(how: str, app: Starlette, token: str = TOKEN
                        ) -> AsyncIterator[AsyncClient]:
    """The AsyncClient on the app: in-process (ASGI transport) or over a real socket."""
    if how == "asgi":
        async with lifespan(app), AsyncClient(
                "http://testserver", token=token, policy=FAST, rate=None,
                transport=httpx.ASGITransport(app=app)) as client:
            yield client
    else:
        with live_server(app) as url:
            async with AsyncClient(url, token=token, policy=FAST, rate=None) as client:
                yield client


def _against(how: str, scenario: Callable[[AsyncClient], Any], app: Starlette | None = None,
             token: str = TOKEN) -> Any:
    async def run() -> Any:
        async with _async_client(how, app or create_app(_config()), token) as client:
            return await scenario(client)

    return anyio.run(run)


both = pytest.mark.parametrize("how", ["asgi", "socket"])


@both
def test_sync_removal_with_rectangles(how: str) -> None:
    async def scenario(client: AsyncClient) -> Any:
        return await client.remove(Submission(image_file=IMAGE_PNG, rectangles=BOX, sync=True))

    result = _against(how, scenario)
    cleaned = decode(result.data)
    inside = np.zeros(TRUTH.shape, bool)
    box = BOX[0]
    inside[box["y"]:box["y"] + box["height"], box["x"]:box["x"] + box["width"]] = True
    assert result.task.done and (result.width, result.height) == (400, 300)
    assert np.array_equal(cleaned[~inside], IMAGE[~inside])
    assert np.abs(cleaned[TRUTH > 0].astype(int) - IMAGE[TRUTH > 0]).mean() > 20


@both
def test_async_polling_with_a_mask_and_base64(how: str) -> None:
    mask = png(np.dstack([TRUTH] * 3))

    async def scenario(client: AsyncClient) -> list[Any]:
        task = await client.submit(Submission(image_file=IMAGE_PNG, mask_file=mask))
        finished = await client.wait(task)
        by_url = await client.download(finished)
        inline = await client.remove(Submission(image_file=IMAGE_PNG, mask_file=mask,
                                                base64_result=True))
        return [task.state, finished.state, by_url.data, inline.data]

    first, last, by_url, inline = _against(how, scenario)
    assert first in (0, 4) and last == 1
    assert np.array_equal(decode(by_url), decode(inline))
    assert np.array_equal(decode(by_url)[TRUTH == 0], IMAGE[TRUTH == 0])


@both
def test_failures_arrive_as_the_documented_errors(how: str) -> None:
    async def scenario(client: AsyncClient) -> TaskFailed:
        with pytest.raises(TaskFailed) as info:
            await client.remove(Submission(image_file=IMAGE_PNG[:300], sync=True))
        return info.value

    failed = _against(how, scenario)
    assert failed.state == -7 and "corrupt" in failed.err_info

    async def unauthorised(client: AsyncClient) -> APIStatusError:
        with pytest.raises(APIStatusError) as info:
            await client.submit(Submission(image_file=IMAGE_PNG))
        return info.value

    refused = _against(how, unauthorised, token="not-a-token")
    assert refused.status == 401 and "not-a-token" not in str(refused)


def test_the_blocking_client_over_a_socket_with_a_callback() -> None:
    received: list[dict[str, Any]] = []
    arrived = threading.Event()

    async def hook(request: Request) -> JSONResponse:
        received.append(await request.json())
        arrived.set()
        return JSONResponse({"ok": True})

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    app = create_app(_config(allow=parse_networks(["127.0.0.0/8"])))
    with live_server(receiver) as hooks, live_server(app) as url, \
            Client(url, token=TOKEN, policy=FAST, rate=None) as client:
        task = client.submit(Submission(image_file=IMAGE_PNG, rectangles=BOX,
                                        callback_url=f"{hooks}/hook"))
        assert arrived.wait(10), "no callback"
        # the callback is a signal: the GET answer is the authoritative state
        assert received[0]["data"]["task_id"] == task.task_id
        current = client.get(task.task_id)
        assert current.state == received[0]["data"]["state"] == 1
        result = client.download(current)
        assert decode(result.data).shape == IMAGE.shape


# -- `clearmark serve`, and the published examples -------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`clearmark serve` in a subprocess on an ephemeral port; yields its base URL."""
    tokens = tmp_path_factory.mktemp("serve") / "tokens.txt"
    tokens.write_text(f"# tokens\n{TOKEN}\n")
    command = [sys.executable, "-m", "clearmark", "serve", "--port", "0", "--token-file",
               str(tokens), "--workers", "2"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        found = re.search(r"listening on (http://\S+)", line)
        assert found, f"clearmark serve did not start: {line}{process.stderr.read()}"
        assert TOKEN not in line
        yield found.group(1)
    finally:
        process.terminate()
        process.wait(15)
        if process.stderr is not None:
            process.stderr.close()


def _blocks(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"```[a-z]*\n(.*?)```", text, re.DOTALL)]


def _doc_example(marker: str) -> str:
    if not DOC.exists():
        pytest.skip(f"{DOC} is not beside this checkout")
    return next(b for b in _blocks(DOC.read_text()) if marker in b)


def _check_answer(answer: dict[str, Any]) -> None:
    """The example's image_url (example.com) cannot be fetched from a test machine, or is
    not an image: either way a protocol-correct answer with a final state."""
    assert answer["status"] == 200 and answer["data"]["task_id"]
    assert answer["data"]["state"] in (1, -3, -7)
    assert answer["data"]["state"] == 1 or answer["data"]["err_info"]


def test_the_published_curl_example_runs_verbatim(served: str) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    example = _doc_example("curl -X POST")
    done = subprocess.run(["bash", "-c", example], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "BASE": served, "TOKEN": TOKEN})
    assert done.returncode == 0, done.stderr
    _check_answer(json.loads(done.stdout))


def test_the_published_requests_example_runs_verbatim(served: str) -> None:
    example = _doc_example("requests.post(")
    response = eval(compile(example, str(DOC), "eval"),  # our own docs
                    {"requests": requests, "BASE": served, "TOKEN": TOKEN})
    assert response.status_code == 200
    _check_answer(response.json())


def _readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Removal endpoint", 1)[1].split("\n## ", 1)[0]


def test_the_readme_examples_run(served: str, monkeypatch: pytest.MonkeyPatch) -> None:
    python, shell = (b for b in _blocks(_readme_section()) if "import clearmark" in b
                     or "clearmark serve --token-file" in b)
    monkeypatch.chdir(ROOT)
    names: dict[str, Any] = {"BASE": served, "TOKEN": TOKEN}
    exec(compile(python, "README.md", "exec"), names)  # our own docs
    assert names["result"].task.state == 1 and isinstance(names["cleaned"], bytes)
    curl = shell[shell.index("curl"):].replace("http://127.0.0.1:8000", served)
    if shutil.which("curl") is not None:
        done = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "TOKEN": TOKEN})
        assert json.loads(done.stdout)["data"]["state"] == 1, done.stderr


# -- fault injection ----------------------------------------------------------------------------


class _Flaky(LocalRemover):
    """A third of removals (seeded) take longer than the server's time cap: state -8."""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "_rng", random.Random(5))
        object.__setattr__(self, "_lock", threading.Lock())

    def remove(self, rgb: np.ndarray, detection: Detection) -> np.ndarray:
        with self._lock:  # type: ignore[attr-defined]
            slow = self._rng.random() < 1 / 3  # type: ignore[attr-defined]
        if slow:
            threading.Event().wait(0.5)
        return super().remove(rgb, detection)


def _photos(src: Path) -> dict[str, bool]:
    names = ["coffee", "astronaut", "chelsea", "rocket", "camera", "coins"]
    marked_names = {}
    for i in range(14):
        rgb = np.array(photo(names[i % 6], 400 + 8 * i, 300))
        if i % 7 != 3:
            rgb = with_text(rgb, f"@studio_{i:02d}")[0]
        save(src / f"d{i % 3}/p{i:02d}.jpg", rgb, quality=90)
        marked_names[f"d{i % 3}/p{i:02d}.jpg"] = i % 7 != 3
    return marked_names


def test_a_folder_run_against_a_failing_server_loses_and_duplicates_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    expected = _photos(src)
    app = create_app(_config(task_timeout=0.25, workers=2), remover=_Flaky())
    faulty = Faulty(app, seed=11, **{"429": 0.08, "500": 0.08, "slow": 0.08, "drop": 0.08})
    monkeypatch.setenv("CLEARMARK_TOKEN", TOKEN)
    args = ["clean", str(src), "--out", str(dst), "--rate", "100", "--jobs", "1"]
    with live_server(faulty, log_level="critical") as url:
        assert main([*args, "--api-base", url]) == 0
    assert all(faulty.seen.values()), faulty.seen  # every kind of fault happened
    journal = [json.loads(line) for line in
               (dst / ".clearmark/journal.jsonl").read_text().splitlines()]
    rels = [r["rel"] for r in journal]
    assert sorted(rels) == sorted(expected)  # each image exactly once: none lost or doubled
    for record in journal:
        output = dst / record["rel"]
        assert record["status"] in ("cleaned", "copied", "failed"), record
        if record["status"] == "failed":
            assert record["error"] and not output.exists()
        else:
            with Image.open(output) as image, Image.open(src / record["rel"]) as original:
                assert image.size == original.size and image.format == "JPEG"
    assert not list(dst.rglob("*.clearmark-tmp"))
    # a second run against a healthy server finishes what failed and redoes nothing else
    failed = {r["rel"] for r in journal if r["status"] == "failed"}
    with live_server(create_app(_config())) as url:
        assert main([*args, "--api-base", url]) == 0
    again = [json.loads(line) for line in
             (dst / ".clearmark/journal.jsonl").read_text().splitlines()][len(journal):]
    assert {r["rel"] for r in again} == failed
    assert all(r["status"] in ("cleaned", "copied") for r in again)
