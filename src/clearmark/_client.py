"""The removal endpoint's clients: ``Client`` (blocking) and ``AsyncClient`` (anyio).

Both are thin loops over the flows of ``_protocol.Core``: they send the requests it yields
(through an injected ``httpx`` transport or client), sleep when it says so, and feed the
answers back. Nothing about the protocol is decided here. A ``RateLimiter`` paces every request
to the API (not result downloads); one limiter is shared by all the tasks a client has in
flight, and can be shared by several clients.

    with clearmark.Client("https://api.gpt.ge") as client:         # token from CLEARMARK_TOKEN
        result = client.remove(Submission(image_file="a.jpg", rectangles=[...], sync=True))
        open("a-clean.png", "wb").write(result.data)
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import anyio
import httpx

from ._errors import APIError
from ._protocol import (
    DEFAULT_BASE_URL,
    DEFAULT_POLICY,
    Answer,
    Capped,
    Core,
    Flow,
    Hold,
    PollPolicy,
    Reply,
    Send,
    Sleep,
    Step,
    Submission,
    TaskInfo,
    TaskResult,
    resolve_token,
)

T = TypeVar("T")
DEFAULT_RATE = 2.0
"""Requests per second: the upstream's default limit per key."""


class RateLimiter:
    """Space requests ``1/rate`` seconds apart, allowing ``burst`` back to back (thread-safe).

    ``reserve(now)`` books the next free slot and returns how long to wait for it; the caller
    sleeps (with whatever sleep it has), so one limiter serves threads and event loops alike.
    ``rate=None`` turns spacing off; ``hold`` still applies.
    """

    def __init__(self, rate: float | None = DEFAULT_RATE, burst: int = 1) -> None:
        if rate is not None and not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number of requests per second, got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate, self.burst = rate, burst
        self._interval = 0.0 if rate is None else 1.0 / rate
        self._tolerance = (burst - 1) * self._interval
        self._next = -math.inf  # the theoretical arrival time of the next request (GCRA)
        self._lock = threading.Lock()

    def reserve(self, now: float) -> float:
        """Book a slot for a request about to go; return the seconds to wait before sending."""
        with self._lock:
            start = max(now, self._next - self._tolerance)
            self._next = max(self._next, start) + self._interval
        return start - now

    def hold(self, until: float) -> None:
        """Let no request start before ``until`` (a 429 applies to every task of the key)."""
        with self._lock:
            self._next = max(self._next, until + self._tolerance)

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate}, burst={self.burst})"


class _Base:
    """What both clients share: configuration, the core, the limiter; no sending."""

    def __init__(self, base_url: str | None, token: str | None,
                 token_file: str | os.PathLike[str] | None, policy: PollPolicy,
                 rate: float | None, limiter: RateLimiter | None, verify: bool,
                 clock: Callable[[], float], rng: random.Random | None) -> None:
        secret = resolve_token(token, token_file)
        base_url = base_url or os.environ.get("CLEARMARK_API_BASE") or DEFAULT_BASE_URL
        self._core = Core(base_url, secret, policy, clock=clock, wall=time.time,
                          rng=rng or random.Random(), verify=verify)
        self._clock = clock
        self.limiter = limiter or RateLimiter(rate)

    @property
    def base_url(self) -> str:
        return self._core.base_url

    @property
    def policy(self) -> PollPolicy:
        return self._core.policy

    def __repr__(self) -> str:
        token = "set" if self._core.token is not None else "none"
        return (f"{type(self).__name__}(base_url={self.base_url!r}, token={token}, "
                f"rate={self.limiter.rate})")


