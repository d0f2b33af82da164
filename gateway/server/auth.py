"""Who may use the gateway: API keys, short-lived tokens for browsers, and the browser policy
(which Host names it answers to, which Origins may use it).

Keys are compared in constant time and never logged; a key is known in logs and limits by its
id, the first 8 hex digits of its SHA-256. Browsers should not hold API keys: a server with a
key asks ``POST /v1/tokens`` for a token that expires (``auth.token_ttl_s``), may be bound to
the page's Origin and to the routes it opens, and hands it to the page, which presents it in the
WebSocket subprotocol or as the first message. Tokens are signed and self-contained
(:mod:`gateway.server.tokens`): every replica with the same ``auth.token_secrets`` accepts them.

Credentials are read, in order, from ``Authorization: Bearer <key or token>``, from a
subprotocol ``bearer.<key or token>`` offered next to ``tts-gateway``, or from an ``auth``
first message.

Loopback is no boundary for a browser: any page it shows can send requests to 127.0.0.1, and a
name the page's site controls can be made to resolve there (DNS rebinding). So every request must
name the gateway in its ``Host`` (:meth:`Authenticator.host_allowed`), and a request from a
browser (one with an ``Origin``) must come from the gateway's own origin (its demo page) or one
of ``auth.allowed_origins`` (:meth:`Authenticator.origin_allowed`), on loopback too.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from gateway.config import Config, ServerSettings
from gateway.server.logs import add_secret
from gateway.server.tokens import SCOPES, TOKEN_PREFIX, TokenSigner

__all__ = ["SUBPROTOCOL", "Authenticator", "Credentials", "host_name", "served_hosts"]

SUBPROTOCOL: Final = "tts-gateway"
_BEARER_SUBPROTOCOL: Final = "bearer."
_ANY: Final = "*"
_WILDCARD_ADDRESSES: Final = frozenset({"0.0.0.0", "::", ""})
_LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True, slots=True)
class Credentials:
    """Where a client's credentials came from, before they are checked."""

    secret: str | None  # a key or a token; None: nothing presented (yet)
    subprotocol: str | None  # the subprotocol to accept, if the client offered ours


class Authenticator:
    """Checks keys and tokens. Tokens are signed with ``auth.token_secrets``
    (:mod:`gateway.server.tokens`), so every replica that shares the secrets accepts them; without
    secrets they are valid only in the process that issued them."""

    def __init__(self, config: Config) -> None:
        self.required = config.auth_required
        self._keys = {_key_id(key): key.encode() for key in config.auth.api_keys}
        for secret in (*config.auth.api_keys, *config.auth.token_secrets):
            add_secret(secret)
        self._origins = frozenset(origin.rstrip("/") for origin in config.auth.allowed_origins)
        self._hosts = served_hosts(config.server)
        self._ttl = config.auth.token_ttl_s
        self.tokens = TokenSigner(config.auth.token_secrets)

    def identify(
        self, secret: str | None, *, origin: str | None = None, scope: str | None = None
    ) -> str | None:
        """The key id a key or token belongs to, or None if it is not valid here: a token must
        hold ``scope`` (None: any) and, if it is bound to an Origin, come from that ``origin``."""
        if not secret:
            return None
        if secret.startswith(TOKEN_PREFIX + "."):
            return self._token_key(secret, origin, scope)
        return self._api_key(secret)

    def key_id_of_api_key(self, secret: str | None) -> str | None:
        """Like :meth:`identify`, but only an API key counts (tokens cannot mint tokens)."""
        return self._api_key(secret) if secret else None

    def issue_token(
        self, key_id: str, *, scopes: Collection[str] = SCOPES, origin: str | None = None
    ) -> tuple[str, float]:
        """A token for ``key_id`` and its lifetime in seconds."""
        return self.tokens.issue(key_id, self._ttl, scopes=scopes, origin=origin), self._ttl

    def host_allowed(self, host: str | None) -> bool:
        """Whether a request's ``Host`` header names this gateway (``server.allowed_hosts``, or
        the names of the address it listens on). A request without one (HTTP/1.0, not a
        browser) is not refused for it."""
        if host is None or self._hosts is None:
            return True
        return host_name(host) in self._hosts

    def origin_allowed(self, origin: str | None, host: str | None = None) -> bool:
        """Whether a browser page from ``origin`` may use the gateway: a request without an
        ``Origin`` (not a browser), the gateway's own origin (the same host and port as the
        request's ``Host``), or one of ``auth.allowed_origins`` (``"*"``: any). The policy of
        every route: the WebSocket upgrade and the HTTP API alike."""
        if origin is None or _ANY in self._origins or origin in self._origins:
            return True
        _, _, authority = origin.partition("://")
        return host is not None and authority.lower() == host.strip().lower() != ""

    def _api_key(self, secret: str) -> str | None:
        presented = secret.encode()
        found = None
        for key_id, key in self._keys.items():  # every key is compared: no early exit
            if hmac.compare_digest(presented, key):
                found = key_id
        return found

    def _token_key(self, token: str, origin: str | None, scope: str | None) -> str | None:
        claims = self.tokens.verify(token)
        if claims is None or claims.key_id not in self._keys:  # a removed key's tokens die too
            return None
        if scope is not None and scope not in claims.scopes:
            return None
        if claims.origin is not None and claims.origin != origin:
            return None
        return claims.key_id


def credentials(headers: Mapping[str, str], subprotocols: Sequence[str]) -> Credentials:
    """The credentials a handshake carries (header first, then subprotocol)."""
    accepted = SUBPROTOCOL if SUBPROTOCOL in subprotocols else None
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return Credentials(value.strip(), accepted)
    for offered in subprotocols:
        if offered.startswith(_BEARER_SUBPROTOCOL):
            return Credentials(offered[len(_BEARER_SUBPROTOCOL) :], accepted)
    return Credentials(None, accepted)


def served_hosts(server: ServerSettings) -> frozenset[str] | None:
    """The ``Host`` names a server answers to (lower case, without port); None: any."""
    if server.allowed_hosts:
        names = frozenset(host_name(name) for name in server.allowed_hosts)
        return None if _ANY in names else names
    if server.host in _WILDCARD_ADDRESSES:
        return None  # every address of the machine: its names are not known here
    if server.on_loopback:
        return _LOOPBACK_NAMES
    return frozenset({host_name(server.host)})


def host_name(host: str) -> str:
    """The name in a ``Host`` header value: lower case, without the port or IPv6 brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        host = name
    return host.rstrip(".")


def _key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:8]
