"""``clearmark serve``: the removal endpoint's protocol (docs/removal-api.md), self-hosted.

Routes (an ASGI app built by ``create_app``; needs the ``server`` extra):

    POST /task/pic/watermark      submit: multipart (plain fields and file parts alike) or
                                  urlencoded; sync=1 answers when done, else at once
    GET  /task/{task_id}          the task's state (only to the token that created it)
    GET  /tasks/output/{name}     a result, for ``result_ttl`` seconds; no token (the long
                                  random name is the credential, like the hosted API's URLs)

A task goes 0 (queued) -> 2 (fetching image_url / mask_url, when given) -> 4 (processing) ->
1 (done), or ends in a negative state: -1 failed, -3 a URL could not be fetched, -5 too large,
-7 not a valid image, -8 processing took longer than ``task_timeout``. Removal runs in worker
threads (``workers`` at a time), never on the event loop; OpenCV and Pillow release the GIL.
Given rectangles or a mask, the server rewrites exactly those pixels; given neither, it runs
clearmark's own detector. When a task ends, its JSON is POSTed to ``callback_url`` (retried).

The task store is in memory and results are files in a private temporary folder: a restart
forgets every task, as a client of the hosted API must expect anyway after the result's hour.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import anyio.abc
import cv2
import numpy as np
import uvicorn
from python_multipart import FormParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from ._detect import detect_array
from ._errors import ImageError
from ._fetch import FetchError, Network, Resolver, SafeFetcher, TooLarge, system_resolver
from ._imageio import LoadedImage, LoadLimits, decode_image, read_dimensions
from ._protocol import MAX_UPLOAD, STATE_DETAIL, SUBMIT_PATH
from ._regions import Detection, Region, mask_to_regions, parse_rectangles, regions_to_mask
from ._remove import LocalRemover

log = logging.getLogger("clearmark.server")

_FIELDS = ("image_file", "image_url", "mask_file", "mask_url", "rectangles", "sync",
           "callback_url", "return_type")
_TRUE, _FALSE = frozenset({"1", "true", "yes"}), frozenset({"0", "false", "no", ""})


@dataclass(frozen=True)
class ServerConfig:
    """Settings of a ``clearmark serve`` instance (times in seconds, sizes in bytes).

    tokens : accepted bearer tokens (never shown in repr).
    public_url : the base of result URLs (default: the URL the request came in on).
    max_upload / max_body : the cap of one file part (413) and of a whole request body.
    max_pixels : images with more pixels end in state -5.
    result_ttl : how long results and finished tasks are kept.
    sync_wait : how long a ``sync=1`` submission is held before answering with the state.
    task_timeout : processing longer than this ends in state -8.
    task_delay : extra latency added to every task (benchmarks).
    workers : removals run at once.
    rate_limit : API requests per second per token (429 beyond; None: no limit).
    allow : networks that fetching and callbacks may reach although private (tests).
    fetch_timeout, callback_attempts, callback_backoff : URL fetching and callback delivery.
    """

    tokens: frozenset[str] = field(repr=False, default=frozenset())
    public_url: str | None = None
    max_upload: int = MAX_UPLOAD
    max_body: int = 2 * MAX_UPLOAD + (1 << 20)
    max_pixels: int = 50_000_000
    result_ttl: float = 3600.0
    sync_wait: float = 50.0
    task_timeout: float = 30.0
    task_delay: float = 0.0
    workers: int = 2
    rate_limit: float | None = None
    allow: tuple[Network, ...] = ()
    fetch_timeout: float = 10.0
    callback_attempts: int = 3
    callback_backoff: float = 1.0

    def __post_init__(self) -> None:
        if not self.tokens:
            raise ValueError("the server needs at least one token (--token-file FILE or "
                             "CLEARMARK_SERVER_TOKENS)")
        if self.workers < 1 or self.max_upload < 1 or self.max_pixels < 1:
            raise ValueError("workers, max_upload and max_pixels must be positive")
        if self.rate_limit is not None and not self.rate_limit > 0:
            raise ValueError("rate_limit must be positive")


def load_server_tokens(token_file: str | os.PathLike[str] | None = None,
                       environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Tokens from FILE (one per line; blank lines and # comments skipped), else from
    CLEARMARK_SERVER_TOKENS (comma-separated). ValueError names the file, never a token."""
    if token_file is not None:
        try:
            lines = Path(token_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the token file {token_file}: "
                             f"{type(exc).__name__}") from None
        tokens = [line.strip() for line in lines]
    else:
        tokens = (os.environ if environ is None else environ).get(
            "CLEARMARK_SERVER_TOKENS", "").split(",")
    return frozenset(t.strip() for t in tokens if t.strip() and not t.strip().startswith("#"))


