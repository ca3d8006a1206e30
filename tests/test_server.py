"""``clearmark serve``'s app in-process (httpx.ASGITransport): the protocol, exactly."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from starlette.applications import Starlette

from clearmark import Detection, LocalRemover
from clearmark._fetch import parse_networks
from clearmark._server import ServerConfig, create_app, load_server_tokens

from serving import TOKEN, asgi_client, body, decode, lifespan, marked, png

AUTH = {"Authorization": f"Bearer {TOKEN}"}
PUBLIC_IP = "93.184.216.34"
IMAGE, TRUTH = marked()  # 400 x 300, white handle bottom right
IMAGE_PNG = png(IMAGE)
ys, xs = np.nonzero(TRUTH)
BOX = {"x": int(xs.min()) - 2, "y": int(ys.min()) - 2, "width": int(xs.max() - xs.min()) + 5,
       "height": int(ys.max() - ys.min()) + 5}


def _app(**options: Any) -> Starlette:
    extra = {k: options.pop(k) for k in ("remover", "clock", "resolver", "fetch_transport")
             if k in options}
    return create_app(ServerConfig(tokens=frozenset({TOKEN, "other-token"}), **options),
                      **extra)


def _with(app: Starlette, fn: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with lifespan(app), asgi_client(app) as http:
            return await fn(http)

    return anyio.run(main)


async def _submit(http: httpx.AsyncClient, data: dict[str, str] | None = None,
                  files: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
    files = {"image_file": ("a.png", IMAGE_PNG, "image/png")} if files is None else files
    return await http.post("/task/pic/watermark", data=data or {}, files=files,
                           headers={**AUTH, **headers})


def _result(http: httpx.AsyncClient, answer: httpx.Response) -> Awaitable[httpx.Response]:
    url = body(answer)["data"]["image"]
    assert url.startswith("http://testserver/tasks/output/") and url.endswith("-image.png")
    return http.get(url)  # no token: the result URL is the credential


def _inside(box: dict[str, int]) -> np.ndarray:
    inside = np.zeros(IMAGE.shape[:2], bool)
    inside[box["y"]:box["y"] + box["height"], box["x"]:box["x"] + box["width"]] = True
    return inside


def test_sync_submission_with_rectangles_rewrites_exactly_there() -> None:
    async def scenario(http: httpx.AsyncClient) -> tuple[dict[str, Any], np.ndarray]:
        answer = await _submit(http, {"rectangles": json.dumps([BOX]), "sync": "1"})
        assert answer.status_code == 200
        result = await _result(http, answer)
        assert result.status_code == 200 and result.headers["content-type"] == "image/png"
        return body(answer), decode(result.content)

    answer, cleaned = _with(_app(), scenario)
    data = answer["data"]
    assert answer["status"] == 200 and data["state"] == 1 and data["progress"] == 100
    assert (data["image_width"], data["image_height"]) == (400, 300) and data["err_info"] == ""
    assert data["completed_at"] >= data["processed_at"] >= data["created_at"] > 1.6e9
    inside = _inside(BOX)
    assert np.array_equal(cleaned[~inside], IMAGE[~inside])  # nothing else touched
    zone = TRUTH > 0
    assert np.abs(cleaned[zone].astype(int) - IMAGE[zone]).mean() > 20  # the mark is gone


def test_file_parts_and_plain_fields_are_both_accepted() -> None:
    async def scenario(http: httpx.AsyncClient) -> list[int]:
        as_field = await _submit(http, {"sync": "1"}, {"image_file": (None, IMAGE_PNG),
                                                       "rectangles": (None, json.dumps([BOX]))})
        as_form = await http.post("/task/pic/watermark", headers=AUTH,
                                  data={"image_url": "ftp://x/a.png"})
        return [body(as_field)["data"]["state"], as_form.status_code]

    assert _with(_app(), scenario) == [1, 400]  # urlencoded is read too: its URL is refused


def test_async_tasks_go_queued_processing_done() -> None:
    permits = threading.Semaphore(0)  # each removal waits until the test has seen it at 4

    class Gated(LocalRemover):
        def remove(self, rgb: np.ndarray, detection: Detection) -> np.ndarray:
            permits.acquire(timeout=5)
            return super().remove(rgb, detection)

    async def scenario(http: httpx.AsyncClient) -> list[list[int]]:
        tasks = [body(await _submit(http, {"rectangles": json.dumps([BOX])}))["data"]
                 for _ in range(2)]
        seen: list[list[int]] = [[task["state"]] for task in tasks]
        released = 0
        for _ in range(500):
            for states, task in zip(seen, tasks, strict=True):
                state = (await http.get(f"/task/{task['task_id']}", headers=AUTH)).json()
                if state["data"]["state"] != states[-1]:
                    states.append(state["data"]["state"])
            # one worker: the first is processing while the second is still queued
            if (released == 0 and seen[0][-1] == 4 and seen[1][-1] == 0) or \
                    (released == 1 and seen[1][-1] == 4):
                permits.release()
                released += 1
            if seen[0][-1] == 1 and seen[1][-1] == 1:
                break
            await anyio.sleep(0.005)
        return seen

    assert _with(_app(workers=1, remover=Gated()), scenario) == [[0, 4, 1], [0, 4, 1]]


def test_the_work_runs_off_the_event_loop() -> None:
    threads: list[int] = []

    class Spy(LocalRemover):
        def remove(self, rgb: np.ndarray, detection: Detection) -> np.ndarray:
            threads.append(threading.get_ident())
            return super().remove(rgb, detection)

    async def scenario(http: httpx.AsyncClient) -> int:
        await _submit(http, {"rectangles": json.dumps([BOX]), "sync": "1"})
        return threading.get_ident()

    loop_thread = _with(_app(remover=Spy()), scenario)
    assert threads and threads[0] != loop_thread


def test_tokens_are_required_and_tasks_belong_to_their_token() -> None:
    async def scenario(http: httpx.AsyncClient) -> list[Any]:
        missing = await http.post("/task/pic/watermark", files={"image_file": IMAGE_PNG})
        wrong = await _submit(http, Authorization="Bearer nope")
        task_id = body(await _submit(http, {"sync": "1"}))["data"]["task_id"]
        mine = await http.get(f"/task/{task_id}", headers=AUTH)
        theirs = await http.get(f"/task/{task_id}", headers={"Authorization":
                                                              "Bearer other-token"})
        return [missing.status_code, body(missing), wrong.status_code, mine.status_code,
                theirs.status_code]

    results = _with(_app(), scenario)
    assert results[0] == 401 and results[1]["status"] == 401 and "token" in results[1]["message"]
    assert results[2:] == [401, 200, 404]


def test_unknown_paths_and_tasks_answer_404_in_json() -> None:
    async def scenario(http: httpx.AsyncClient) -> list[httpx.Response]:
        return [await http.get("/nope", headers=AUTH),
                await http.get("/task/0123abc", headers=AUTH),
                await http.get("/tasks/output/nothing.png"),
                await http.get("/task/pic/watermark", headers=AUTH)]

    answers = _with(_app(), scenario)
    assert [a.status_code for a in answers] == [404, 404, 404, 405]
    assert all(body(a)["status"] == a.status_code and body(a)["message"] for a in answers)


@pytest.mark.parametrize(("data", "files", "problem"), [
    ({}, {}, "exactly one of image_file and image_url"),
    ({"image_url": "https://x.example/a.png"}, None, "exactly one of image_file and image_url"),
    ({"rectangles": "[]", "mask_url": "https://x.example/m.png"}, None, "at most one"),
    ({"rectangles": json.dumps([BOX] * 51)}, None, "at most 50"),
    ({"rectangles": '[{"x":1.5,"y":0,"width":5,"height":5}]'}, None, r"rectangles\[0\]\.x"),
    ({"rectangles": '[{"x":390,"y":0,"width":50,"height":5}]'}, None, "outside the image"),
    ({"rectangles": "not json"}, None, "not valid JSON"),
    ({"sync": "maybe"}, None, "sync must be"),
    ({"callback_url": "javascript:alert(1)"}, None, "callback_url must be"),
    ({"return_type": "3"}, None, "return_type"),
    ({}, {"image_file": ("a.png", b"", "image/png")}, "image_file is empty"),
])
def test_bad_parameters_get_400_naming_the_problem(data: dict[str, str],
                                                   files: dict[str, Any] | None,
                                                   problem: str) -> None:
    answer = _with(_app(), lambda http: _submit(http, data, files))
    assert answer.status_code == 400 and body(answer)["status"] == 400
    assert re.search(problem, body(answer)["message"])


def test_uploads_over_the_cap_get_413() -> None:
    part = _with(_app(max_upload=10_000), lambda http: _submit(http))
    assert part.status_code == 413 and "image_file" in body(part)["message"]
    whole = _with(_app(max_body=10_000), lambda http: _submit(http))
    assert whole.status_code == 413 and "body" in body(whole)["message"]


def test_undecodable_and_oversized_images_end_in_negative_states() -> None:
    broken = _with(_app(), lambda http: _submit(http, {"sync": "1"}, {
        "image_file": ("a.png", b"this is not an image", "image/png")}))
    assert body(broken)["data"]["state"] == -7
    assert "not an image" in body(broken)["data"]["err_info"]
    huge = _with(_app(max_pixels=10_000), lambda http: _submit(http, {"sync": "1"}))
    assert body(huge)["data"]["state"] == -5 and "MP cap" in body(huge)["data"]["err_info"]


def test_a_mask_rewrites_only_its_white_pixels() -> None:
    mask = png(np.dstack([TRUTH] * 3))

    async def scenario(http: httpx.AsyncClient) -> np.ndarray:
        answer = await _submit(http, {"sync": "1"}, {"image_file": ("a.png", IMAGE_PNG),
                                                     "mask_file": ("m.png", mask)})
        assert body(answer)["data"]["state"] == 1
        return decode((await _result(http, answer)).content)

    cleaned = _with(_app(), scenario)
    zone = TRUTH > 0
    assert np.array_equal(cleaned[~zone], IMAGE[~zone])
    assert np.abs(cleaned[zone].astype(int) - IMAGE[zone]).mean() > 20


def test_without_rectangles_or_mask_the_server_detects_by_itself() -> None:
    async def scenario(http: httpx.AsyncClient) -> np.ndarray:
        answer = await _submit(http, {"sync": "1"})
        return decode((await _result(http, answer)).content)

    cleaned = _with(_app(), scenario)
    zone = TRUTH > 0
    assert np.abs(cleaned[zone].astype(int) - IMAGE[zone]).mean() > 20
    assert np.array_equal(cleaned[:150], IMAGE[:150])  # far from the mark: untouched


def test_results_and_tasks_expire_after_an_hour() -> None:
    now = [1_800_000_000.0]

    async def scenario(http: httpx.AsyncClient) -> list[int]:
        answer = await _submit(http, {"sync": "1", "rectangles": json.dumps([BOX])})
        task_id = body(answer)["data"]["task_id"]
        before = [(await _result(http, answer)).status_code]
        now[0] += 3599
        before.append((await http.get(f"/task/{task_id}", headers=AUTH)).status_code)
        now[0] += 2
        after = [(await _result(http, answer)).status_code,
                 (await http.get(f"/task/{task_id}", headers=AUTH)).status_code]
        return before + after

    assert _with(_app(clock=lambda: now[0]), scenario) == [200, 200, 404, 404]


def test_base64_results_on_request() -> None:
    answer = _with(_app(), lambda http: _submit(http, {"sync": "1", "return_type": "2"}))
    data = body(answer)["data"]
    assert data["return_type"] == 2 and decode(base64.b64decode(data["image"])).shape == \
        IMAGE.shape


def _internet(pages: dict[str, httpx.Response], posts: list[httpx.Request] | None = None
              ) -> dict[str, Any]:
    """A fake resolver (every host is PUBLIC_IP) and network for the server's fetcher."""
    async def resolve(host: str, port: int) -> list[str]:
        return ["10.9.9.9"] if host.startswith("internal") else [PUBLIC_IP]

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and posts is not None:
            posts.append(request)
            return pages.get("callback", httpx.Response(200)) if len(posts) > 1 else \
                httpx.Response(500)
        return pages.get(request.url.path, httpx.Response(404))

    return {"resolver": resolve, "fetch_transport": httpx.MockTransport(handle)}


