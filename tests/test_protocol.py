"""The protocol core without any I/O: forms, answers, and the flows' decisions step by step."""

from __future__ import annotations

import json
import pickle
import random
from email.utils import formatdate
from pathlib import Path

import httpx
import numpy as np
import pytest

from clearmark import APIError, APIStatusError, PollPolicy, Region, Submission, TaskFailed
from clearmark._client import RateLimiter
from clearmark._protocol import (
    Answer,
    Core,
    Hold,
    Secret,
    Send,
    Sleep,
    TaskInfo,
    check_result,
    decode_result,
    form_fields,
    parse_task,
    resolve_token,
    retry_after,
    status_error,
)

from serving import marked, png

IMAGE = png(marked()[0])  # 400 x 300
DOC_ANSWER = {"status": 200, "data": {
    "task_id": "3b950563-e53f-4036-a581-5ac04d0829b3", "state": 1, "state_detail": "Complete",
    "progress": 100, "err_info": "", "image": "https://x.example/tasks/output/a-image.png",
    "image_width": 864, "image_height": 1152, "created_at": 1742670626,
    "processed_at": 1742670626, "completed_at": 1742670627, "time_elapsed": 384.55,
    "download_time": 488, "return_type": 1, "output_type": 2, "result_type": "object",
    "type": "auto", "foreground_rect": {"x": 133, "y": 110, "width": 604, "height": 952}}}


def answer(status: int = 200, payload: object = None, **headers: str) -> Answer:
    content = json.dumps(payload).encode() if payload is not None else b""
    return Answer(status, httpx.Headers(headers), content)


def state(value: int, task_id: str = "t", **extra: object) -> Answer:
    return answer(200, {"status": 200, "data": {"task_id": task_id, "state": value, **extra}})


# -- configuration values ---------------------------------------------------------------------


def test_poll_policy_is_frozen_validated_and_backs_off() -> None:
    policy = PollPolicy(interval=1.0, backoff=2.0, max_interval=3.0)
    assert [policy.poll_delay(n) for n in range(4)] == [1.0, 2.0, 3.0, 3.0]
    with pytest.raises(AttributeError):
        policy.interval = 5  # type: ignore[misc]
    for bad in ({"interval": 0}, {"backoff": 0.5}, {"retries": -1}, {"deadline": -1}):
        with pytest.raises(ValueError):
            PollPolicy(**bad)  # type: ignore[arg-type]
    assert pickle.loads(pickle.dumps(policy)) == policy


