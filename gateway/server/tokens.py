"""Self-contained signed tokens for browsers, valid on every replica that shares the secrets.

A token names the API key it stands for (by key id), when it expires, which routes it opens
(its scopes) and, optionally, the one page Origin it may be used from. It is signed with
HMAC-SHA256 under one of ``auth.token_secrets``; the secret's id (the first 8 hex digits of its
SHA-256) travels with the token, so that several secrets can verify at once while the first one
signs: rotation is adding a new secret in front, and dropping the old one once the tokens it
signed have expired. Nothing is stored: a replica checks a token from the secrets alone.

Format (every part base64url without padding, so a token is a valid HTTP token and can be
offered as a WebSocket subprotocol): ``tgw2.<secret id>.<claims>.<signature>``, where the claims
are a JSON object ``{"k": key id, "x": expiry (Unix seconds), "s": [scopes], "o": origin}`` and
the signature covers everything before it. Clients treat tokens as opaque.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["SCOPES", "TOKEN_PREFIX", "TokenClaims", "TokenSigner", "secret_id"]

TOKEN_PREFIX: Final = "tgw2"
# What a token may open: the WebSocket (`/v1/stream`) and the REST API (`/v1/audio/*`,
# `/v1/estimate`).
SCOPES: Final = ("stream", "rest")
_MAX_TOKEN_CHARS: Final = 4096


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token says: its key, expiry (Unix seconds), scopes and bound Origin."""

    key_id: str
    expires_at: int
    scopes: frozenset[str]
    origin: str | None


def secret_id(secret: str) -> str:
    """How a signing secret is named in its tokens (never the secret itself)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


class TokenSigner:
    """Issues and verifies tokens. ``secrets_``: the first signs, all verify; empty: one random
    secret for this process alone. ``clock``: Unix seconds (tests pass their own)."""

    def __init__(
        self, secrets_: Sequence[str] = (), *, clock: Callable[[], float] = time.time
    ) -> None:
        keys = list(secrets_) or [secrets.token_urlsafe(32)]
        self.shared = bool(secrets_)  # False: tokens are valid only in this process
        self._keys = {secret_id(s): s.encode() for s in keys}
        self._signing = secret_id(keys[0])
        self._clock = clock

    def issue(
        self,
        key_id: str,
        ttl_s: float,
        *,
        scopes: Collection[str] = SCOPES,
        origin: str | None = None,
    ) -> str:
        """A token for ``key_id`` that expires ``ttl_s`` seconds from now."""
        claims: dict[str, object] = {
            "k": key_id,
            "x": int(self._clock() + ttl_s),
            "s": sorted(set(scopes)),
        }
        if origin is not None:
            claims["o"] = origin
        encoded = _b64(json.dumps(claims, separators=(",", ":")).encode())
        body = f"{TOKEN_PREFIX}.{self._signing}.{encoded}"
        return f"{body}.{self._sign(self._signing, body)}"

    def verify(self, token: str) -> TokenClaims | None:
        """The claims of a token signed by one of the secrets and not expired; else None."""
        if len(token) > _MAX_TOKEN_CHARS:
            return None
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != TOKEN_PREFIX or parts[1] not in self._keys:
            return None
        body = ".".join(parts[:3])
        if not hmac.compare_digest(parts[3].encode(), self._sign(parts[1], body).encode()):
            return None
        claims = _claims(parts[2])
        if claims is None or claims.expires_at < self._clock():
            return None
        return claims

    def _sign(self, key: str, body: str) -> str:
        return _b64(hmac.new(self._keys[key], body.encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _claims(encoded: str) -> TokenClaims | None:
    """The claims of a signed token (a signed token with malformed claims is refused)."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(raw, dict):
        return None
    key_id, expires, scopes, origin = raw.get("k"), raw.get("x"), raw.get("s"), raw.get("o")
    if not isinstance(key_id, str) or not isinstance(expires, int) or isinstance(expires, bool):
        return None
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        return None
    if origin is not None and not isinstance(origin, str):
        return None
    return TokenClaims(key_id, expires, frozenset(scopes), origin)
