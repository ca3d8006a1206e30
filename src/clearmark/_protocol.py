"""The removal endpoint's protocol, written once and without I/O.

``Core`` builds requests and reads answers. What a task needs next (send this request, sleep,
hold the shared rate limiter back, poll again, download, resubmit, give up) is decided by its
*flows*: generators that yield steps and receive the outcome of each ``Send`` (an ``Answer``,
or the ``httpx.RequestError`` the transport raised). ``Client`` and ``AsyncClient`` in
``_client.py`` are the only loops that drive them, one with ``time.sleep`` and one with
``anyio.sleep``; this is httpx's auth-flow pattern (see docs/style.md, section 2).

The protocol itself is docs/removal-api.md. Decisions taken here:
- 429 and 5xx answers, network errors and unreadable answers are retried ``policy.retries``
  times with exponential backoff and jitter; a 429 holds back every task sharing the rate
  limiter for ``Retry-After`` seconds. 400, 401, 404 and 413 are never retried.
- States -2 and -8 resubmit the task (``policy.resubmits`` times); other negative states raise
  ``TaskFailed``; a task still pending at ``policy.deadline`` raises ``TaskTimeout``.
- Result downloads never carry the token: a result URL may live on another host.
- Every text that comes from the server is scrubbed of the token before it reaches an
  exception or a log line, and cut short.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import math
import os
import random
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeGuard, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import httpx
import numpy as np
from PIL import Image, UnidentifiedImageError

from ._errors import APIError, APIStatusError, ImageError, TaskFailed, TaskTimeout
from ._imageio import _sniff_format, decode_image, read_dimensions
from ._regions import MAX_RECTANGLES, Region, parse_rectangles

log = logging.getLogger("clearmark.client")

DEFAULT_BASE_URL = "https://api.gpt.ge"
SUBMIT_PATH = "/task/pic/watermark"
TASK_PATH = "/task/{task_id}"
MAX_UPLOAD = 15 * 1024 * 1024
"""The endpoint refuses files over 15 MB (HTTP 413, or state -5 for a fetched image)."""

DONE = 1
RESUBMIT = frozenset({-2, -8})
STATE_DETAIL = {
    1: "Complete", 0: "Queued", 2: "Preparing", 3: "Waiting", 4: "Processing",
    -1: "Failed", -2: "Result upload failed", -3: "Image download failed",
    -5: "Image too large", -7: "Invalid image", -8: "Processing timed out",
}
NEVER_RETRY = frozenset({400, 401, 404, 413})
_RESULT_BYTES = 64 << 20  # a cleaned image: 15 MB in, PNG out, with room
_ANSWER_BYTES = _RESULT_BYTES * 4 // 3 + (1 << 20)  # JSON, possibly with the image in base64
_SHOWN = 300  # characters of server-provided text kept in messages
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif",
         "BMP": "image/bmp", "TIFF": "image/tiff"}
_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp",
           "TIFF": ".tif"}

T = TypeVar("T")


# -- configuration values -------------------------------------------------------------------


@dataclass(frozen=True)
class PollPolicy:
    """How long and how often a client waits, polls and retries (all times in seconds).

    interval, backoff, max_interval : the first wait between polls, its growth factor, its cap
        (the endpoint asks for a poll every 1-2 s).
    deadline : a task still pending this long after its submission raises ``TaskTimeout``
        (the upstream caps processing at 30 s; 60 s leaves room for queueing).
    retries : extra attempts of one request after 429, 5xx, a network error or a garbled answer.
    retry_base, retry_cap : the first retry wait (doubled per attempt, with jitter) and its cap;
        a ``Retry-After`` above ``retry_cap`` is not waited for: the 429 is raised.
    resubmits : new submissions after a task ends in state -2 or -8.
    timeout : one request's network timeout; a ``sync=1`` submission also gets ``deadline``.
    """

    interval: float = 1.5
    backoff: float = 1.25
    max_interval: float = 5.0
    deadline: float = 60.0
    retries: int = 4
    retry_base: float = 0.5
    retry_cap: float = 30.0
    resubmits: int = 2
    timeout: float = 30.0

    def __post_init__(self) -> None:
        for name in ("interval", "max_interval", "deadline", "retry_base", "retry_cap",
                     "timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PollPolicy.{name} must be > 0")
        if self.backoff < 1 or self.retries < 0 or self.resubmits < 0:
            raise ValueError("PollPolicy: backoff must be >= 1, retries and resubmits >= 0")

    def poll_delay(self, polls: int) -> float:
        """The wait before poll number ``polls`` (0-based)."""
        return min(self.max_interval, self.interval * self.backoff ** polls)

    def retry_delay(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random."""
        ceiling = min(self.retry_cap, self.retry_base * 2 ** attempt)
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


