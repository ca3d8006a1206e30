"""Helpers for the endpoint tests: images, scripted answers, a fake clock, live servers.

``live_server`` runs an ASGI app with uvicorn in a thread on 127.0.0.1 and an ephemeral port;
``lifespan`` runs an app's startup and shutdown around in-process (ASGI transport) calls,
which httpx.ASGITransport does not do by itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import numpy as np
import uvicorn
from PIL import Image
from starlette.applications import Starlette

from clearmark._server import bind

from photos import photo, with_text

TOKEN = "tok-3f9a2c7e81d44b6b"


def png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def marked(name: str = "coffee", width: int = 400, height: int = 300) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """A real photo with a white handle in the bottom-right corner, and its truth mask."""
    return with_text(photo(name, width, height))


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


# -- scripted answers (httpx.MockTransport) ----------------------------------------------------


def task(state: int, task_id: str = "t-1", **extra: Any) -> httpx.Response:
    """A 200 answer carrying a task in ``state``."""
    data = {"task_id": task_id, "state": state, "err_info": "", "image": "", **extra}
    return httpx.Response(200, json={"status": 200, "data": data})


def done(task_id: str = "t-1", url: str = "https://cdn.example/out/r.png",
         **extra: Any) -> httpx.Response:
    return task(1, task_id, image=url, **extra)


def error(status: int, message: str = "", **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"status": status, "message": message},
                          headers=headers)


class Script:
    """A transport answering API calls from a list, in order, and result downloads with
    ``result``. Records every request; an ``Exception`` in the list is raised instead."""

    def __init__(self, answers: list[httpx.Response | Exception], result: bytes = b"") -> None:
        self.answers = list(answers)
        self.result = result
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if "/out/" in request.url.path:
            return httpx.Response(200, content=self.result)
        assert self.answers, f"unexpected request {request.method} {request.url}"
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def calls(self) -> list[str]:
        """``"POST"``, ``"GET"`` (poll) and ``"DL"`` (download), in order."""
        return ["DL" if "/out/" in r.url.path else r.method for r in self.requests]


class FakeTime:
    """A clock that only moves when something sleeps: tests never wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await anyio.lowlevel.checkpoint()


# -- servers -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with app.router.lifespan_context(app):
        yield


def asgi_client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@contextlib.contextmanager
def live_server(app: Any, log_level: str = "warning") -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (ephemeral port) in a thread; yield its base URL."""
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_level=log_level, access_log=False,
                            http="h11", ws="none", loop="asyncio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def run(fn: Callable[[], Any]) -> Any:
    """Run an async function to completion (tests stay plain functions)."""
    return anyio.run(fn)


def body(response: httpx.Response) -> dict[str, Any]:
    data = json.loads(response.content)
    assert isinstance(data, dict)
    return data


# -- ASGI wrappers: a recorder and a faulty network ----------------------------------------------

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


async def _whole_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


def _replay(data: bytes) -> Receive:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await anyio.sleep_forever()
        sent = True
        return {"type": "http.request", "body": data, "more_body": False}

    return receive


class Recorder:
    """Remembers every submission's form field names (to see what a client sent)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.submissions: list[set[str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            data = await _whole_body(receive)
            names = {part.split(b'"', 2)[1].decode() for part in
                     data.split(b'Content-Disposition: form-data; name=')[1:]}
            self.submissions.append(names)
            receive = _replay(data)
        await self.app(scope, receive, send)


class Faulty:
    """A network and front end that fail at random (seeded): 429 with Retry-After, 500, slow
    answers, and connections dropped mid-answer *after* the request was served. The first
    requests get one fault of each kind, so every kind is exercised in every run."""

    def __init__(self, app: Any, seed: int, **chances: float) -> None:
        import random

        self.app, self.rng = app, random.Random(seed)
        self.chances = {"429": 0.0, "500": 0.0, "slow": 0.0, "drop": 0.0, **chances}
        self.seen: dict[str, int] = dict.fromkeys(self.chances, 0)
        # every kind with a chance happens at least once, early, whatever the dice say
        self.scripted = [kind for kind, chance in self.chances.items() if chance > 0]

    def _pick(self) -> str | None:
        if self.scripted:
            kind = self.scripted.pop(0)
            self.seen[kind] += 1
            return kind
        roll = self.rng.random()
        for kind, chance in self.chances.items():
            if roll < chance:
                self.seen[kind] += 1
                return kind
            roll -= chance
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        kind = self._pick()
        if kind in ("429", "500"):
            status = int(str(kind))
            payload = json.dumps({"status": status, "message": "injected"}).encode()
            headers = [(b"content-type", b"application/json"), (b"retry-after", b"1")]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
            return None
        if kind == "slow":
            await anyio.sleep(0.3)
        if kind != "drop":
            return await self.app(scope, receive, send)
        return await self._drop(scope, receive, send)

    async def _drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request for real, then cut the answer off half-way."""
        messages: list[dict[str, Any]] = []

        async def keep(message: dict[str, Any]) -> None:
            messages.append(message)

        await self.app(scope, receive, keep)
        await send(messages[0])  # the status line and headers, with the full Content-Length
        raise ConnectionAbortedError("injected: connection dropped mid-answer")
