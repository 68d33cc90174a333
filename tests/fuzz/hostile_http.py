"""Hostile requests to the webhook: hostile events with and without credentials, and HTTP that
is not HTTP (bad request lines, lengths, headers, truncated bodies, oversized heads and bodies).

Each :class:`HostileRequest` knows the bytes it sends and which answers are acceptable; the
raw client sends them over a plain socket and reads the whole answer.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hostile_events import RawEvent, hostile_event
from hypothesis import strategies as st

from dxai.configs.errors import InvalidEventError
from dxai.daemon.events import parse_study_event
from dxai.daemon.events.codec import MAX_EVENT_BYTES

Draw = Callable[[st.SearchStrategy[Any]], Any]
ANSWER_SECONDS = 30.0


class HostileRequest:
    """Bytes to send; the statuses that are right for them; the event inside, if any."""

    __slots__ = ("allowed", "body", "head", "label", "shut_write")

    def __init__(
        self,
        label: str,
        head: bytes,
        body: bytes,
        allowed: frozenset[int],
        shut_write: bool = False,
    ) -> None:
        self.label, self.head, self.body = label, head, body
        self.allowed, self.shut_write = allowed, shut_write

    def __repr__(self) -> str:
        return f"HostileRequest({self.label}, {len(self.head)}+{len(self.body)} bytes)"


def post_head(length: int | str | None, auth: str | None, extra: str = "") -> bytes:
    """A ``POST /events`` head; ``length`` None leaves Content-Length out."""
    lines = ["POST /events HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if auth is not None:
        lines.append(f"Authorization: {auth}")
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def event_status(raw: bytes) -> int:
    """The webhook's answer to an authorised POST of ``raw``: 413, 400 or 202."""
    if len(raw) > MAX_EVENT_BYTES:
        return 413
    try:
        parse_study_event(raw)
    except InvalidEventError:
        return 400
    return 202


def _posted(label: str, event: RawEvent, auth: str | None, allowed: int) -> HostileRequest:
    """POST ``event``; an oversized body is announced but not sent (the server answers 413
    before reading it, and unread bytes would reset the connection before the answer)."""
    big = len(event.raw) > MAX_EVENT_BYTES
    body = b"" if big else event.raw
    return HostileRequest(label, post_head(len(event.raw), auth), body, frozenset({allowed}))


BAD_AUTH = (
    None,
    "Bearer wrong-token",
    "Bearer ",
    "Basic ZnV6ejpmdXp6",
    "bearer",
    "Bearer " + "A" * 8000,
    "Bearer fuzz-token\x00",
    "Bearer ../../etc/passwd",
)


@st.composite
def hostile_request(draw: Draw, token: str) -> HostileRequest:
    """An authorised hostile event, an unauthorised one, or broken HTTP."""
    kind = draw(st.sampled_from(["event", "event", "unauthorized", "http"]))
    if kind == "http":
        broken: HostileRequest = draw(broken_http(token))
        return broken
    event = draw(hostile_event())
    if kind == "event":
        request = _posted(f"event:{event.labels}", event, f"Bearer {token}", 0)
        request.allowed = frozenset({event_status(event.raw)})
        return request
    auth = draw(st.sampled_from(BAD_AUTH))
    big = len(event.raw) > MAX_EVENT_BYTES
    request = _posted(f"unauthorized:{event.labels}", event, auth, 0)
    request.allowed = frozenset({413 if big else 401})
    return request


def _broken(label: str, head: bytes, body: bytes, *allowed: int) -> HostileRequest:
    return HostileRequest(label, head, body, frozenset(allowed), shut_write=True)


@st.composite
def broken_http(draw: Draw, token: str) -> HostileRequest:
    """HTTP the webhook must refuse without routing it (or route and refuse)."""
    auth = f"Bearer {token}"
    body = b'{"event_type": "study_received"}'
    cases = {
        "no_length": lambda: _broken("no_length", post_head(None, auth), body, 411),
        "negative_length": lambda: _broken("negative", post_head(-5, auth), body, 413),
        "text_length": lambda: _broken("text_length", post_head("12abc", auth), body, 400),
        "huge_length": lambda: _broken("huge_length", post_head(10**40, auth), b"", 413),
        "long_digits": lambda: _broken("long_digits", post_head("9" * 5000, auth), b"", 400),
        "short_body": lambda: _broken("short_body", post_head(1000, auth), body, 400),
        # 0: the server may answer 413 and close before reading the rest (a reset loses it)
        "huge_head": lambda: _broken(
            "huge_head", post_head(len(body), auth, "X-Pad: " + "p" * 20_000), body, 413, 0
        ),
        "bad_line": lambda: _broken(
            "bad_line", draw(_request_lines()), b"", 400, 401, 404, 405, 411
        ),
        "get_events": lambda: _broken(
            "get_events", b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n", b"", 405
        ),
        "unknown_path": lambda: _broken(
            "unknown_path", b"POST /../../admin HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"", 404
        ),
        "garbage": lambda: _broken(
            "garbage", draw(st.binary(max_size=512)), b"", 400, 404, 405, 411, 413
        ),
        "no_head_end": lambda: _broken("no_head_end", b"POST /events HTTP/1.1\r\nHost", b"", 400),
    }
    return cases[draw(st.sampled_from(sorted(cases)))]()


def _request_lines() -> st.SearchStrategy[bytes]:
    lines = st.sampled_from(
        [
            b"POST /events\r\n\r\n",
            b"POST /events HTTP/2.0\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"POST  /events  HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
            b"POST /events HTTP/1.1 extra\r\n\r\n",
            b"DELETE /events HTTP/1.1\r\n\r\n",
            b"POST /events?x=../../ HTTP/1.1\r\n\r\n",
            b"POST /events HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"GET /healthz%00 HTTP/1.1\r\n\r\n",
        ]
    )
    return lines


@dataclass(frozen=True)
class Answer:
    """What came back: the status (0: the connection closed without an answer) and body."""

    status: int
    body: bytes


def send(port: int, request: HostileRequest) -> Answer:
    """Send ``request`` on a fresh connection and read the answer to its end."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_SECONDS) as sock:
        try:
            sock.sendall(request.head + request.body)
            if request.shut_write:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early and closed; read what it said
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    data = b"".join(chunks)
    if not data.startswith(b"HTTP/1.1 "):
        return Answer(0, data)
    head, _, body = data.partition(b"\r\n\r\n")
    return Answer(int(head[9:12]), body)


def get(port: int, path: str) -> Answer:
    """A plain GET."""
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    return send(port, HostileRequest("get", head, b"", frozenset({200})))