DEFAULT_POLICY = PollPolicy()


class Secret:
    """An API token that never shows itself: not in repr, str, pickles' reprs or messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        value = value.strip() if isinstance(value, str) else value
        if not isinstance(value, str) or not value:
            raise ValueError("the API token is empty")
        if any(ch in value for ch in "\r\n\x00") or not value.isprintable():
            raise ValueError("the API token contains control characters")
        self._value = value

    def reveal(self) -> str:
        """The token itself, for the one header that needs it."""
        return self._value

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the token replaced, cut to a readable length."""
        text = text.replace(self._value, "***")
        return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."

    def __getstate__(self) -> str:
        return self._value

    def __setstate__(self, state: str) -> None:
        self._value = state

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def resolve_token(token: str | None = None, token_file: str | os.PathLike[str] | None = None,
                  environ: Mapping[str, str] | None = None) -> Secret | None:
    """The token from the argument, else the file's first non-empty line, else CLEARMARK_TOKEN.

    Raises ValueError naming the file (never its content) when it cannot be read or is empty.
    """
    if token is not None:
        return Secret(token)
    if token_file is not None:
        return Secret(_first_line(Path(token_file)))
    value = (os.environ if environ is None else environ).get("CLEARMARK_TOKEN", "").strip()
    return Secret(value) if value else None


