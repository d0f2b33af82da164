"""Cross-origin HTTP requests from the browser pages of ``auth.allowed_origins``.

A page served from another origin (``https://app.example``) may import the JS client from
``/client/*``, ask ``POST /v1/tokens`` for a token and call the REST API, once its origin is in
``auth.allowed_origins`` (the list that also admits its WebSocket sessions): its requests get
``Access-Control-Allow-Origin`` and its preflights are answered. Off by default: with the list
empty, or for an origin not in it, no response carries CORS headers (the browser keeps the page
out), and the browser policy in front (``guard.py``) refuses the request and its preflight with
403. WebSockets are not subject to CORS (the guard checks the upgrade's ``Origin``).

Starlette's CORS middleware does the work; this module is the gateway's policy for it.
"""

from __future__ import annotations

from typing import Final

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from gateway.config import Config

__all__ = ["cors_middleware"]

# What a page may send: credentials in Authorization (Bearer) or xi-api-key, JSON bodies.
_ALLOWED_HEADERS: Final = ("authorization", "content-type", "xi-api-key")
_ALLOWED_METHODS: Final = ("GET", "POST")
# What a page may read besides the simple response headers: which backend and voice spoke.
_EXPOSED_HEADERS: Final = ("x-tts-backend", "x-tts-voice")
_PREFLIGHT_MAX_AGE_S: Final = 600


def cors_middleware(config: Config) -> Middleware:
    """The middleware answering cross-origin requests from ``auth.allowed_origins`` only.

    Credentials travel in headers the page sets itself, never in cookies, so credentialed
    (cookie) requests are not allowed."""
    return Middleware(
        CORSMiddleware,
        allow_origins=list(config.auth.allowed_origins),
        allow_methods=list(_ALLOWED_METHODS),
        allow_headers=list(_ALLOWED_HEADERS),
        expose_headers=list(_EXPOSED_HEADERS),
        allow_credentials=False,
        max_age=_PREFLIGHT_MAX_AGE_S,
    )
