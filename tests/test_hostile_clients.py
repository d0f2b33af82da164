"""What a hostile client found (issue 19): ping floods, sockets that never authenticate, clients
that stop reading. Real servers on loopback; the hostile clients are raw sockets
(tests/rawsocket.py) or the websockets library."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

import msgpack
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.config import AuthRequired, AuthSettings, LimitsSettings
from gateway.core.protocol import Error, Ready, decode_server_message
from tests.conftest import RunningServer, timeout, tone_gateway
from tests.rawsocket import BINARY, PING, client_frame, flood, upgraded
from tests.servers import eventually
from tests.streams import collect
from tts_gateway_client import connect

KEY = "k-0123456789abcdef-hostile"
BEARER = f"Authorization: Bearer {KEY}"


def limits(**changes: Any) -> LimitsSettings:
    return dataclasses.replace(LimitsSettings(), **changes)


def required_auth(**changes: Any) -> AuthSettings:
    return AuthSettings(required=AuthRequired.YES, api_keys=(KEY,), **changes)


def nobody_served(running: RunningServer) -> bool:
    gateway = running.gateway
    return not gateway.sessions and not getattr(gateway, "unauthenticated", ())


# -- control frames --------------------------------------------------------------------------


async def test_pings_count_toward_the_message_rate() -> None:
    budget = limits(max_messages_per_s=5.0, max_message_burst=20)
    async with (
        tone_gateway(limits=budget) as running,
        ws_connect(running.ws_url, compression=None) as socket,
    ):
        await socket.send(msgpack.packb({"type": "start"}))
        for _ in range(60):
            await socket.ping()  # no data frame after `start`: only pings
        messages = []
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(timeout(10)):
                async for frame in socket:
                    messages.append(decode_server_message(frame))  # type: ignore[arg-type]
        assert isinstance(messages[0], Ready)
        assert isinstance(messages[-1], Error)
        assert (messages[-1].code, messages[-1].fatal) == ("rate_limited", True)
        assert socket.close_code == 1008


async def test_a_ping_flood_before_authentication_ends_the_session_soon() -> None:
    auth = required_auth(first_message_timeout_s=3.0)
    async with tone_gateway(auth=auth, limits=limits(handshake_timeout_s=3.0)) as running:
        sock = await upgraded(running.port)
        try:
            # 32 MB of pings from a client that never reads: beyond the message budget they are
            # not answered, and the session ends at once (it used to stay, answering each).
            await flood(sock, client_frame(PING, b"p" * 125), total_bytes=32 << 20)
            await eventually(lambda: nobody_served(running), deadline_s=timeout(10))
        finally:
            sock.close()


async def test_a_client_whose_unsent_answers_pile_up_is_dropped() -> None:
    # A budget the flood cannot spend: the send buffer limit must stop it.
    small = limits(max_messages_per_s=1e9, max_message_burst=10**9, max_pending_chars=1000,
                   max_heard_chars=1000, max_send_buffer_bytes=256 << 10)  # fmt: skip
    async with tone_gateway(limits=small) as running:
        sock = await upgraded(running.port)
        try:
            dropped = await flood(sock, client_frame(PING, b"p" * 125), total_bytes=256 << 20)
            assert dropped, "the server kept answering a client that does not read"
            await eventually(lambda: nobody_served(running), deadline_s=timeout(10))
        finally:
            sock.close()


async def test_the_auth_timeout_fires_when_the_clients_socket_is_full() -> None:
    # Pongs fill the socket of a client that does not read (the budget and the send buffer
    # limit set out of reach): the fatal error for no credentials cannot be sent, and its
    # send's deadline (slow_client_grace_s) ends the session instead of blocking for ever.
    generous = limits(max_messages_per_s=1e9, max_message_burst=10**9,
                      max_send_buffer_bytes=1 << 30, slow_client_grace_s=1.0)  # fmt: skip
    auth = required_auth(first_message_timeout_s=1.0)
    async with tone_gateway(auth=auth, limits=generous) as running:
        sock = await upgraded(running.port)
        try:
            assert not await flood(sock, client_frame(PING, b"p" * 125), total_bytes=12 << 20)
            await eventually(lambda: nobody_served(running), deadline_s=timeout(15))
        finally:
            sock.close()


# -- sockets that never authenticate -----------------------------------------------------------


async def test_sockets_waiting_for_credentials_do_not_take_session_slots() -> None:
    auth = required_auth(max_unauthenticated=4)
    async with (
        tone_gateway(auth=auth, limits=limits(max_sessions=8)) as running,
        contextlib.AsyncExitStack() as stack,
    ):
        refusals: list[InvalidStatus] = []
        for _ in range(10):  # none of them ever sends `auth`
            try:
                await stack.enter_async_context(ws_connect(running.ws_url, compression=None))
            except InvalidStatus as exc:
                refusals.append(exc)
        assert len(refusals) == 6  # 4 may wait
        assert {r.response.status_code for r in refusals} == {503}
        assert all(b"wait for credentials" in r.response.body for r in refusals)
        headers = {"Authorization": f"Bearer {KEY}"}
        async with ws_connect(running.ws_url, additional_headers=headers,
                              compression=None) as holder:  # fmt: skip
            await holder.send(msgpack.packb({"type": "start"}))
            async with asyncio.timeout(timeout(10)):
                assert isinstance(decode_server_message(await holder.recv()), Ready)  # type: ignore[arg-type]


async def test_a_waiting_socket_that_authenticates_becomes_a_session() -> None:
    auth = required_auth(max_unauthenticated=1)
    async with (
        tone_gateway(auth=auth, limits=limits(max_sessions=1)) as running,
        ws_connect(running.ws_url, compression=None) as socket,
    ):
        await eventually(lambda: len(running.gateway.unauthenticated) == 1,
                         deadline_s=timeout(10))  # fmt: skip
        await socket.send(msgpack.packb({"type": "auth", "token": KEY}))
        await socket.send(msgpack.packb({"type": "start"}))
        async with asyncio.timeout(timeout(10)):
            assert isinstance(decode_server_message(await socket.recv()), Ready)  # type: ignore[arg-type]
        assert len(running.gateway.sessions) == 1
        assert not running.gateway.unauthenticated
        # The one session slot is taken now: a key holder is refused, with 503.
        headers = {"Authorization": f"Bearer {KEY}"}
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(running.ws_url, additional_headers=headers):
                pass  # pragma: no cover
        assert refused.value.response.status_code == 503


# -- clients that stop reading -------------------------------------------------------------------


async def test_a_client_that_stops_reading_is_given_up_after_the_grace() -> None:
    # On loopback the kernel takes megabytes for a client that does not read, so no send ever
    # blocks; the read probes see that nothing is read. (Before, only the ping timeout closed
    # such a client: 40 s here.)
    async with (
        tone_gateway(limits=limits(slow_client_grace_s=1.0)) as running,
        ws_connect(running.ws_url, compression=None, max_queue=1) as socket,
    ):
        await socket.send(msgpack.packb({"type": "start"}))
        async with asyncio.timeout(timeout(10)):
            assert isinstance(decode_server_message(await socket.recv()), Ready)  # type: ignore[arg-type]
        story = "The client has stopped reading, yet the words keep coming. " * 40
        await socket.send(msgpack.packb({"type": "text", "text": story}))
        await eventually(lambda: nobody_served(running), deadline_s=timeout(15))
        # Given up without an error or a close frame: the connection was dropped.
        with pytest.raises(ConnectionClosed):
            await read_to_the_end(socket)
        assert socket.close_code in (None, 1006)


async def test_a_client_that_reads_keeps_its_session_with_a_short_grace() -> None:
    small = limits(slow_client_grace_s=1.0, max_buffer_ahead_s=1.0)
    async with tone_gateway(limits=small) as running, connect(running.ws_url) as stream:
        stream.feed([" ".join(["one two three four."] * 6)])  # about 3 s of tones, paced
        transcript = await collect(stream, deadline_s=timeout(30))
    assert transcript.done is not None


async def read_to_the_end(socket: ClientConnection) -> None:
    async with asyncio.timeout(timeout(10)):
        while True:
            await socket.recv()


def test_the_hostile_frames_are_well_formed() -> None:
    frame = client_frame(BINARY, b"\x81\xa4type\xa3end")
    assert frame[:2] == bytes([0x82, 0x80 | 10])