def test_image_urls_are_fetched_through_the_safe_fetcher() -> None:
    pages = {"/a.png": httpx.Response(200, content=IMAGE_PNG),
             "/big.png": httpx.Response(200, content=b"x" * (len(IMAGE_PNG) + 1))}

    def submit(url: str) -> Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]:
        return lambda http: http.post("/task/pic/watermark", headers=AUTH, files={
            "image_url": (None, url), "sync": (None, "1"),
            "rectangles": (None, json.dumps([BOX]))})

    app = _app(max_upload=len(IMAGE_PNG), **_internet(pages))
    fetched = body(_with(app, submit("https://img.example/a.png")))["data"]
    assert fetched["state"] == 1 and fetched["image_width"] == 400
    assert isinstance(fetched["download_time"], int)
    big = body(_with(app, submit("https://img.example/big.png")))["data"]
    assert big["state"] == -5
    private = body(_with(app, submit("http://internal.example/a.png")))["data"]
    assert private["state"] == -3 and "private" in private["err_info"]
    missing = body(_with(app, submit("https://img.example/gone.png")))["data"]
    assert missing["state"] == -3 and "404" in missing["err_info"]


def test_callbacks_get_the_task_json_with_retries() -> None:
    posts: list[httpx.Request] = []
    app = _app(callback_backoff=0.01, **_internet({}, posts))

    async def scenario(http: httpx.AsyncClient) -> str:
        answer = await _submit(http, {"callback_url": "https://hooks.example/cb",
                                      "rectangles": json.dumps([BOX])})
        task_id = body(answer)["data"]["task_id"]
        for _ in range(300):
            if len(posts) >= 2:
                break
            await anyio.sleep(0.01)
        return str(task_id)

    task_id = _with(app, scenario)
    assert len(posts) == 2  # the first delivery got a 500 and was retried
    sent = json.loads(posts[1].content)
    assert sent["status"] == 200 and sent["data"]["task_id"] == task_id
    assert sent["data"]["state"] == 1 and posts[1].headers["host"] == "hooks.example"


