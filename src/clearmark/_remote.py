"""Removal through an endpoint: ``APIRemover`` for library calls, ``run_remote`` for folders.

What to send for a detection (``plan_removal``): ``rectangles`` when at most 50 of them cover
the detected regions with little extra area (the endpoint then rewrites whole rectangles, so
extra area is pixels rewritten for nothing), else a ``mask_file`` of exactly the pixels the
local remover would rewrite (tiled marks, ragged shapes that 50 boxes cannot follow).

A folder run keeps the local path's contracts (same ``Journal``, records, atomic writes,
resume): worker processes run ``CleanTask`` itself through ``_pipeline.run`` (checks,
detection, byte-for-byte copies of clean images, failure records), except that a watermarked
image comes back planned instead of removed (``PrepareTask``); the main process keeps up to
``in_flight`` removals going at once, each in a thread, all on one ``Client`` (one connection
pool, one rate limiter); a thread decodes, checks and writes its result in the original's
format. Records come back in completion order, each input exactly once.

Previews for the review page are made in two halves, each where its pixels are: the "before"
thumbnail and zoom crops in the worker, the "after" thumbnail and the zooms in the thread that
writes the result. A region's ``"method"`` is ``"api"``: the endpoint does not say more.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ._client import DEFAULT_RATE, Client
from ._errors import APIError, ClearmarkError
from ._imageio import ImageMeta, decode_image, load_image, write_image
from ._pipeline import CleanTask, Input, Record, guarded, run, with_methods
from ._protocol import (
    DEFAULT_POLICY,
    MAX_UPLOAD,
    PollPolicy,
    Secret,
    Submission,
    orientation,
    resolve_token,
)
from ._regions import Detection, Region, regions_to_mask
from ._remove import removal_mask
from ._report import Thumbnailer

EXTRA_AREA = 0.25
"""Rectangles are sent when they cover at most this share more than the detected regions."""
_GROW = 2  # the local remover's default growth of the stroke mask
_JOB = "_job"  # key of a prepared record's pending work; never journaled
_AS_IS = frozenset({"JPEG", "PNG", "WEBP"})  # formats the endpoint takes as they are


def plan_removal(detection: Detection, *, extra_area: float = EXTRA_AREA) -> dict[str, Any]:
    """The submission fields for a detection: ``{"rectangles": [...]}`` or ``{"mask_file":
    png}``. An empty dict when there is nothing to remove."""
    if not detection.watermarked or not detection.regions:
        return {}
    height, width = detection.mask.shape
    rectangles = detection.rectangles()
    need = np.count_nonzero(regions_to_mask(detection.regions, height, width))
    boxes = [Region(r["x"], r["y"], r["width"], r["height"]) for r in rectangles]
    covered = np.count_nonzero(regions_to_mask(boxes, height, width))
    if rectangles and covered <= need * (1 + extra_area):
        return {"rectangles": rectangles}
    return {"mask_file": _png(removal_mask(detection.mask, detection.regions, _GROW))}


def _png(pixels: np.ndarray) -> bytes:
    """Lossless and fast: a mask or an upload is read once by the server."""
    return _encode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1])


def _image_upload(rgb: np.ndarray) -> bytes:
    """Pixels to send: PNG, or a JPEG at quality 95 when the PNG is over the endpoint's cap
    (a large photo); the removal area travels separately, so it stays exact either way."""
    data = _png(rgb)
    return data if len(data) <= MAX_UPLOAD else _encode(".jpg", rgb,
                                                        [cv2.IMWRITE_JPEG_QUALITY, 95])


def _encode(ext: str, pixels: np.ndarray, params: list[int]) -> bytes:
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(ext, pixels, params)
    if not ok:
        raise ClearmarkError(f"could not encode a {ext} file for the endpoint")
    return encoded.tobytes()


def _decoded(data: bytes, size: tuple[int, int], source: str) -> np.ndarray:
    """A result's RGB pixels, checked to be the input's size."""
    rgb = decode_image(data, source=source).rgb
    if (rgb.shape[1], rgb.shape[0]) != size:
        raise APIError(f"{source} is {rgb.shape[1]}x{rgb.shape[0]}, the input is "
                       f"{size[0]}x{size[1]}")
    return rgb


@dataclass(frozen=True)
class APIRemover:
    """A ``Remover`` that sends the image and its plan to a removal endpoint (``sync=1``).

    ``clean(image, remover=APIRemover())`` uses it. The token comes from ``token``, else
    ``token_file``, else CLEARMARK_TOKEN; it is kept as a ``Secret`` and never shown. One
    connection (and rate limiter) serves every call; ``close()`` ends it, as does garbage
    collection. The remover pickles (without its connection) to travel to worker processes.
    """

    base_url: str | None = None
    token: Secret | str | None = field(default=None, repr=False)
    token_file: str | None = field(default=None, repr=False)
    policy: PollPolicy = DEFAULT_POLICY
    rate: float | None = DEFAULT_RATE
    transport: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        token = self.token
        secret = token if isinstance(token, Secret) else resolve_token(token, self.token_file)
        object.__setattr__(self, "token", secret)
        object.__setattr__(self, "token_file", None)

    def remove(self, rgb: np.ndarray, detection: Detection) -> np.ndarray:
        """The image with the detection removed by the endpoint (RGB, same size)."""
        plan = plan_removal(detection)
        if not plan:
            return rgb.copy()
        height, width = rgb.shape[:2]
        upload = _image_upload(rgb)
        result = self._client().remove(Submission(image_file=upload, sync=True, **plan))
        return np.array(_decoded(result.data, (width, height),
                                 f"task {result.task.task_id} result"))

    def close(self) -> None:
        """End the connection (a later ``remove`` opens a new one)."""
        client = self.__dict__.pop("_connection", None)
        if client is not None:
            client.close()

    def _client(self) -> Client:
        client = self.__dict__.get("_connection")
        if client is None:
            token = self.token.reveal() if isinstance(self.token, Secret) else None
            client = Client(self.base_url, token=token, policy=self.policy, rate=self.rate,
                            transport=self.transport)
            self.__dict__["_connection"] = client
            weakref.finalize(self, client.close)  # a remover dropped unclosed leaks no socket
        return client

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_connection", "transport")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, transport=None)


# -- folders ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Previews:
    """The half of an image's previews that waits for its result (see ``Thumbnailer``)."""

    thumbnailer: Thumbnailer
    rel: str
    regions: tuple[Region, ...]
    crops: list[np.ndarray] = field(repr=False)

    def add_after(self, record: Record, rgb: np.ndarray) -> None:
        """Put the result's previews in ``record`` (best effort, like ``CleanTask``'s)."""
        try:
            made = self.thumbnailer.after(self.rel, rgb, self.regions, self.crops)
        except (ClearmarkError, cv2.error) as exc:
            made = {"error": str(exc)}
        record["thumbs"] = {**record.get("thumbs", {}), **made}