def _first_line(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the token file {path}: {type(exc).__name__}") from None
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    raise ValueError(f"the token file {path} is empty")


# -- what is sent --------------------------------------------------------------------------


@dataclass(frozen=True, init=False, repr=False)
class Submission:
    """One removal task: an image source, at most one mask source, and options.

    image_file / mask_file : encoded bytes, or a path to read them from.
    rectangles : regions or ``{"x","y","width","height"}`` dicts; validated here (at most 50,
        integers, non-empty, inside the image when its size is known) and kept as the JSON
        string the endpoint wants.
    sync : ask the server to answer when the task is done (it may still answer earlier; the
        client then polls).
    base64_result : ask for the result inline (``return_type=2``) instead of as a URL.
    """

    image_file: bytes | None = field(default=None, repr=False)
    image_url: str | None = None
    mask_file: bytes | None = field(default=None, repr=False)
    mask_url: str | None = None
    rectangles: str | None = None
    sync: bool = False
    callback_url: str | None = None
    base64_result: bool = False

    def __init__(self, *, image_file: bytes | str | os.PathLike[str] | None = None,
                 image_url: str | None = None,
                 mask_file: bytes | str | os.PathLike[str] | None = None,
                 mask_url: str | None = None,
                 rectangles: Iterable[Mapping[str, Any] | Region] | str | None = None,
                 sync: bool = False, callback_url: str | None = None,
                 base64_result: bool = False) -> None:
        image = _read_source(image_file, "image_file")
        mask = _read_source(mask_file, "mask_file")
        _check_sources(image, image_url, mask, mask_url, rectangles)
        for name, url in (("image_url", image_url), ("mask_url", mask_url),
                          ("callback_url", callback_url)):
            if url is not None:
                _check_url(url, name)
        text = None
        if rectangles is not None:
            text = rectangles_field(rectangles, image_size(image) if image else None)
        values = {"image_file": image, "image_url": image_url, "mask_file": mask,
                  "mask_url": mask_url, "rectangles": text, "sync": bool(sync),
                  "callback_url": callback_url, "base64_result": bool(base64_result)}
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        parts = [f"{name}={getattr(self, name)!r}" for name in
                 ("image_url", "mask_url", "callback_url") if getattr(self, name)]
        parts += [f"{name}=<{len(data)} bytes>" for name, data in
                  (("image_file", self.image_file), ("mask_file", self.mask_file)) if data]
        if self.rectangles:
            parts.append(f"rectangles=<{len(json.loads(self.rectangles))}>")
        return f"Submission({', '.join(parts)}, sync={self.sync})"

    def expected_sizes(self) -> frozenset[tuple[int, int]]:
        """Result sizes that match the input: its size, or transposed when EXIF rotates it."""
        size = image_size(self.image_file) if self.image_file is not None else None
        if size is None:
            return frozenset()
        assert self.image_file is not None
        turned = (size[1], size[0]) if _rotates(self.image_file) else size
        return frozenset({size, turned})


def _read_source(value: bytes | str | os.PathLike[str] | None, name: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str | os.PathLike):
        return Path(value).read_bytes()
    raise TypeError(f"{name} must be bytes or a path, got {type(value).__name__}")


def _check_sources(image: bytes | None, image_url: str | None, mask: bytes | None,
                   mask_url: str | None, rectangles: object) -> None:
    if (image is None) == (image_url is None):
        raise ValueError("give exactly one of image_file and image_url")
    if image is not None and not image:
        raise ValueError("image_file is empty")
    if sum(x is not None for x in (mask, mask_url, rectangles)) > 1:
        raise ValueError("give at most one of mask_file, mask_url and rectangles")
    for name, data in (("image_file", image), ("mask_file", mask)):
        if data is not None and len(data) > MAX_UPLOAD:
            raise ValueError(f"{name} is {len(data)} bytes, over the endpoint's 15 MB cap")


def _check_url(url: str, name: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name} must be an http(s) URL")


def rectangles_field(rectangles: Iterable[Mapping[str, Any] | Region] | str,
                     size: tuple[int, int] | None = None) -> str:
    """Validate rectangles as the server will and return the compact JSON string to send.

    Raises ValueError naming the offending rectangle, e.g. ``rectangles[3].width: ...``.
    """
    if isinstance(rectangles, str):
        text = rectangles
    else:
        items = [r.rectangle() if isinstance(r, Region) else dict(r) for r in rectangles]
        text = json.dumps(items, separators=(",", ":"), default=_json_int)
    width, height = size if size is not None else (None, None)
    regions = parse_rectangles(text, width=width, height=height, limit=MAX_RECTANGLES)
    return json.dumps([r.rectangle() for r in regions], separators=(",", ":"))


def _json_int(value: object) -> object:
    if isinstance(value, np.integer):
        return int(value)
    raise ValueError(f"rectangles: {type(value).__name__} is not an integer")


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header alone, or None when it cannot be read."""
    size = read_dimensions(data)
    if size is not None:
        return size
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def orientation(data: bytes) -> int:
    """The EXIF orientation (1..8) of encoded image bytes; 1 when there is none."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            value = im.getexif().get(0x0112, 1)
    except Exception:  # a header we cannot read: nothing to account for
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _rotates(data: bytes) -> bool:
    """Whether EXIF orientation turns the image by 90 degrees (5..8) when displayed."""
    return orientation(data) in (5, 6, 7, 8)


def form_fields(submission: Submission) -> tuple[dict[str, str], dict[str, Any]]:
    """The multipart body as httpx wants it: plain fields, and file parts.

    ``image_url`` goes as a part without a file name, exactly as the published examples send
    it; that also keeps the body multipart when there is no file at all.
    """
    data = {"sync": "1" if submission.sync else "0"}
    files: dict[str, Any] = {}
    if submission.image_file is not None:
        files["image_file"] = _file_part("image", submission.image_file)
    else:
        files["image_url"] = (None, submission.image_url)
    if submission.mask_file is not None:
        files["mask_file"] = _file_part("mask", submission.mask_file)
    for name in ("mask_url", "rectangles", "callback_url"):
        value = getattr(submission, name)
        if value is not None:
            data[name] = value
    if submission.base64_result:
        data["return_type"] = "2"
    return data, files


def _file_part(stem: str, data: bytes) -> tuple[str, bytes, str]:
    kind = _sniff_format(data) or ""  # the magic number is enough to name the part
    return stem + _SUFFIX.get(kind, ".bin"), data, _MIME.get(kind, "application/octet-stream")


# -- what comes back -----------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as read by a driver: status, headers, body (cut at the step's cap)."""

    status: int
    headers: httpx.Headers
    content: bytes
    truncated: bool = False


@dataclass(frozen=True)
class TaskInfo:
    """The ``data`` object of a submit or poll answer.

    ``result`` is the URL or base64 text of the cleaned image once ``state`` is 1 (from
    ``image``, or ``file`` for upstream task kinds that use it).
    """

    task_id: str
    state: int
    state_detail: str = ""
    progress: int | None = None
    err_info: str = ""
    image: str | None = field(default=None, repr=False)
    file: str | None = field(default=None, repr=False)
    image_width: int | None = None
    image_height: int | None = None
    return_type: int | None = None

    @property
    def done(self) -> bool:
        return self.state == DONE

    @property
    def final(self) -> bool:
        """Done or failed: polling will not change it."""
        return self.state == DONE or self.state < 0

    @property
    def result(self) -> str | None:
        return self.image or self.file or None


@dataclass(frozen=True)
class TaskResult:
    """A finished task and the cleaned image's encoded bytes (verified to decode)."""

    task: TaskInfo
    data: bytes = field(repr=False)
    width: int
    height: int
    attempts: int = 1


def parse_task(answer: Answer, secret: Secret | None) -> TaskInfo:
    """Read a 200 answer's ``data``; a garbled body raises ``APIError`` (the caller retries)."""
    body = _json_body(answer)
    data = body.get("data")
    if not isinstance(data, dict):
        raise APIError("the endpoint's answer has no 'data' object")
    task_id, state = data.get("task_id"), data.get("state")
    if isinstance(task_id, int) and not isinstance(task_id, bool):
        task_id = str(task_id)
    if not isinstance(task_id, str) or not task_id or not _is_int(state):
        raise APIError("the endpoint's answer has no task_id or no integer state")
    return TaskInfo(
        task_id=task_id, state=int(state), state_detail=_text(data.get("state_detail"), secret),
        progress=_int_or_none(data.get("progress")),
        err_info=_text(data.get("err_info") or body.get("message"), secret),
        image=_str_or_none(data.get("image")), file=_str_or_none(data.get("file")),
        image_width=_int_or_none(data.get("image_width")),
        image_height=_int_or_none(data.get("image_height")),
        return_type=_int_or_none(data.get("return_type")))


def status_error(answer: Answer, secret: Secret | None) -> APIStatusError | None:
    """The HTTP error an answer carries (its status, or the body's ``status``), if any."""
    status = answer.status
    message = ""
    try:
        body = json.loads(answer.content) if answer.content else {}
    except ValueError:
        body = {}
    if isinstance(body, dict):
        if status == 200 and _is_int(body.get("status")) and body["status"] not in (0, 200):
            status = int(body["status"])
        message = _text(body.get("message") or body.get("msg"), secret)
    if status == 200:
        return None
    reason = message or httpx.codes.get_reason_phrase(status) or "error"
    return APIStatusError(status, reason)


def retry_after(headers: httpx.Headers, now_wall: float) -> float | None:
    """Seconds asked by ``Retry-After`` (delta-seconds or an HTTP date), or None."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now_wall
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def decode_result(task: TaskInfo) -> bytes | None:
    """The image bytes when the result is inline base64 (``return_type=2`` or a data URI)."""
    value = task.result
    if value is None or (task.return_type != 2 and _is_url(value)):
        return None
    text = value.split(",", 1)[1] if value.startswith("data:") else value
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise APIError(f"task {task.task_id}: the inline result is not valid base64") from exc


def check_result(task: TaskInfo, data: bytes, expected: frozenset[tuple[int, int]],
                 full: bool) -> tuple[int, int]:
    """Verify the cleaned image decodes and has the input's size; return (width, height)."""
    size = image_size(data)
    if full or size is None:
        try:
            decoded = decode_image(data, source=f"task {task.task_id} result")
        except ImageError as exc:
            raise APIError(f"task {task.task_id}: the result is not an image ({exc.reason})") \
                from exc
        height, width = decoded.rgb.shape[:2]
        size = (width, height)
    wanted = expected or _answer_size(task)
    if wanted and size not in wanted:
        shown = " or ".join(f"{w}x{h}" for w, h in sorted(wanted))
        raise APIError(f"task {task.task_id}: the result is {size[0]}x{size[1]}, "
                       f"the input is {shown}")
    return size


def _answer_size(task: TaskInfo) -> frozenset[tuple[int, int]]:
    if task.image_width and task.image_height:
        return frozenset({(task.image_width, task.image_height)})
    return frozenset()


def _json_body(answer: Answer) -> dict[str, Any]:
    if answer.truncated:
        raise APIError("the endpoint's answer is too large")
    try:
        body = json.loads(answer.content)
    except ValueError:
        raise APIError(f"the endpoint's answer is not JSON (HTTP {answer.status})") from None
    if not isinstance(body, dict):
        raise APIError("the endpoint's answer is not a JSON object")
    return body


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_or_none(value: object) -> int | None:
    if _is_int(value):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _text(value: object, secret: Secret | None) -> str:
    text = value if isinstance(value, str) else "" if value is None else str(value)
    return secret.redact(text) if secret is not None else text[:_SHOWN]


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://", "/"))


# -- steps and flows -------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Send ``request``; ``limited`` requests take a slot of the shared rate limiter first."""

    request: httpx.Request
    limited: bool = True
    follow_redirects: bool = False
    max_bytes: int = _ANSWER_BYTES


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` (this task only)."""

    seconds: float


@dataclass(frozen=True)
class Hold:
    """Let no request through the shared rate limiter for ``seconds`` (after a 429)."""

    seconds: float


Step = Send | Sleep | Hold
Reply = Answer | httpx.RequestError | None
Flow = Generator[Step, Reply, T]


class Core:
    """Request building, answer reading and the flows; shared by both clients, no I/O.

    ``clock`` is monotonic seconds (for deadlines); ``wall`` is Unix time (for HTTP dates in
    ``Retry-After``); ``rng`` draws the jitter. All three are injected so tests need no sleep.
    """

    def __init__(self, base_url: str, token: Secret | None, policy: PollPolicy, *,
                 clock: Callable[[], float], wall: Callable[[], float],
                 rng: random.Random, verify: bool = True) -> None:
        _check_url(base_url, "base_url")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.policy = policy
        self.clock, self.wall, self.rng = clock, wall, rng
        self.verify = verify

    # requests

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token.reveal()}"
        return headers

    def _timeout(self, seconds: float) -> dict[str, Any]:
        return {"timeout": httpx.Timeout(seconds, connect=min(seconds, 10.0)).as_dict()}

    def submit_request(self, submission: Submission) -> httpx.Request:
        """The POST; a ``sync=1`` one may wait for the whole task, so its timeout does too."""
        data, files = form_fields(submission)
        seconds = self.policy.timeout + (self.policy.deadline if submission.sync else 0)
        request = httpx.Request("POST", self.base_url + SUBMIT_PATH, headers=self._headers(),
                                data=data, files=files, extensions=self._timeout(seconds))
        request.read()  # one body in memory: sent in one write, not one per multipart piece
        return request

    def task_request(self, task_id: str) -> httpx.Request:
        """The poll; the id is quoted, so a hostile one cannot change the path."""
        path = TASK_PATH.format(task_id=quote(task_id, safe=""))
        return httpx.Request("GET", self.base_url + path, headers=self._headers(),
                             extensions=self._timeout(self.policy.timeout))

    def download_request(self, url: str) -> httpx.Request:
        """The result's GET, without the token (the URL may be on another host)."""
        absolute = urljoin(self.base_url + "/", url)
        _check_url(absolute, "the result URL")
        return httpx.Request("GET", absolute, extensions=self._timeout(self.policy.timeout))

    # flows

    def call(self, build: Callable[[], httpx.Request], what: str, *, limited: bool = True,
             follow: bool = False, max_bytes: int = _ANSWER_BYTES) -> Flow[Answer]:
        """Send until an answer without an HTTP error comes back, retrying what may pass."""
        attempt = 0
        while True:
            reply = yield Send(build(), limited, follow, max_bytes)
            assert reply is not None
            error, wait, hold = self._judge(reply, attempt, what)
            if error is None and isinstance(reply, Answer):
                return reply
            assert error is not None
            if wait is None:
                raise error
            log.debug("%s: %s; retry %d in %.2f s", what, error, attempt + 1, wait)
            yield Hold(wait) if hold else Sleep(wait)
            attempt += 1

    def _judge(self, reply: Answer | httpx.RequestError, attempt: int,
               what: str) -> tuple[APIError | None, float | None, bool]:
        """(error, retry wait or None to give up, whether the wait holds the rate limiter)."""
        if isinstance(reply, httpx.RequestError):
            text = f"{what}: network error: {type(reply).__name__}: {reply}"
            return APIError(self._redact(text)), self._backoff(attempt), False
        status = status_error(reply, self.token)
        if status is None:
            return None, None, False
        error = APIStatusError(status.status, self._redact(f"{what}: {status.message}"))
        if status.status == 429:
            return error, self._after_429(reply, attempt), True
        retry = status.status >= 500 and status.status not in NEVER_RETRY
        return error, self._backoff(attempt) if retry else None, False

    def _after_429(self, reply: Answer, attempt: int) -> float | None:
        """``Retry-After`` plus a little jitter when given (None past ``retry_cap``: a key
        held back that long is not worth waiting for), else the usual backoff."""
        asked = retry_after(reply.headers, self.wall())
        if asked is None:
            return self._backoff(attempt)
        if attempt >= self.policy.retries or asked > self.policy.retry_cap:
            return None
        return asked + self.rng.uniform(0, 0.05 + asked / 10)

    def _backoff(self, attempt: int) -> float | None:
        if attempt >= self.policy.retries:
            return None
        return self.policy.retry_delay(attempt, self.rng)

    def _redact(self, text: str) -> str:
        return self.token.redact(text) if self.token is not None else text[:_SHOWN]

    def read(self, build: Callable[[], httpx.Request], what: str) -> Flow[TaskInfo]:
        """``call`` and parse the task; a garbled 200 answer counts as a retryable failure."""
        attempt = 0
        while True:
            answer = yield from self.call(build, what)
            try:
                return parse_task(answer, self.token)
            except APIError as exc:
                wait = self._backoff(attempt)
                if wait is None:
                    raise APIError(self._redact(f"{what}: {exc}")) from None
                yield Sleep(wait)
                attempt += 1

    def submit(self, submission: Submission) -> Flow[TaskInfo]:
        """POST the task; the answer is its first state (final already with ``sync=1``)."""
        task = yield from self.read(lambda: self.submit_request(submission), "submit")
        log.debug("task %s submitted: state %d", task.task_id, task.state)
        return task

    def get(self, task_id: str) -> Flow[TaskInfo]:
        """GET the task's current state."""
        return (yield from self.read(lambda: self.task_request(task_id), f"task {task_id}"))

    def wait(self, task: TaskInfo, started: float | None = None) -> Flow[TaskInfo]:
        """Poll until the task is final; ``TaskFailed`` for a negative state, at the deadline
        ``TaskTimeout`` (``started`` is when it was submitted; default: now)."""
        started = self.clock() if started is None else started
        polls = 0
        while not task.final:
            delay = self.policy.poll_delay(polls)
            if self.clock() - started + delay > self.policy.deadline:
                raise TaskTimeout(task.task_id, self.policy.deadline)
            yield Sleep(delay)
            task = yield from self.get(task.task_id)
            log.debug("task %s: state %d", task.task_id, task.state)
            polls += 1
        if task.state < 0:
            raise TaskFailed(task.task_id, task.state, task.err_info or
                             STATE_DETAIL.get(task.state, "unknown failure"))
        return task

    def download(self, task: TaskInfo,
                 expected: frozenset[tuple[int, int]] = frozenset()) -> Flow[TaskResult]:
        """The result's bytes (inline base64, or fetched from its URL at once), verified."""
        if not task.done or task.result is None:
            raise APIError(f"task {task.task_id} has no result (state {task.state})")
        data = decode_result(task)
        if data is None:
            url = task.result
            answer = yield from self.call(lambda: self.download_request(url),
                                          f"task {task.task_id} result", limited=False,
                                          follow=True, max_bytes=_RESULT_BYTES)
            if answer.truncated:
                raise APIError(f"task {task.task_id}: the result is over {_RESULT_BYTES} bytes")
            data = answer.content
        width, height = check_result(task, data, expected, self.verify)
        return TaskResult(task, data, width, height)

    def remove(self, submission: Submission) -> Flow[TaskResult]:
        """Submit, wait and download; resubmit after states -2 and -8."""
        expected = submission.expected_sizes()
        for attempt in range(self.policy.resubmits + 1):
            started = self.clock()
            task = yield from self.submit(submission)
            try:
                task = yield from self.wait(task, started)
            except TaskFailed as exc:
                if exc.state not in RESUBMIT or attempt == self.policy.resubmits:
                    raise
                log.debug("task %s: state %d, resubmitting", exc.task_id, exc.state)
                yield Sleep(self.policy.retry_delay(attempt, self.rng))
                continue
            result = yield from self.download(task, expected)
            return TaskResult(result.task, result.data, result.width, result.height,
                              attempts=attempt + 1)
        raise AssertionError("unreachable")  # pragma: no cover


class Capped:
    """A body collected chunk by chunk up to ``limit`` bytes (the drivers' shared reader)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> bool:
        """Keep ``chunk``; True once the body went over the limit (stop reading then)."""
        self.parts.append(chunk)
        self.size += len(chunk)
        return self.size > self.limit

    def answer(self, response: httpx.Response) -> Answer:
        """What the core reads: status, headers, the body kept, and whether it was cut."""
        body = b"".join(self.parts)
        return Answer(response.status_code, response.headers, body[: self.limit],
                      self.size > self.limit)