# -- tasks ----------------------------------------------------------------------------------


class _Refused(Exception):
    """A request answered with an HTTP error status and a JSON message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class _TaskError(Exception):
    """A task that ends in the negative ``state``; the message becomes its ``err_info``."""

    def __init__(self, state: int, message: str) -> None:
        super().__init__(message)
        self.state = state


@dataclass(frozen=True)
class _Job:
    """What a valid submission asks for."""

    image: bytes | None
    image_url: str | None
    mask: bytes | None
    mask_url: str | None
    rectangles: tuple[Region, ...] | None
    sync: bool
    callback_url: str | None
    return_type: int


@dataclass(eq=False)
class _Task:
    """One task's mutable record (only touched from the event loop)."""

    task_id: str
    owner: str
    base_url: str
    return_type: int
    callback_url: str | None
    created_at: float
    done: anyio.Event
    state: int = 0
    err_info: str = ""
    processed_at: float | None = None
    completed_at: float | None = None
    download_ms: int = 0
    width: int | None = None
    height: int | None = None
    output: str | None = None  # the result's file name under the store's folder

    def end(self, state: int, err_info: str, now: float) -> None:
        self.state, self.err_info, self.completed_at = state, err_info, now
        self.done.set()


class _Store:
    """Tasks and result files, forgotten ``ttl`` seconds after they end."""

    def __init__(self, folder: Path, ttl: float, clock: Callable[[], float]) -> None:
        self.folder, self.ttl, self.clock = folder, ttl, clock
        self.tasks: dict[str, _Task] = {}
        self.outputs: dict[str, str] = {}  # result file name -> task id

    def create(self, owner: str, job: _Job, base_url: str) -> _Task:
        """A queued task; its id is random, so ids tell nothing about other clients' work."""
        task = _Task(task_id=secrets.token_hex(16), owner=owner, base_url=base_url,
                     return_type=job.return_type, callback_url=job.callback_url,
                     created_at=self.clock(), done=anyio.Event())
        self.tasks[task.task_id] = task
        return task

    def get(self, task_id: str, owner: str) -> _Task | None:
        task = self.tasks.get(task_id)
        return task if task is not None and task.owner == owner else None

    def output_path(self, name: str) -> Path | None:
        task = self.tasks.get(self.outputs.get(name, ""))
        return None if task is None else self.folder / name

    def new_output(self, task: _Task) -> Path:
        """Where the result goes; the unguessable name is the result URL's only credential."""
        name = f"{task.task_id}-{secrets.token_urlsafe(24)}-image.png"
        task.output = name
        self.outputs[name] = task.task_id
        return self.folder / name

    def sweep(self) -> None:
        """Drop tasks (and their files) that ended more than ``ttl`` seconds ago."""
        limit = self.clock() - self.ttl
        old = [t for t in self.tasks.values() if t.completed_at is not None
               and t.completed_at <= limit]
        for task in old:
            del self.tasks[task.task_id]
            if task.output is not None:
                self.outputs.pop(task.output, None)
                (self.folder / task.output).unlink(missing_ok=True)

    def answer(self, task: _Task) -> dict[str, Any]:
        """The task as the protocol's ``data`` object."""
        image = ""
        if task.state == 1 and task.output is not None:
            path = self.folder / task.output
            image = (base64.b64encode(path.read_bytes()).decode("ascii")
                     if task.return_type == 2 else f"{task.base_url}/tasks/output/{task.output}")
        end = task.completed_at or self.clock()
        return {
            "task_id": task.task_id, "state": task.state,
            "state_detail": STATE_DETAIL.get(task.state, ""),
            "progress": 100 if task.state == 1 else 50 if task.state == 4 else 0,
            "err_info": task.err_info, "image": image,
            "image_width": task.width, "image_height": task.height,
            "created_at": int(task.created_at),
            "processed_at": None if task.processed_at is None else int(task.processed_at),
            "completed_at": None if task.completed_at is None else int(task.completed_at),
            "time_elapsed": round((end - task.created_at) * 1000, 2),
            "download_time": task.download_ms, "return_type": task.return_type,
            "output_type": 2, "result_type": "object", "type": "auto",
        }


