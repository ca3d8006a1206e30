"""The removal endpoint as an ASGI app, for any ASGI server (needs the ``server`` extra).

``clearmark serve`` is the ready-made way to run it. To run it under your own ASGI server:

    CLEARMARK_SERVER_TOKENS=... uvicorn --factory clearmark.server:app_from_env

or build it with ``create_app(ServerConfig(tokens=...))``; see ``ServerConfig`` for limits,
the fetch allow-list and rate limiting.
"""

from __future__ import annotations

try:
    from ._server import ServerConfig, create_app, load_server_tokens
except ImportError:  # one line that says what to do, not a trace
    raise ImportError("clearmark.server needs extra packages: "
                      "pip install 'clearmark[server]'") from None

from starlette.applications import Starlette

__all__ = ["ServerConfig", "app_from_env", "create_app", "load_server_tokens"]


def app_from_env() -> Starlette:
    """The app with tokens from CLEARMARK_SERVER_TOKENS (comma-separated) and defaults."""
    return create_app(ServerConfig(tokens=load_server_tokens()))