def test_retry_delays_grow_with_jitter_and_stay_under_the_cap() -> None:
    policy = PollPolicy(retry_base=1.0, retry_cap=8.0)
    rng = random.Random(1)
    for attempt, ceiling in enumerate([1, 2, 4, 8, 8]):
        delays = {policy.retry_delay(attempt, rng) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 40  # jittered, so clients do not retry in lockstep


def test_secret_never_shows_itself() -> None:
    secret = Secret("sk-live-123")
    assert "sk-live" not in repr(secret) + str(secret) + f"{secret}"
    assert secret.redact("bad token sk-live-123 given") == "bad token *** given"
    assert pickle.loads(pickle.dumps(secret)).reveal() == "sk-live-123"
    for bad in ("", "  ", "a\nb", "a\rb"):
        with pytest.raises(ValueError) as info:
            Secret(bad)
        assert bad.strip() == "" or bad not in str(info.value)


def test_token_comes_from_argument_then_file_then_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("\n  from-file  \nsecond\n")
    env = {"CLEARMARK_TOKEN": "from-env"}
    assert resolve_token("from-arg", token_file, env).reveal() == "from-arg"  # type: ignore
    assert resolve_token(None, token_file, env).reveal() == "from-file"  # type: ignore
    assert resolve_token(None, None, env).reveal() == "from-env"  # type: ignore
    assert resolve_token(None, None, {}) is None
    token_file.write_text("\n\n")
    with pytest.raises(ValueError, match="is empty"):
        resolve_token(None, token_file, env)
    with pytest.raises(ValueError, match="cannot read") as info:
        resolve_token(None, tmp_path / "missing", env)
    assert "from-env" not in str(info.value)


# -- submissions ------------------------------------------------------------------------------


def test_submission_needs_exactly_one_image_and_at_most_one_mask_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Submission()
    with pytest.raises(ValueError, match="exactly one"):
        Submission(image_file=IMAGE, image_url="https://x.example/a.png")
    with pytest.raises(ValueError, match="at most one"):
        Submission(image_file=IMAGE, mask_file=IMAGE, rectangles=[])
    with pytest.raises(ValueError, match="http"):
        Submission(image_url="file:///etc/passwd")
    with pytest.raises(ValueError, match="empty"):
        Submission(image_file=b"")


@pytest.mark.parametrize(("rectangles", "problem"), [
    ([{"x": 0, "y": 0, "width": 10, "height": 10}] * 51, "at most 50"),
    ([{"x": 0.5, "y": 0, "width": 10, "height": 10}], r"rectangles\[0\]\.x"),
    ([{"x": 0, "y": 0, "width": 0, "height": 10}], r"rectangles\[0\]\.width"),
    ([{"x": -1, "y": 0, "width": 5, "height": 10}], r"rectangles\[0\]\.x"),
    ([{"x": 0, "y": 0, "width": 10}], "missing key"),
    ([{"x": 390, "y": 0, "width": 20, "height": 10}], "outside the image width 400"),
    ([{"x": 0, "y": 295, "width": 20, "height": 10}], "outside the image height 300"),
    ([{"x": True, "y": 0, "width": 1, "height": 1}], r"rectangles\[0\]\.x"),
])
def test_rectangles_are_checked_before_anything_is_sent(rectangles: list[dict[str, object]],
                                                         problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Submission(image_file=IMAGE, rectangles=rectangles)


def test_rectangles_accept_regions_and_numpy_ints_and_go_as_a_json_string() -> None:
    rectangles = [Region(1, 2, 3, 4), {"x": np.int64(5), "y": 6, "width": 7, "height": 8}]
    submission = Submission(image_file=IMAGE, rectangles=rectangles, sync=True)
    assert submission.rectangles == ('[{"x":1,"y":2,"width":3,"height":4},'
                                     '{"x":5,"y":6,"width":7,"height":8}]')
    data, files = form_fields(submission)
    assert data == {"sync": "1", "rectangles": submission.rectangles}
    assert files["image_file"][0] == "image.png" and files["image_file"][2] == "image/png"
    assert "bytes>" in repr(submission) and "\\x89PNG" not in repr(submission)


def test_an_image_url_alone_still_goes_as_multipart_like_the_published_examples() -> None:
    core = Core("https://api.example", Secret("t"), PollPolicy(), clock=lambda: 0.0,
                wall=lambda: 0.0, rng=random.Random(0))
    request = core.submit_request(Submission(image_url="https://x.example/a.png"))
    assert request.headers["content-type"].startswith("multipart/form-data")
    content = request.read()
    assert b'name="image_url"\r\n\r\nhttps://x.example/a.png' in content
    assert b"filename" not in content and b'name="sync"\r\n\r\n0' in content


# -- answers ----------------------------------------------------------------------------------


def test_the_documented_answer_parses() -> None:
    task = parse_task(answer(200, DOC_ANSWER), None)
    assert task.task_id == "3b950563-e53f-4036-a581-5ac04d0829b3" and task.done
    assert task.result == DOC_ANSWER["data"]["image"]  # type: ignore[index]
    assert (task.image_width, task.image_height) == (864, 1152)


@pytest.mark.parametrize("content", [b"<html>", b"[]", b'{"status":200}',
                                     b'{"data":{"task_id":"a","state":"1"}}'])
def test_garbled_answers_are_api_errors(content: bytes) -> None:
    with pytest.raises(APIError):
        parse_task(Answer(200, httpx.Headers(), content), None)


def test_http_errors_carry_status_and_message_with_the_token_scrubbed() -> None:
    secret = Secret("sk-9")
    error = status_error(answer(401, {"status": 401, "message": "bad token sk-9"}), secret)
    assert isinstance(error, APIStatusError) and error.status == 401
    assert "sk-9" not in str(error) and "bad token ***" in str(error)
    in_body = status_error(answer(200, {"status": 429, "message": "slow down"}), secret)
    assert in_body is not None and in_body.status == 429
    assert status_error(answer(502), secret).message == "Bad Gateway"  # type: ignore[union-attr]
    assert status_error(answer(200, DOC_ANSWER), secret) is None


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after(httpx.Headers({"Retry-After": "3"}), 0) == 3.0
    assert retry_after(httpx.Headers({"Retry-After": "0.5"}), 0) == 0.5
    now = 1_700_000_000.0
    date = formatdate(now + 7, usegmt=True)
    assert retry_after(httpx.Headers({"Retry-After": date}), now) == pytest.approx(7, abs=1)
    assert retry_after(httpx.Headers({"Retry-After": "soon"}), now) is None
    assert retry_after(httpx.Headers(), now) is None


def test_results_come_as_url_file_or_base64() -> None:
    import base64

    as_url = TaskInfo("t", 1, image="https://x.example/r.png")
    as_file = TaskInfo("t", 1, file="https://x.example/r.png")
    inline = TaskInfo("t", 1, image=base64.b64encode(IMAGE).decode(), return_type=2)
    data_uri = TaskInfo("t", 1, image="data:image/png;base64," + base64.b64encode(IMAGE).decode())
    assert decode_result(as_url) is None and as_file.result == as_url.result
    assert decode_result(inline) == IMAGE and decode_result(data_uri) == IMAGE
    with pytest.raises(APIError, match="base64"):
        decode_result(TaskInfo("t", 1, image="@@@", return_type=2))


def test_results_must_decode_at_the_inputs_size() -> None:
    task = TaskInfo("t", 1)
    assert check_result(task, IMAGE, frozenset({(400, 300)}), full=True) == (400, 300)
    with pytest.raises(APIError, match="400x300"):
        check_result(task, IMAGE, frozenset({(800, 600)}), full=False)
    with pytest.raises(APIError, match="not an image"):
        check_result(task, IMAGE[:200], frozenset(), full=True)
    sized = TaskInfo("t", 1, image_width=10, image_height=10)
    with pytest.raises(APIError):  # no input size known: the answer's own size counts
        check_result(sized, IMAGE, frozenset(), full=False)


# -- flows, driven by hand ----------------------------------------------------------------------


STEADY = PollPolicy(interval=1.0, backoff=1.0)


def _core(policy: PollPolicy = STEADY) -> Core:
    return Core("https://api.example/v1/", Secret("sk-secret"), policy, clock=lambda: 0.0,
                wall=lambda: 0.0, rng=random.Random(0))


def test_a_task_flow_is_plain_steps_queued_processing_done() -> None:
    flow = _core().remove(Submission(image_file=IMAGE, rectangles=[Region(0, 0, 5, 5)]))
    step = next(flow)
    assert isinstance(step, Send) and step.request.method == "POST" and step.limited
    assert str(step.request.url) == "https://api.example/v1/task/pic/watermark"
    assert step.request.headers["authorization"] == "Bearer sk-secret"
    assert flow.send(state(0)) == Sleep(1.0)
    poll = flow.send(None)
    assert isinstance(poll, Send) and str(poll.request.url).endswith("/v1/task/t")
    assert flow.send(state(4)) == Sleep(1.0)
    flow.send(None)
    download = flow.send(state(1, image="https://cdn.example/r.png", image_width=400,
                               image_height=300))
    assert isinstance(download, Send) and not download.limited
    assert "authorization" not in download.request.headers  # the token stays with the API
    with pytest.raises(StopIteration) as stop:
        flow.send(Answer(200, httpx.Headers(), IMAGE))
    result = stop.value.value
    assert result.data == IMAGE and (result.width, result.height) == (400, 300)


def test_a_429_holds_every_task_for_retry_after_then_retries() -> None:
    flow = _core().submit(Submission(image_file=IMAGE))
    next(flow)
    hold = flow.send(answer(429, {"status": 429, "message": "slow"}, **{"Retry-After": "3"}))
    assert isinstance(hold, Hold) and 3 <= hold.seconds <= 3.5
    again = flow.send(None)
    assert isinstance(again, Send) and again.request.method == "POST"


def test_network_errors_and_5xx_back_off_then_give_up() -> None:
    flow = _core(PollPolicy(retries=2)).submit(Submission(image_file=IMAGE))
    next(flow)
    assert isinstance(flow.send(httpx.ConnectError("refused")), Sleep)
    flow.send(None)
    assert isinstance(flow.send(answer(503)), Sleep)
    flow.send(None)
    with pytest.raises(APIStatusError) as info:
        flow.send(answer(500, {"status": 500, "message": "boom"}))
    assert info.value.status == 500


@pytest.mark.parametrize("status", [400, 401, 404, 413])
def test_client_errors_are_never_retried(status: int) -> None:
    flow = _core().submit(Submission(image_file=IMAGE))
    next(flow)
    with pytest.raises(APIStatusError) as info:
        flow.send(answer(status, {"status": status, "message": "no"}))
    assert info.value.status == status


def test_state_minus_8_resubmits_and_minus_7_fails() -> None:
    flow = _core().remove(Submission(image_file=IMAGE))
    next(flow)
    assert isinstance(flow.send(state(-8, err_info="timed out")), Sleep)
    assert flow.send(None).request.method == "POST"  # type: ignore[union-attr]
    with pytest.raises(TaskFailed) as info:
        flow.send(state(-7, task_id="t2", err_info="corrupt"))
    assert (info.value.task_id, info.value.state, info.value.err_info) == ("t2", -7, "corrupt")


# -- the rate limiter ---------------------------------------------------------------------------


def test_the_rate_limiter_spaces_requests_and_honours_holds() -> None:
    limiter = RateLimiter(2.0)
    assert [limiter.reserve(0.0) for _ in range(4)] == [0.0, 0.5, 1.0, 1.5]
    assert limiter.reserve(10.0) == 0.0  # idle time is not saved up beyond the burst
    limiter.hold(15.0)
    assert limiter.reserve(11.0) == 4.0
    burst = RateLimiter(10.0, burst=3)
    assert [round(burst.reserve(0.0), 3) for _ in range(5)] == [0.0, 0.0, 0.0, 0.1, 0.2]
    assert RateLimiter(None).reserve(0.0) == 0.0
    with pytest.raises(ValueError):
        RateLimiter(0)
