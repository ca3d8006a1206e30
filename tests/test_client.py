"""Client and AsyncClient against scripted answers (httpx.MockTransport) and a fake clock.

Every scenario runs on both clients: they share one protocol core, so they must behave the
same. Nothing here sleeps for real except the rate-limiter test, which measures real spacing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from itertools import pairwise
from typing import Any

import anyio
import httpx
import pytest

from clearmark import (
    APIError,
    APIStatusError,
    AsyncClient,
    Client,
    PollPolicy,
    RateLimiter,
    Submission,
    TaskFailed,
    TaskTimeout,
)

from serving import FakeTime, Script, done, error, marked, png, task

IMAGE = png(marked()[0])  # 400 x 300
RESULT = png(marked("chelsea")[0])  # another 400 x 300 image
POLICY = PollPolicy(interval=1.0, backoff=1.5, max_interval=2.0, deadline=20.0, retries=3,
                    retry_base=0.4, resubmits=2)
SECRET = "sk-test-very-secret-42"
Runner = Callable[..., Any]


def _sync(script: Script, clock: FakeTime, method: str, *args: Any, **options: Any) -> Any:
    options.setdefault("rate", None)
    with Client("https://api.example", token=SECRET, transport=script.transport,
                policy=options.pop("policy", POLICY), clock=clock.clock, sleep=clock.sleep,
                **options) as client:
        return getattr(client, method)(*args)


def _async(script: Script, clock: FakeTime, method: str, *args: Any, **options: Any) -> Any:
    options.setdefault("rate", None)

    async def main() -> Any:
        async with AsyncClient("https://api.example", token=SECRET, transport=script.transport,
                               policy=options.pop("policy", POLICY), clock=clock.clock,
                               sleep=clock.asleep, **options) as client:
            return await getattr(client, method)(*args)

    return anyio.run(main)


both = pytest.mark.parametrize("call", [_sync, _async], ids=["sync", "async"])


def _submission(**fields: Any) -> Submission:
    return Submission(image_file=IMAGE, **fields)


@both
def test_queued_then_processing_then_done(call: Runner) -> None:
    script = Script([task(0), task(0), task(4), done()], RESULT)
    clock = FakeTime()
    result = call(script, clock, "remove", _submission(rectangles=[{"x": 1, "y": 2, "width": 3,
                                                                    "height": 4}]))
    assert result.data == RESULT and (result.width, result.height) == (400, 300)
    assert script.calls == ["POST", "GET", "GET", "GET", "DL"]
    assert clock.sleeps == [1.0, 1.5, 2.0]  # the poll policy's backoff, capped
    form = script.requests[0].read()
    assert b'name="rectangles"\r\n\r\n[{"x":1,"y":2,"width":3,"height":4}]' in form


@both
def test_429_honours_retry_after_for_the_whole_client(call: Runner) -> None:
    script = Script([error(429, "too many", **{"Retry-After": "3"}), done()], RESULT)
    clock = FakeTime()
    call(script, clock, "remove", _submission(sync=True))
    assert script.calls == ["POST", "POST", "DL"]
    assert 3.0 <= sum(clock.sleeps) <= 3.5  # the limiter held the next request back


@both
def test_500_and_network_errors_are_retried_with_backoff(call: Runner) -> None:
    script = Script([error(500, "boom"), httpx.ConnectError("refused"), task(0),
                     httpx.ReadTimeout("slow"), done()], RESULT)
    clock = FakeTime()
    assert call(script, clock, "remove", _submission()).data == RESULT
    assert script.calls == ["POST", "POST", "POST", "GET", "GET", "DL"]
    retry_waits = [clock.sleeps[0], clock.sleeps[1], clock.sleeps[3]]
    assert 0.2 <= retry_waits[0] <= 0.4 and 0.4 <= retry_waits[1] <= 0.8


@both
def test_retries_end_in_the_last_error(call: Runner) -> None:
    script = Script([error(503, "down")] * 4)
    with pytest.raises(APIStatusError) as info:
        call(script, FakeTime(), "submit", _submission())
    assert info.value.status == 503 and len(script.requests) == 4  # 1 + policy.retries


@both
@pytest.mark.parametrize("status", [400, 401, 404, 413])
def test_client_errors_fail_at_once(call: Runner, status: int) -> None:
    script = Script([error(status, f"nope {status}")])
    with pytest.raises(APIStatusError) as info:
        call(script, FakeTime(), "remove", _submission())
    assert info.value.status == status and f"nope {status}" in info.value.message
    assert len(script.requests) == 1


@both
@pytest.mark.parametrize("state", [-2, -8])
def test_states_minus_2_and_8_resubmit(call: Runner, state: int) -> None:
    script = Script([task(state, "a", err_info="x"), task(0, "b"), done("b")], RESULT)
    result = call(script, FakeTime(), "remove", _submission())
    assert result.task.task_id == "b" and result.attempts == 2
    assert script.calls == ["POST", "POST", "GET", "DL"]


@both
def test_resubmits_are_bounded(call: Runner) -> None:
    script = Script([task(-8, f"t{i}", err_info="timed out") for i in range(3)])
    with pytest.raises(TaskFailed) as info:
        call(script, FakeTime(), "remove", _submission())
    assert info.value.state == -8 and script.calls == ["POST"] * 3


@both
@pytest.mark.parametrize(("state", "reason"), [(-1, "task failed"), (-3, "cannot fetch"),
                                               (-5, "over 15 MB"), (-7, "corrupt image")])
def test_failed_states_raise_task_failed_with_the_reason(call: Runner, state: int,
                                                         reason: str) -> None:
    script = Script([task(0, "t9"), task(state, "t9", err_info=reason)])
    with pytest.raises(TaskFailed) as info:
        call(script, FakeTime(), "remove", _submission())
    assert (info.value.task_id, info.value.state, info.value.err_info) == ("t9", state, reason)
    assert script.calls == ["POST", "GET"]  # never resubmitted


@both
def test_a_task_that_never_ends_times_out_at_the_deadline(call: Runner) -> None:
    script = Script([task(0)] + [task(4)] * 30)
    clock = FakeTime()
    with pytest.raises(TaskTimeout) as info:
        call(script, clock, "remove", _submission())
    assert info.value.seconds == 20.0 and sum(clock.sleeps) <= 20.0


@both
def test_results_as_file_field_and_as_base64(call: Runner) -> None:
    import base64

    as_file = Script([task(1, file="https://cdn.example/out/f.png")], RESULT)
    assert call(as_file, FakeTime(), "remove", _submission(sync=True)).data == RESULT
    inline = Script([task(1, image=base64.b64encode(RESULT).decode(), return_type=2)])
    assert call(inline, FakeTime(), "remove", _submission(base64_result=True)).data == RESULT
    assert inline.calls == ["POST"] and b'name="return_type"' in inline.requests[0].read()


@both
def test_a_result_of_another_size_is_refused(call: Runner) -> None:
    script = Script([done()], png(marked(width=200, height=150)[0]))
    with pytest.raises(APIError, match="200x150"):
        call(script, FakeTime(), "remove", _submission(sync=True))


@both
def test_wait_and_get_by_task_id(call: Runner) -> None:
    script = Script([task(4, "z"), task(1, "z", image="https://cdn.example/out/z.png")])
    info = call(script, FakeTime(), "wait", "z")
    assert info.done and str(script.requests[0].url) == "https://api.example/task/z"


@both
def test_the_token_never_leaks(call: Runner, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log every request at DEBUG
    echo = f"invalid token {SECRET}"
    script = Script([error(500, echo), task(0), task(-1, err_info=echo)], RESULT)
    with pytest.raises(TaskFailed) as info:
        call(script, FakeTime(), "remove", _submission(callback_url="https://cb.example/x"))
    assert SECRET not in str(info.value) and "***" in str(info.value)
    assert all(r.headers["authorization"] == f"Bearer {SECRET}" for r in script.requests)
    assert caplog.records and not any(SECRET in r.getMessage() for r in caplog.records)
    with Client("https://api.example", token=SECRET) as client:
        assert SECRET not in repr(client)
    with pytest.raises(APIStatusError) as status:
        call(Script([error(401, echo)]), FakeTime(), "submit", _submission())
    assert SECRET not in str(status.value) and SECRET not in status.value.message
    network = Script([httpx.ConnectError(f"refused {SECRET}")] * 4)
    with pytest.raises(APIError) as failure:
        call(network, FakeTime(), "submit", _submission())
    assert SECRET not in str(failure.value)


def test_the_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEARMARK_TOKEN", "from-env-1")
    script = Script([done()], RESULT)
    with Client("https://api.example", transport=script.transport) as client:
        client.remove(_submission(sync=True))
    assert script.requests[0].headers["authorization"] == "Bearer from-env-1"


def test_remove_many_keeps_order_bounds_concurrency_and_reports_failures() -> None:
    running, peak = 0, 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal running, peak
        if "/out/" in request.url.path:
            return httpx.Response(200, content=RESULT)
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.01)
        running -= 1
        image = request.read()
        if b"BAD" in image:
            return error(400, "bad image")
        index = image.split(b"#")[-1].split(b"\r\n")[0].decode()
        return done(f"t{index}", f"https://cdn.example/out/{index}.png")

    submissions = [Submission(image_url=f"https://x.example/{'BAD' if i == 3 else 'ok'}#{i}",
                              sync=True) for i in range(12)]

    async def main() -> list[Any]:
        async with AsyncClient("https://api.example", token=SECRET, rate=None,
                               transport=httpx.MockTransport(handler)) as client:
            return await client.remove_many(submissions, concurrency=3)

    results = anyio.run(main)
    assert peak == 3
    assert isinstance(results[3], APIStatusError) and results[3].status == 400
    assert [r.task.task_id for i, r in enumerate(results) if i != 3] == \
        [f"t{i}" for i in range(12) if i != 3]


class _Recording(RateLimiter):
    """A limiter that remembers the slot it booked for each request."""

    def __init__(self, rate: float) -> None:
        super().__init__(rate)
        self.slots: list[float] = []

    def reserve(self, now: float) -> float:
        wait = super().reserve(now)
        self.slots.append(now + wait)
        return wait


def test_one_rate_limiter_paces_every_task_in_flight() -> None:
    sent: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if "/out/" in request.url.path:
            return httpx.Response(200, content=RESULT)
        sent.append(time.monotonic())
        return done()

    limiter = _Recording(40.0)  # shared by two clients, like two jobs on one key

    async def main() -> None:
        clients = [AsyncClient("https://api.example", token=SECRET, limiter=limiter,
                               transport=httpx.MockTransport(handler)) for _ in range(2)]
        async with anyio.create_task_group() as group:
            for client in clients:
                group.start_soon(partial(client.remove_many, [_submission(sync=True)] * 5,
                                         concurrency=5))
        for client in clients:
            await client.aclose()

    anyio.run(main)
    slots = sorted(limiter.slots)
    assert len(sent) == len(slots) == 10  # downloads are not paced: they are not API calls
    assert min(b - a for a, b in pairwise(slots)) >= 1 / 40 - 1e-9
    # no request went out before its slot: the k-th send is not earlier than the k-th slot
    assert all(send >= slot - 1e-3 for send, slot in zip(sorted(sent), slots, strict=True))