def test_the_per_token_rate_limit_answers_429_with_retry_after() -> None:
    async def scenario(http: httpx.AsyncClient) -> list[httpx.Response]:
        return [await http.get("/task/x", headers=AUTH) for _ in range(3)]

    answers = _with(_app(rate_limit=2.0), scenario)
    assert [a.status_code for a in answers] == [404, 404, 429]
    assert answers[2].headers["retry-after"] == "1" and body(answers[2])["status"] == 429


def test_processing_over_the_time_cap_ends_in_state_minus_8() -> None:
    class Stuck(LocalRemover):
        def remove(self, rgb: np.ndarray, detection: Detection) -> np.ndarray:
            time.sleep(0.3)
            return rgb

    answer = _with(_app(task_timeout=0.05, remover=Stuck()),
                   lambda http: _submit(http, {"sync": "1", "rectangles": json.dumps([BOX])}))
    assert body(answer)["data"]["state"] == -8


def test_server_tokens_come_from_a_file_or_the_environment(tmp_path: Any) -> None:
    path = tmp_path / "tokens"
    path.write_text("# comment\nalpha\n\n beta \n")
    assert load_server_tokens(path) == {"alpha", "beta"}
    assert load_server_tokens(None, {"CLEARMARK_SERVER_TOKENS": "a, b,,c"}) == {"a", "b", "c"}
    with pytest.raises(ValueError, match="at least one token"):
        ServerConfig(tokens=frozenset())
    assert "alpha" not in repr(ServerConfig(tokens=frozenset({"alpha"}),
                                            allow=parse_networks(["127.0.0.1"])))


def test_the_public_server_module_builds_the_app_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    import clearmark.server

    monkeypatch.setenv("CLEARMARK_SERVER_TOKENS", f"{TOKEN},second")
    app = clearmark.server.app_from_env()
    assert _with(app, lambda http: http.get("/task/x", headers=AUTH)).status_code == 404
    for name in [n for n in sys.modules if n.split(".")[0] == "starlette"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if the extra were not installed
    monkeypatch.delitem(sys.modules, "clearmark._server")
    with pytest.raises(ImportError, match=r"pip install 'clearmark\[server\]'"):
        importlib.reload(clearmark.server)