@dataclass(frozen=True)
class _Work:
    """A watermarked image's pending removal: what to upload, and how to write it back."""

    upload: bytes = field(repr=False)
    plan: dict[str, Any] = field(repr=False)
    meta: ImageMeta
    alpha: np.ndarray | None = field(repr=False)
    size: tuple[int, int]
    previews: _Previews | None = None


class _Deferred(BaseException):
    """Carries a watermarked image out of ``CleanTask`` at the point where the local path
    would remove it. A BaseException, so CleanTask's per-file error handling lets it pass."""

    def __init__(self, rgb: np.ndarray, detection: Detection, plan: dict[str, Any]) -> None:
        super().__init__("deferred to the endpoint")
        self.rgb, self.detection, self.plan = rgb, detection, plan


@dataclass(frozen=True)
class _Planner:
    """The remover ``PrepareTask`` gives ``CleanTask``: plans instead of removing."""

    def remove(self, rgb: np.ndarray, detection: Detection) -> np.ndarray:
        plan = plan_removal(detection)
        if not plan:
            return rgb.copy()  # nothing to remove: written as it is, like the local remover
        raise _Deferred(rgb, detection, plan)


@dataclass(frozen=True)
class PrepareTask:
    """Per file, in a worker process: ``CleanTask`` itself (same checks, detection, copies
    and records), except that a watermarked image comes back as a record carrying its planned
    removal instead of being removed. Picklable, like CleanTask."""

    base: CleanTask

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", replace(self.base, remover=_Planner()))

    def failure_record(self, item: Input) -> Record:
        return self.base.failure_record(item)

    def __call__(self, item: Input) -> Record:
        started = time.perf_counter()
        try:
            return self.base(item)
        except _Deferred as deferred:
            record = guarded(self.failure_record(item), item,
                             functools.partial(self._work, item, deferred))
            record["seconds"] = round(time.perf_counter() - started, 4)
            return record

    def _work(self, item: Input, deferred: _Deferred) -> Record:
        """The record fields CleanTask would have written, plus the pending work."""
        height, width = deferred.rgb.shape[:2]
        original = load_image(item.path, limits=self.base.limits)  # its meta and alpha
        if original.rgb.shape != deferred.rgb.shape:
            raise ClearmarkError(f"{item.path}: changed while it was being processed")
        regions = deferred.detection.regions
        crops: list[np.ndarray] = []

        def before(thumbnailer: Thumbnailer) -> Record:
            made, more = thumbnailer.before(str(item.rel), deferred.rgb, regions)
            crops.extend(more)
            return made

        previews = self.base.previews(before)
        waiting = _Previews(Thumbnailer(self.base.dst), str(item.rel), regions, crops) \
            if "before" in previews.get("thumbs", {}) else None
        work = _Work(_upload(item.path, deferred.rgb, original.meta.format), deferred.plan,
                     original.meta, original.alpha, (width, height), waiting)
        return {"width": width, "height": height, **deferred.detection.to_dict(), **previews,
                _JOB: work}


