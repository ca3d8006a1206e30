"""The one exception tree of clearmark.

    ClearmarkError
    ├── ImageError            an input that cannot be decoded, is empty, truncated, too large
    ├── OutputError           an output that cannot be written
    └── APIError              anything that goes wrong talking to a removal endpoint
        ├── APIStatusError    the endpoint answered with an HTTP error status
        ├── TaskFailed        the task ended in a negative state
        └── TaskTimeout       the task did not finish within the poll policy's deadline

Wrong arguments (a negative limit, an unknown remover name) raise plain ``ValueError``/
``TypeError``: they are programming errors, not data errors.
"""

from __future__ import annotations


class ClearmarkError(Exception):
    """Root of every error clearmark raises on purpose."""


class ImageError(ClearmarkError):
    """An image could not be read. ``source`` names the file (or ``<bytes>``, ``<array>``)."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class OutputError(ClearmarkError):
    """An output could not be written. ``path`` names the destination."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class APIError(ClearmarkError):
    """Talking to a removal endpoint failed."""


class APIStatusError(APIError):
    """The endpoint answered with HTTP ``status``; ``message`` is its reason."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"HTTP {status}: {message}")


class TaskFailed(APIError):
    """A removal task ended in a negative ``state``; ``err_info`` is the endpoint's reason."""

    def __init__(self, task_id: str, state: int, err_info: str) -> None:
        self.task_id = task_id
        self.state = state
        self.err_info = err_info
        super().__init__(f"task {task_id} failed (state {state}): {err_info}")


class TaskTimeout(APIError):
    """A removal task did not finish before the poll deadline."""

    def __init__(self, task_id: str, seconds: float) -> None:
        self.task_id = task_id
        self.seconds = seconds
        super().__init__(f"task {task_id} did not finish within {seconds:g} s")
