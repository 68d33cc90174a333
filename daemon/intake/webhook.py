"""A minimal HTTP/1.1 webhook on ``asyncio.start_server``: ``POST /events``, ``GET /healthz``.

One request per connection (``Connection: close``), bounded header and body sizes, read
timeouts.  ``POST /events`` takes the same JSON event contract as the Kafka input topic; the
answer is 202 with the admission (``accepted``, ``duplicate``...) once the job is durable, or
400 when the event was dead-lettered.  With authentication configured (:mod:`webhook_auth`) a
request without valid credentials gets 401, is counted (``errors``, ``intake_unauthorized``)
and is neither processed nor dead-lettered.  A stdlib server keeps the base install free of web
frameworks (starlette/uvicorn only come with the ``ray`` extra).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from dxai.configs.errors import DxaiError, IntakeAuthError
from dxai.daemon.events.codec import MAX_EVENT_BYTES
from dxai.daemon.intake.submit import Submit
from dxai.daemon.intake.tcp import TcpListener, close_quietly
from dxai.daemon.intake.webhook_auth import WebhookAuth
from dxai.observability.logging import get_logger
from dxai.observability.metrics import Sensor

log = get_logger(__name__)
READ_TIMEOUT_S = 15.0
MAX_HEADER_BYTES = 16_384
_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized"}
_REASONS |= {404: "Not Found"}
_REASONS |= {405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large"}
_REASONS |= {500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass
class HttpRequest:
    """The parts of a request the webhook looks at."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class HttpError(Exception):
    """A request the server answers with ``status`` without routing it."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


async def read_request(reader: asyncio.StreamReader) -> HttpRequest:
    """Parse one request (request line, headers, Content-Length body)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise HttpError(413) from exc
    except asyncio.IncompleteReadError as exc:
        raise HttpError(400) from exc
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400)
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    request = HttpRequest(parts[0].upper(), parts[1].split("?", 1)[0], headers)
    if request.method == "POST":
        request.body = await _read_body(reader, headers)
    return request


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "content-length" not in headers:
        raise HttpError(411)
    try:
        length = int(headers["content-length"])
    except ValueError as exc:
        raise HttpError(400) from exc
    if length < 0 or length > MAX_EVENT_BYTES:
        raise HttpError(413)
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise HttpError(400) from exc


def render(status: int, payload: dict[str, object]) -> bytes:
    """A complete HTTP/1.1 response with a JSON body."""
    body = json.dumps(payload).encode("utf-8")
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class Webhook(TcpListener):
    """The webhook server; ``await start(host, port)`` returns the bound port."""

    component = "webhook"
    read_limit_bytes = MAX_HEADER_BYTES

    def __init__(self, submit: Submit, sensor: Sensor, auth: WebhookAuth | None = None) -> None:
        self.submit = submit
        self.sensor = sensor
        self.auth = auth
        super().__init__()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(read_request(reader), READ_TIMEOUT_S)
            status, payload = await self.route(request)
        except HttpError as exc:
            status, payload = exc.status, {"error": _REASONS.get(exc.status, "error")}
        except TimeoutError:
            status, payload = 400, {"error": "timeout"}
        try:
            writer.write(render(status, payload))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            await close_quietly(writer)

    async def route(self, request: HttpRequest) -> tuple[int, dict[str, object]]:
        """Dispatch one parsed request to its handler; (status, JSON payload)."""
        if request.path == "/healthz":
            return (200, {"status": "ok"}) if request.method == "GET" else (405, {})
        if request.path != "/events":
            return 404, {"error": "not found"}
        if request.method != "POST":
            return 405, {"error": "use POST"}
        try:
            if not await self._authorized(request):
                return 401, {"error": IntakeAuthError.code}
        except DxaiError as exc:
            return 503, {"error": exc.code}
        try:
            admission = await self.submit(request.body, request.headers.get("traceparent"), "http")
        except DxaiError as exc:
            status = 503 if exc.retriable else 500
            return status, {"error": exc.code}
        status = 400 if admission == "dead_letter" else 202
        return status, {"status": admission}

    async def _authorized(self, request: HttpRequest) -> bool:
        """True when no authentication is configured or the request carries valid credentials."""
        if self.auth is None or await self.auth.verify(request.headers, request.body):
            return True
        code = IntakeAuthError.code
        self.sensor.count("errors", {"component": "webhook", "error_code": code})
        log.warning("webhook request refused", extra={"error_code": code})
        return False