def _upload(path: Path, rgb: np.ndarray, fmt: str) -> bytes:
    """The file as it is when the endpoint reads it the same way (upright, a common format,
    under the cap), else the decoded pixels, so rectangles match what was detected."""
    data = path.read_bytes()
    if fmt in _AS_IS and len(data) <= MAX_UPLOAD and orientation(data) == 1:
        return data
    return _image_upload(rgb)


def _finish(work: _Work, data: bytes, output: Path, source: str) -> np.ndarray:
    """Decode the endpoint's result and write it like the original (format, alpha, meta);
    return its pixels."""
    rgb = _decoded(data, work.size, source)
    write_image(output, rgb, work.meta, alpha=work.alpha)
    return rgb


class _Stopped(BaseException):
    """Ends a removal thread's wait when the run is interrupted (passes ``except Exception``)."""


class _Stop:
    """The sleep every removal thread waits with: it ends at once when the run stops."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def sleep(self, seconds: float) -> None:
        if self.event.wait(seconds):
            raise _Stopped


def _remove_one(client: Client, work: _Work, record: Record, done: queue.Queue[Record],
                stopped: threading.Event) -> None:
    """One image's removal (in a thread), ending whatever happens as its record on ``done``;
    nothing is written once the run has stopped."""
    started = time.perf_counter()
    try:
        result = client.remove(Submission(image_file=work.upload, sync=True, **work.plan))
        if stopped.is_set():
            raise _Stopped
        rgb = _finish(work, result.data, Path(record["output"]),
                      f"task {result.task.task_id} result")
        record.update(status="cleaned", error=None, regions=with_methods(
            record["regions"], ["api"] * len(record["regions"])))
        if work.previews is not None:
            work.previews.add_after(record, rgb)
    except (ClearmarkError, ValueError) as exc:
        record["error"] = f"{record['path']}: {exc}"
    except Exception as exc:  # the record must come back, or the image would be lost
        record["error"] = f"{record['path']}: unexpected {type(exc).__name__}: {exc}"
    finally:
        record["seconds"] = round(record["seconds"] + time.perf_counter() - started, 4)
        done.put(record)


class _InFlight:
    """Removals running in up to ``limit`` daemon threads on one shared client.

    Daemon threads, not a ThreadPoolExecutor: after Ctrl-C a thread may still be blocked
    reading an answer (a ``sync=1`` request can take a minute), and an executor's threads
    would hold the process until then.
    """

    def __init__(self, client: Client, limit: int, stop: _Stop) -> None:
        self.client, self.limit, self.stop = client, limit, stop
        self.todo: queue.Queue[tuple[_Work, Record] | None] = queue.Queue()
        self.done: queue.Queue[Record] = queue.Queue()
        self.threads: list[threading.Thread] = []
        self.count = 0

    def start(self, work: _Work, record: Record) -> Iterator[Record]:
        """Start one removal, first yielding finished records while ``limit`` are running."""
        while self.count >= self.limit:
            yield self._take()
        if len(self.threads) < self.limit:
            thread = threading.Thread(target=self._serve, daemon=True,
                                      name=f"clearmark-remove-{len(self.threads)}")
            thread.start()
            self.threads.append(thread)
        self.todo.put((work, record))
        self.count += 1

    def finished(self, wait: bool = False) -> Iterator[Record]:
        """Records of ended removals: those ready now, or (``wait``) all of them."""
        while self.count and (wait or not self.done.empty()):
            yield self._take()

    def close(self) -> None:
        """Let the threads go: waiting ones end at once (an interrupted run's images are
        redone when it resumes); one blocked on the network ends with its request."""
        self.stop.event.set()
        for _ in self.threads:
            self.todo.put(None)
        self.client.close()

    def _serve(self) -> None:
        with contextlib.suppress(_Stopped):
            while (job := self.todo.get()) is not None and not self.stop.event.is_set():
                _remove_one(self.client, *job, self.done, self.stop.event)

    def _take(self) -> Record:
        record = self.done.get()
        self.count -= 1
        return record


def run_remote(task: PrepareTask, items: Iterable[Input], client: Callable[..., Client], *,
               jobs: int = 1, in_flight: int = 16) -> Iterator[Record]:
    """Clean ``items`` through an endpoint; one record per item, in completion order.

    ``client(sleep=...)`` makes the one ``Client`` (and so the one rate limiter) every
    removal shares; up to ``in_flight`` removals wait on the network at once, each in a
    thread (blocking clients in threads cost less CPU per task than ``AsyncClient`` on an
    event loop: bench/endpoint-report.md). Closing the iterator early (Ctrl-C) stops the
    removals in flight; their images are redone by a resumed run.
    """
    stop = _Stop()
    tasks = _InFlight(client(sleep=stop.sleep), in_flight, stop)
    try:
        for record in run(task, items, jobs=jobs):
            work = record.pop(_JOB, None)
            if work is None:
                yield record
            else:
                yield from tasks.start(work, record)
            yield from tasks.finished()
        yield from tasks.finished(wait=True)
    finally:
        tasks.close()