class _Bucket:
    """A token bucket: ``rate`` requests per second, one second's worth of burst."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate, self.capacity = rate, max(1.0, rate)
        self.tokens, self.last = self.capacity, now

    def take(self, now: float) -> float:
        """0 when the request may pass, else the seconds until it could."""
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


# -- request reading -------------------------------------------------------------------------


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _Refused(413, f"request body over the {limit} byte cap")
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _Refused(413, f"request body over the {limit} byte cap")
        parts.append(chunk)
    return b"".join(parts)


def _parse_fields(body: bytes, content_type: str) -> dict[str, bytes]:
    """Every form field as raw bytes, whether it came as a plain field or a file part."""
    if not body.strip():
        return {}
    kind, options = parse_options_header(content_type)
    kind_text = kind.decode("latin-1").lower() if isinstance(kind, bytes) else str(kind).lower()
    if kind_text == "application/x-www-form-urlencoded":
        pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="utf-8")
        return _unique((name, value.encode("utf-8")) for name, value in pairs)
    if kind_text != "multipart/form-data" or b"boundary" not in options:
        raise _Refused(400, "the body must be multipart/form-data")
    found: list[tuple[str, bytes]] = []

    def on_field(part: Any) -> None:
        found.append((part.field_name.decode("utf-8", "replace"), part.value or b""))

    def on_file(part: Any) -> None:
        part.file_object.seek(0)
        found.append((part.field_name.decode("utf-8", "replace"), part.file_object.read()))

    parser = FormParser("multipart/form-data", on_field, on_file, boundary=options[b"boundary"],
                        config={"MAX_MEMORY_FILE_SIZE": len(body) + 1})
    try:
        parser.write(body)
        parser.finalize()
    except (FormParserError, ValueError) as exc:
        raise _Refused(400, f"malformed multipart body: {exc}") from None
    return _unique(found)


def _unique(pairs: Any) -> dict[str, bytes]:
    fields: dict[str, bytes] = {}
    for name, value in pairs:
        if name in fields and name in _FIELDS:
            raise _Refused(400, f"{name} is given more than once")
        fields[name] = value
    return fields


def _text(fields: dict[str, bytes], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    try:
        return value.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise _Refused(400, f"{name} is not UTF-8 text") from None


def _read_job(fields: dict[str, bytes], config: ServerConfig) -> _Job:
    """Validate a submission as the protocol says; every problem is a 400 naming the field."""
    image, image_url = fields.get("image_file"), _text(fields, "image_url") or None
    mask, mask_url = fields.get("mask_file"), _text(fields, "mask_url") or None
    rectangles_text = _text(fields, "rectangles") or None
    if (image is None) == (image_url is None):
        raise _Refused(400, "give exactly one of image_file and image_url")
    if sum(x is not None for x in (mask, mask_url, rectangles_text)) > 1:
        raise _Refused(400, "give at most one of mask_file, mask_url and rectangles")
    for name, data in (("image_file", image), ("mask_file", mask)):
        if data is not None and len(data) > config.max_upload:
            raise _Refused(413, f"{name} is {len(data)} bytes, over the "
                                f"{config.max_upload} byte cap")
        if data is not None and not data:
            raise _Refused(400, f"{name} is empty")
    for name, url in (("image_url", image_url), ("mask_url", mask_url),
                      ("callback_url", _text(fields, "callback_url") or None)):
        if url is not None and (urlsplit(url).scheme not in ("http", "https")
                                or not urlsplit(url).netloc):
            raise _Refused(400, f"{name} must be an http(s) URL")
    return _Job(image, image_url, mask, mask_url, _rectangles(rectangles_text, image),
                _flag(fields), _text(fields, "callback_url") or None, _return_type(fields))


def _rectangles(text: str | None, image: bytes | None) -> tuple[Region, ...] | None:
    if text is None:
        return None
    size = read_dimensions(image) if image is not None else None
    width, height = size if size is not None else (None, None)
    try:
        return tuple(parse_rectangles(text, width=width, height=height))
    except ValueError as exc:
        raise _Refused(400, str(exc)) from None


def _flag(fields: dict[str, bytes]) -> bool:
    value = (_text(fields, "sync") or "0").lower()
    if value not in _TRUE | _FALSE:
        raise _Refused(400, "sync must be 0 or 1")
    return value in _TRUE


def _return_type(fields: dict[str, bytes]) -> int:
    value = _text(fields, "return_type") or "1"
    if value not in ("1", "2"):
        raise _Refused(400, "return_type must be 1 (URL) or 2 (base64)")
    return int(value)


# -- the work (in a worker thread) --------------------------------------------------------------


@dataclass(frozen=True)
class _Worker:
    """Decode, build the detection (given or detected), remove, encode PNG: one task's work.

    ``remover`` replaces both defaults (tests inject slow or failing ones); given areas are
    rewritten exactly (no growing), detected ones the way the local remover always does.
    """

    max_pixels: int
    remover: Any = None
    detector: Callable[[np.ndarray], Detection] = detect_array

    def __call__(self, image: bytes, mask: bytes | None,
                 rectangles: tuple[Region, ...] | None) -> tuple[bytes, int, int]:
        loaded = self._decode(image, "image")
        height, width = loaded.rgb.shape[:2]
        given = self._given(loaded.rgb, mask, rectangles)
        detection = given or self.detector(loaded.rgb)
        remover = self.remover or (LocalRemover(grow=0) if given else LocalRemover())
        cleaned = remover.remove(loaded.rgb, detection) if detection.watermarked else loaded.rgb
        return _png(cleaned, loaded.alpha), width, height

    def _decode(self, data: bytes, what: str) -> LoadedImage:
        size = read_dimensions(data)
        if size is not None and size[0] * size[1] > self.max_pixels:
            raise _TaskError(-5, f"{what} is {size[0]}x{size[1]}, over the "
                                 f"{self.max_pixels / 1e6:g} MP cap")
        try:
            return decode_image(data, source=what, limits=LoadLimits(
                max_pixels=self.max_pixels, max_bytes=MAX_UPLOAD))
        except ImageError as exc:
            raise _TaskError(-5 if "limit" in exc.reason else -7, str(exc)) from None

    def _given(self, rgb: np.ndarray, mask: bytes | None,
               rectangles: tuple[Region, ...] | None) -> Detection | None:
        height, width = rgb.shape[:2]
        if rectangles is not None:
            for i, region in enumerate(rectangles):
                if region.x2 > width or region.y2 > height:
                    raise _TaskError(-1, f"rectangles[{i}] is outside the {width}x{height} "
                                         "image")
            return Detection(True, 1.0, rectangles, regions_to_mask(rectangles, height, width))
        if mask is None:
            return None
        binary = self._mask(mask, width, height)
        regions = mask_to_regions(binary, kind="mask")
        return Detection(bool(regions), 1.0, tuple(regions), binary)

    def _mask(self, data: bytes, width: int, height: int) -> np.ndarray:
        pixels = self._decode(data, "mask").rgb
        if pixels.shape[:2] != (height, width):
            raise _TaskError(-7, f"the mask is {pixels.shape[1]}x{pixels.shape[0]}, the image "
                                 f"{width}x{height}")
        return np.where(pixels.max(axis=2) > 127, 255, 0).astype(np.uint8)


def _png(rgb: np.ndarray, alpha: np.ndarray | None) -> bytes:
    """Fast PNG (lossless; light compression keeps the server's CPU for removal)."""
    pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if alpha is not None:
        pixels = np.dstack([pixels, alpha])
    ok, encoded = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise _TaskError(-1, "could not encode the result")
    return encoded.tobytes()


# -- the service --------------------------------------------------------------------------------


class _Service:
    """Handlers, task store, worker slots, fetcher: one running server's state."""

    def __init__(self, config: ServerConfig, worker: _Worker, clock: Callable[[], float],
                 resolver: Resolver, transport: Any) -> None:
        self.config, self.worker, self.clock = config, worker, clock
        self._owners = {hashlib.sha256(t.encode()).hexdigest() for t in config.tokens}
        self._buckets: dict[str, _Bucket] = {}
        self._resolver, self._transport = resolver, transport
        self.store: _Store | None = None
        self.fetcher: SafeFetcher | None = None
        self._group: anyio.abc.TaskGroup | None = None
        self._slots = anyio.CapacityLimiter(config.workers)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The server's lifetime: a results folder, a fetcher, a task group for the work."""
        folder = Path(tempfile.mkdtemp(prefix="clearmark-serve-"))
        self.store = _Store(folder, self.config.result_ttl, self.clock)
        self.fetcher = SafeFetcher(allow=self.config.allow, timeout=self.config.fetch_timeout,
                                   resolver=self._resolver, transport=self._transport)
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                group.start_soon(self._sweep_every, 60.0)
                yield
                group.cancel_scope.cancel()
        finally:
            self._group = None
            await self.fetcher.aclose()
            shutil.rmtree(folder, ignore_errors=True)

    async def _sweep_every(self, seconds: float) -> None:
        """Expired results leave the disk even when no request comes to trigger a sweep."""
        while self.store is not None:
            await anyio.sleep(seconds)
            self.store.sweep()

    def _live(self) -> tuple[_Store, anyio.abc.TaskGroup]:
        if self.store is None or self._group is None:
            raise _Refused(503, "the server is not running (lifespan not started)")
        self.store.sweep()
        return self.store, self._group

    def _owner(self, request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        digest = hashlib.sha256(token.strip().encode()).hexdigest()
        if scheme.lower() != "bearer" or not token.strip() or digest not in self._owners:
            raise _Refused(401, "missing or invalid bearer token")
        if self.config.rate_limit is not None:
            now = time.monotonic()
            bucket = self._buckets.setdefault(digest, _Bucket(self.config.rate_limit, now))
            wait = bucket.take(now)
            if wait > 0:
                raise _Refused(429, f"over the rate limit of {self.config.rate_limit:g} "
                                    "requests per second", {"Retry-After": str(math.ceil(wait))})
        return digest

    async def submit(self, request: Request) -> Response:
        """POST /task/pic/watermark: validate, queue, and answer at once or (sync) when done."""
        store, group = self._live()
        owner = self._owner(request)
        fields = _parse_fields(await _read_body(request, self.config.max_body),
                               request.headers.get("content-type", ""))
        job = _read_job(fields, self.config)
        task = store.create(owner, job, self._base_url(request))
        group.start_soon(self._run, task, job)
        if job.sync:
            with anyio.move_on_after(self.config.sync_wait):
                await task.done.wait()
        return _ok(store.answer(task))

    async def task(self, request: Request) -> Response:
        """GET /task/{task_id}: the state, to the token that created the task only."""
        store, _ = self._live()
        task = store.get(request.path_params["task_id"], self._owner(request))
        if task is None:
            raise _Refused(404, "no such task (unknown, expired, or another token's)")
        return _ok(store.answer(task))

    async def output(self, request: Request) -> Response:
        """GET /tasks/output/{name}: a result, until it expires."""
        store, _ = self._live()
        path = store.output_path(request.path_params["name"])
        if path is None or not path.is_file():
            raise _Refused(404, "no such result (unknown or expired)")
        return FileResponse(path, media_type="image/png")

    def _base_url(self, request: Request) -> str:
        return (self.config.public_url or str(request.base_url)).rstrip("/")

    async def _run(self, task: _Task, job: _Job) -> None:
        """Carry one task to its final state, whatever happens on the way."""
        store = self.store
        assert store is not None
        try:
            image, mask = await self._inputs(task, job)
            await anyio.sleep(self.config.task_delay)
            output = await self._process(task, image, mask, job.rectangles)
            path = store.new_output(task)
            await anyio.to_thread.run_sync(path.write_bytes, output)
            task.end(1, "", self.clock())
        except _TaskError as exc:
            task.end(exc.state, str(exc), self.clock())
        except Exception as exc:  # a bug must still end the task, not leave it pending
            log.exception("task %s failed", task.task_id)
            task.end(-1, f"internal error: {type(exc).__name__}", self.clock())
        log.debug("task %s ended in state %d", task.task_id, task.state)
        if task.callback_url is not None and self._group is not None:
            self._group.start_soon(self._callback, task)

    async def _inputs(self, task: _Task, job: _Job) -> tuple[bytes, bytes | None]:
        started = self.clock()
        if job.image_url is not None or job.mask_url is not None:
            task.state = 2
        image = job.image if job.image is not None else await self._fetch(job.image_url, "image")
        mask = job.mask if job.mask_url is None else await self._fetch(job.mask_url, "mask")
        task.download_ms = round((self.clock() - started) * 1000)
        return image, mask

    async def _fetch(self, url: str | None, what: str) -> bytes:
        assert url is not None and self.fetcher is not None
        try:
            return await self.fetcher.get(url, self.config.max_upload)
        except TooLarge as exc:
            raise _TaskError(-5, f"{what}_url: {exc}") from None
        except FetchError as exc:
            raise _TaskError(-3, f"could not download {what}_url: {exc}") from None

    async def _process(self, task: _Task, image: bytes, mask: bytes | None,
                       rectangles: tuple[Region, ...] | None) -> bytes:
        async with self._slots:
            task.state, task.processed_at = 4, self.clock()
            with anyio.move_on_after(self.config.task_timeout) as scope:
                output, task.width, task.height = await anyio.to_thread.run_sync(
                    self.worker, image, mask, rectangles, abandon_on_cancel=True)
                return output
        assert scope.cancelled_caught
        raise _TaskError(-8, f"processing took longer than {self.config.task_timeout:g} s")

    async def _callback(self, task: _Task) -> None:
        """POST the task's JSON to its callback URL; retry failures with growing waits."""
        assert self.fetcher is not None and self.store is not None and task.callback_url
        body = {"status": 200, "data": self.store.answer(task)}
        for attempt in range(self.config.callback_attempts):
            try:
                status = await self.fetcher.post_json(task.callback_url, body)
                if 200 <= status < 300:
                    return
                reason = f"HTTP {status}"
            except FetchError as exc:
                reason = str(exc)
            log.info("callback for task %s failed (%s), attempt %d", task.task_id, reason,
                     attempt + 1)
            await anyio.sleep(self.config.callback_backoff * 2 ** attempt)


def _ok(data: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"status": 200, "data": data})


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _Refused)
    return JSONResponse({"status": exc.status, "message": exc.message}, exc.status,
                        headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = "unknown path" if status == 404 else str(getattr(exc, "detail", "server error"))
    return JSONResponse({"status": status, "message": message}, status)


def create_app(config: ServerConfig, *, remover: Any = None,
               detector: Callable[[np.ndarray], Detection] = detect_array,
               clock: Callable[[], float] = time.time, resolver: Resolver = system_resolver,
               fetch_transport: Any = None) -> Starlette:
    """The ASGI app. ``remover``/``detector`` replace the work, ``clock`` the time of the
    task store (result expiry), ``resolver``/``fetch_transport`` the network of URL fetching
    and callbacks; all for tests. ``app.state.service`` is the running server's state."""
    service = _Service(config, _Worker(config.max_pixels, remover, detector), clock, resolver,
                       fetch_transport)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with service.running():
            yield

    app = Starlette(
        routes=[Route(SUBMIT_PATH, service.submit, methods=["POST"]),
                Route("/task/{task_id}", service.task, methods=["GET"]),
                Route("/tasks/output/{name}", service.output, methods=["GET"])],
        exception_handlers={_Refused: _refused, HTTPException: _http_error,
                            Exception: _http_error},
        lifespan=lifespan)
    app.state.service = service
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: an ephemeral one; read it back from ``getsockname``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(app: Starlette, sock: socket.socket, *, log_level: str = "warning") -> None:
    """Run ``app`` with uvicorn on ``sock`` until interrupted."""
    config = uvicorn.Config(app, lifespan="on", log_level=log_level, access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
