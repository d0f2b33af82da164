"""A hostile client's tools: raw TCP sockets that speak just enough HTTP and WebSocket to open a
connection, then send frames (pings) or bytes at their own pace and never read."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import Iterable


async def open_socket(port: int, *, receive_buffer: int = 4096) -> socket.socket:
    """A non-blocking TCP connection to 127.0.0.1 with a small receive buffer (so that the
    server's sends back up soon when it is not read)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def read_head(sock: socket.socket) -> bytes:
    """Read an HTTP response head (and whatever came with it)."""
    loop = asyncio.get_running_loop()
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk:
            break
        data += chunk
    return data


async def upgraded(
    port: int, *, headers: Iterable[str] = (), receive_buffer: int = 4096
) -> socket.socket:
    """A WebSocket to the gateway's /v1/stream after a successful upgrade (101)."""
    sock = await open_socket(port, receive_buffer=receive_buffer)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        + "".join(f"{header}\r\n" for header in headers)
        + "\r\n"
    )
    await asyncio.get_running_loop().sock_sendall(sock, request.encode())
    head = await read_head(sock)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (payload under 126 bytes)."""
    assert len(payload) < 126
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


PING = 0x9
BINARY = 0x2


async def flood(sock: socket.socket, frame: bytes, *, total_bytes: int) -> bool:
    """Send ``frame`` over and over, up to ``total_bytes``; True if the server dropped the
    connection first."""
    loop = asyncio.get_running_loop()
    batch = frame * max(1, 65536 // len(frame))
    sent = 0
    try:
        while sent < total_bytes:
            await loop.sock_sendall(sock, batch)
            sent += len(batch)
    except (ConnectionResetError, BrokenPipeError):
        return True
    return False