class Client(_Base):
    """Blocking client of the removal endpoint; thread-safe (threads share its connections and
    its rate limiter).

    base_url : the endpoint (default: CLEARMARK_API_BASE, else the hosted API).
    token / token_file : the bearer token; default: CLEARMARK_TOKEN. Never shown anywhere.
    policy : waits, retries and the deadline (``PollPolicy``).
    rate / limiter : requests per second to the API, or a ``RateLimiter`` to share.
    transport / http : an ``httpx`` transport, or a ready ``httpx.Client`` (not closed here).
    verify : fully decode each result (else its header must show the input's size).
    clock, sleep, rng : injected time and randomness (tests run without sleeping).
    """

    def __init__(self, base_url: str | None = None, *, token: str | None = None,
                 token_file: str | os.PathLike[str] | None = None,
                 policy: PollPolicy = DEFAULT_POLICY, rate: float | None = DEFAULT_RATE,
                 limiter: RateLimiter | None = None,
                 transport: httpx.BaseTransport | None = None, http: httpx.Client | None = None,
                 verify: bool = True, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        super().__init__(base_url, token, token_file, policy, rate, limiter, verify, clock, rng)
        self._owns_http = http is None
        self._http = http or httpx.Client(transport=transport)
        self._sleep = sleep

    def submit(self, submission: Submission) -> TaskInfo:
        """Send the task; returns its first state (final already when ``sync=True`` worked)."""
        return self._drive(self._core.submit(submission))

    def get(self, task_id: str) -> TaskInfo:
        """The task's current state (``GET /task/{task_id}``)."""
        return self._drive(self._core.get(task_id))

    def wait(self, task: TaskInfo | str) -> TaskInfo:
        """Poll until done; raises ``TaskFailed`` (negative state) or ``TaskTimeout``."""
        if isinstance(task, str):
            task = self.get(task)
        return self._drive(self._core.wait(task))

    def download(self, task: TaskInfo) -> TaskResult:
        """The finished task's image bytes, fetched at once (URLs expire after about 1 h)."""
        return self._drive(self._core.download(task))

    def remove(self, submission: Submission) -> TaskResult:
        """Submit, wait, download and verify; resubmits after states -2 and -8."""
        return self._drive(self._core.remove(submission))

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def _drive(self, flow: Flow[T]) -> T:
        reply: Reply = None
        while True:
            try:
                step = flow.send(reply)
            except StopIteration as stop:
                return stop.value
            reply = self._step(step)

    def _step(self, step: Step) -> Reply:
        if isinstance(step, Sleep):
            self._sleep(step.seconds)
        elif isinstance(step, Hold):
            self.limiter.hold(self._clock() + step.seconds)
        else:
            if step.limited:
                wait = self.limiter.reserve(self._clock())
                if wait > 0:
                    self._sleep(wait)
            return self._send(step)
        return None

    def _send(self, step: Send) -> Answer | httpx.RequestError:
        try:
            response = self._http.send(step.request, stream=True,
                                       follow_redirects=step.follow_redirects)
            try:
                body = Capped(step.max_bytes)
                for chunk in response.iter_bytes():
                    if body.add(chunk):
                        break
                return body.answer(response)
            finally:
                response.close()
        except httpx.RequestError as exc:
            return exc


class AsyncClient(_Base):
    """The same client for anyio / asyncio code; ``remove_many`` runs a bounded batch.

    Takes the arguments of ``Client``, with ``transport`` an ``httpx.AsyncBaseTransport``
    (``httpx.ASGITransport(app)`` talks to an in-process server), ``http`` an
    ``httpx.AsyncClient`` and ``sleep`` an async function.
    """

    def __init__(self, base_url: str | None = None, *, token: str | None = None,
                 token_file: str | os.PathLike[str] | None = None,
                 policy: PollPolicy = DEFAULT_POLICY, rate: float | None = DEFAULT_RATE,
                 limiter: RateLimiter | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 http: httpx.AsyncClient | None = None, verify: bool = True,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
                 rng: random.Random | None = None) -> None:
        super().__init__(base_url, token, token_file, policy, rate, limiter, verify, clock, rng)
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(transport=transport)
        self._sleep = sleep

    async def submit(self, submission: Submission) -> TaskInfo:
        """See ``Client.submit``."""
        return await self._drive(self._core.submit(submission))

    async def get(self, task_id: str) -> TaskInfo:
        """See ``Client.get``."""
        return await self._drive(self._core.get(task_id))

    async def wait(self, task: TaskInfo | str) -> TaskInfo:
        """See ``Client.wait``."""
        if isinstance(task, str):
            task = await self.get(task)
        return await self._drive(self._core.wait(task))

    async def download(self, task: TaskInfo) -> TaskResult:
        """See ``Client.download``."""
        return await self._drive(self._core.download(task))

    async def remove(self, submission: Submission) -> TaskResult:
        """See ``Client.remove``."""
        return await self._drive(self._core.remove(submission))

    async def remove_many(self, submissions: Iterable[Submission], *,
                          concurrency: int = 8) -> list[TaskResult | APIError]:
        """``remove`` for many tasks, at most ``concurrency`` in flight, results in order.

        A task that fails is returned as its ``APIError`` (failures are data in a batch); the
        shared rate limiter paces all of them together.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        items: Sequence[Submission] = list(submissions)
        results: list[TaskResult | APIError | None] = [None] * len(items)
        slots = anyio.Semaphore(concurrency)

        async def one(index: int, submission: Submission) -> None:
            try:
                results[index] = await self.remove(submission)
            except APIError as exc:
                results[index] = exc
            finally:
                slots.release()

        async with anyio.create_task_group() as group:
            for index, submission in enumerate(items):
                await slots.acquire()  # the slot is released by the task it starts
                group.start_soon(one, index, submission)
        done = [result for result in results if result is not None]
        assert len(done) == len(items)
        return done

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, value: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()

    async def _drive(self, flow: Flow[T]) -> T:
        reply: Reply = None
        while True:
            try:
                step = flow.send(reply)
            except StopIteration as stop:
                return stop.value
            reply = await self._step(step)

    async def _step(self, step: Step) -> Reply:
        if isinstance(step, Sleep):
            await self._sleep(step.seconds)
        elif isinstance(step, Hold):
            self.limiter.hold(self._clock() + step.seconds)
        else:
            if step.limited:
                wait = self.limiter.reserve(self._clock())
                if wait > 0:
                    await self._sleep(wait)
            return await self._send(step)
        return None

    async def _send(self, step: Send) -> Answer | httpx.RequestError:
        try:
            response = await self._http.send(step.request, stream=True,
                                             follow_redirects=step.follow_redirects)
            try:
                body = Capped(step.max_bytes)
                async for chunk in response.aiter_bytes():
                    if body.add(chunk):
                        break
                return body.answer(response)
            finally:
                await response.aclose()
        except httpx.RequestError as exc:
            return exc
