"""Webhook authentication: bearer token and/or HMAC signature; 401 is answered and counted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from dxai.configs.errors import ConfigError
from dxai.configs.schema.root import DxaiConfig, EmbeddedIntakeConfig
from dxai.daemon.intake.embedded import EmbeddedIntake
from dxai.daemon.intake.webhook import HttpRequest, Webhook
from dxai.daemon.intake.webhook_auth import WebhookAuth, sign
from dxai.daemon.pipeline import Admission
from dxai.observability.metrics import Sensor

BODY = b'{"event": "bytes as sent"}'
TOKEN = "t0k3n-for-tests"
SECRET = b"hmac-secret-for-tests"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[bytes] = []

    async def __call__(self, raw: bytes, traceparent: str | None, origin: str) -> Admission:
        self.calls.append(raw)
        return "accepted"


def _auth(tmp: Path, token: bool, secret: bool) -> WebhookAuth:
    token_file, secret_file = tmp / "token", tmp / "secret"
    token_file.write_text(TOKEN + "\n")
    secret_file.write_bytes(SECRET + b"\n")
    auth = WebhookAuth.from_config(
        EmbeddedIntakeConfig(
            webhook_bearer_token_file=str(token_file) if token else None,
            webhook_hmac_secret_file=str(secret_file) if secret else None,
        )
    )
    assert auth is not None
    return auth


def _post(**headers: str) -> HttpRequest:
    return HttpRequest("POST", "/events", {k.lower(): v for k, v in headers.items()}, BODY)


def _unauthorized(sensor: Sensor) -> float:
    labels = {"component": "webhook", "error_code": "intake_unauthorized"}
    return sensor.registry.get_sample_value("dxai_errors_total", labels) or 0.0


async def test_bearer_token(tmp_path: Path) -> None:
    submit, sensor = Recorder(), Sensor()
    hook = Webhook(submit, sensor, _auth(tmp_path, token=True, secret=False))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        assert await hook.route(_post(**headers)) == (401, {"error": "intake_unauthorized"})
    assert submit.calls == [] and _unauthorized(sensor) == 3
    assert (await hook.route(_post(Authorization=f"Bearer {TOKEN}")))[0] == 202
    assert submit.calls == [BODY]
    assert (await hook.route(HttpRequest("GET", "/healthz")))[0] == 200  # probes stay open


async def test_hmac_signature_of_the_raw_body(tmp_path: Path) -> None:
    submit, sensor = Recorder(), Sensor()
    hook = Webhook(submit, sensor, _auth(tmp_path, token=False, secret=True))
    good = sign(SECRET, BODY)
    assert good.startswith("sha256=") and len(good) == 7 + 64
    for value in ("", "sha256=" + "0" * 64, sign(b"other", BODY), sign(SECRET, BODY + b" ")):
        assert (await hook.route(_post(**{"X-Dxai-Signature": value})))[0] == 401
    assert (await hook.route(_post(**{"X-Dxai-Signature": good.upper()})))[0] == 202
    assert submit.calls == [BODY] and _unauthorized(sensor) == 4


async def test_both_configured_needs_both(tmp_path: Path) -> None:
    hook = Webhook(Recorder(), Sensor(), _auth(tmp_path, token=True, secret=True))
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    signed = {"X-Dxai-Signature": sign(SECRET, BODY)}
    assert (await hook.route(_post(**bearer)))[0] == 401
    assert (await hook.route(_post(**signed)))[0] == 401
    assert (await hook.route(_post(**bearer, **signed)))[0] == 202


async def test_unreadable_or_empty_credentials(tmp_path: Path) -> None:
    auth = _auth(tmp_path, token=True, secret=False)
    auth.check()
    (tmp_path / "token").write_text("  \n")
    with pytest.raises(ConfigError, match="empty"):
        auth.check()
    assert (await Webhook(Recorder(), Sensor(), auth).route(_post(Authorization="Bearer ")))[
        0
    ] == 401
    (tmp_path / "token").unlink()
    with pytest.raises(ConfigError):
        auth.check()
    answer = await Webhook(Recorder(), Sensor(), auth).route(_post(Authorization="Bearer x"))
    assert answer == (503, {"error": "service_unavailable"})


async def test_over_http(tmp_path: Path) -> None:
    submit = Recorder()
    hook = Webhook(submit, Sensor(), _auth(tmp_path, token=True, secret=False))
    port = await hook.start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            refused = await http.post("/events", content=BODY)
            wrong = await http.post("/events", content=BODY, headers={"Authorization": "Bearer x"})
            ok = await http.post(
                "/events", content=BODY, headers={"Authorization": f"Bearer {TOKEN}"}
            )
        too_big = await _raw_head(port, 2_000_001)
    finally:
        await asyncio.wait_for(hook.stop(), 10)
    assert (refused.status_code, wrong.status_code, ok.status_code) == (401, 401, 202)
    assert too_big.startswith(b"HTTP/1.1 413") and submit.calls == [BODY]


async def _raw_head(port: int, length: int) -> bytes:
    """The answer to a POST whose head announces ``length`` body bytes (none sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST /events HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n"
    writer.write(f"{head}Content-Length: {length}\r\n\r\n".encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


async def test_embedded_intake_refuses_to_start_with_unreadable_credentials(
    tmp_path: Path,
) -> None:
    config = DxaiConfig.model_validate(
        {
            "state": {"data_dir": str(tmp_path / "data")},
            "embedded": {
                "bind_host": "0.0.0.0",
                "webhook_bearer_token_file": str(tmp_path / "absent-token"),
                "dicom_port": 0,
                "http_port": 0,
                "mllp_port": 0,
            },
        }
    )
    intake = EmbeddedIntake(config, Recorder(), Sensor())
    with pytest.raises(ConfigError, match="cannot be read"):
        await intake.start()
    assert intake.ports is None
