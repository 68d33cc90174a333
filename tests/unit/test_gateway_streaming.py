"""Streaming gateways: the incremental multipart parser, WADO-RS memory, STOW-RS pieces."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from dxai.configs.errors import PermanentError, RetrieveIncompleteError
from dxai.configs.schema.services import DicomWebEndpoint
from dxai.daemon.gateways.dicomweb import DicomWebGateway
from dxai.daemon.gateways.multipart import (
    MultipartBody,
    MultipartError,
    MultipartParser,
    MultipartPartTooLargeError,
    MultipartTruncatedError,
    build_multipart,
    split_multipart,
    stow_pieces,
)

STUDY, SERIES = "1.2.3", "1.2.3.4"
# parts that look like delimiters, CRLFs and header ends, and an empty one
PARTS = [b"\r\n--not-it\r\n\r\n" * 3, b"", b"--", b"\r\n", b"DICM" + bytes(range(256))]


def _parse(chunks: list[bytes], content_type: str) -> list[bytes]:
    parser = MultipartParser(content_type)
    parts = [part for chunk in chunks for part in parser.feed(chunk)]
    parser.close()
    return parts


def test_parts_split_at_every_byte_offset() -> None:
    body, content_type = build_multipart(PARTS)
    for cut in range(len(body) + 1):
        assert _parse([body[:cut], body[cut:]], content_type) == PARTS, cut
    assert _parse([body[i : i + 1] for i in range(len(body))], content_type) == PARTS


def test_preamble_epilogue_padding_and_headerless_parts() -> None:
    body = (
        b"preamble\r\n--b  \r\n\r\none\r\n--b\r\nContent-Type: application/dicom\r\n"
        b"Content-Location: x\r\n\r\ntwo\r\n--b--\r\nepilogue --b\r\n"
    )
    assert _parse([body], 'multipart/related; boundary="b"') == [b"one", b"two"]
    assert split_multipart(body, "multipart/related; type=x; boundary=b") == [b"one", b"two"]


def test_truncated_or_boundaryless_bodies_raise() -> None:
    body, content_type = build_multipart([b"one", b"two"])
    for cut in (len(body) - 3, len(body) // 2, 0):
        parser = MultipartParser(content_type)
        parser.feed(body[:cut])
        with pytest.raises(MultipartTruncatedError):
            parser.close()
    with pytest.raises(MultipartError):
        MultipartParser("multipart/related")


def test_parser_holds_one_part_at_most() -> None:
    size, count, chunk = 256 * 1024, 24, 4096
    parts = [bytes([i]) * size for i in range(count)]
    body, content_type = build_multipart(parts)
    parser = MultipartParser(content_type)
    got, peak = [], 0
    for at in range(0, len(body), chunk):
        got += parser.feed(body[at : at + chunk])
        peak = max(peak, parser.buffered)
    parser.close()
    assert got == parts
    assert peak <= size + 2 * chunk < len(body) // 10


def test_a_part_past_the_bound_raises_as_it_grows() -> None:
    body, content_type = build_multipart([b"a" * 1000, b"b" * 5000, b"c" * 10])
    parser = MultipartParser(content_type, max_part_bytes=4096)
    got = parser.feed(body[:2000])
    assert got == [b"a" * 1000]
    with pytest.raises(MultipartPartTooLargeError) as caught:
        for at in range(2000, len(body), 512):
            got += parser.feed(body[at : at + 512])
    assert caught.value.code == "instance_too_large"
    assert isinstance(caught.value, PermanentError)  # a retry would stream it again


def _gateway(handle: Callable[[httpx.Request], httpx.Response], **endpoint: int) -> DicomWebGateway:
    base = "http://peer.example/dicom-web"
    gateway = DicomWebGateway(DicomWebEndpoint(base_url=base, **endpoint))
    gateway._http = httpx.AsyncClient(base_url=base, transport=httpx.MockTransport(handle))
    return gateway


def _qido(count: int | None) -> httpx.Response:
    row: dict[str, object] = {"0020000E": {"vr": "UI", "Value": [SERIES]}}
    if count is not None:
        row["00201209"] = {"vr": "IS", "Value": [count]}
    return httpx.Response(200, json=[row])


def _streamed_series(count: int, size: int, chunk: int, *, close: bool = True) -> httpx.Response:
    """A WADO-RS answer of ``count`` parts of ``size`` bytes, generated lazily in chunks."""
    boundary = "b0undary"

    async def body() -> AsyncIterator[bytes]:
        for index in range(count):
            yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            for _ in range(0, size, chunk):
                yield bytes([index % 251]) * chunk
            yield b"\r\n"
        if close:
            yield f"--{boundary}--\r\n".encode()

    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return httpx.Response(200, content=body(), headers={"content-type": content_type})


async def test_wado_series_streams_in_bounded_memory() -> None:
    count, size, chunk = 32, 1024 * 1024, 16 * 1024

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/series"):
            return _qido(count)
        return _streamed_series(count, size, chunk)

    gateway = _gateway(handle)
    assert await gateway.list_series(STUDY) == [SERIES]
    seen = 0
    tracemalloc.start()
    try:
        async for part in gateway.iter_instances(STUDY, SERIES):
            assert len(part) == size and part[:1] == part[-1:] == bytes([seen % 251])
            seen += 1
            del part
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count
    assert peak < 3 * size < count * size  # about two instances, never the series
    await gateway.aclose()


@pytest.mark.parametrize("single", [False, True], ids=["multipart", "application-dicom"])
async def test_an_endless_instance_is_refused_at_the_bound(single: bool) -> None:
    """An archive streaming one instance without end (10 GiB here, generated lazily) is
    refused once it passes ``max_instance_bytes``, having held no more than that."""
    chunk = 1024 * 1024

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/series"):
            return _qido(1)
        if not single:
            return _streamed_series(1, 10 * 1024 * chunk, chunk)

        async def endless() -> AsyncIterator[bytes]:
            for _ in range(10 * 1024):
                yield b"\0" * chunk

        return httpx.Response(200, content=endless(), headers={"content-type": "application/dicom"})

    gateway = _gateway(handle, max_instance_bytes=8 * chunk)
    with pytest.raises(MultipartPartTooLargeError):
        async for _part in gateway.iter_instances(STUDY, SERIES):
            pass
    await gateway.aclose()


@pytest.mark.parametrize(
    ("reported", "close", "complete"),
    [(4, True, 3), (3, False, 2)],
    ids=["shortfall", "cut-body"],
)
async def test_wado_series_short_of_the_qido_count_raises(
    reported: int, close: bool, complete: int
) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/series"):
            return _qido(reported)
        return _streamed_series(3, 100, 10, close=close)

    gateway = _gateway(handle)
    got = []
    with pytest.raises(RetrieveIncompleteError):
        async for part in gateway.iter_instances(STUDY, SERIES):  # count asked for now
            got.append(part)
    assert len(got) == complete  # yielded as they came; the verdict comes after the last


async def test_wado_series_with_unreported_count_passes() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/series"):
            assert request.url.params["includefield"] == "00201209"
            return _qido(None)
        return _streamed_series(2, 100, 10)

    gateway = _gateway(handle)
    assert len([p async for p in gateway.iter_instances(STUDY, SERIES)]) == 2


def test_stow_pieces_respect_count_and_bytes() -> None:
    assert stow_pieces([1] * 7, 3, 100) == [range(0, 3), range(3, 6), range(6, 7)]
    assert stow_pieces([5, 5, 5, 20, 1], 10, 10) == [
        range(0, 2),
        range(2, 3),
        range(3, 4),
        range(4, 5),
    ]
    assert stow_pieces([], 3, 3) == []


def _stow_recorder(
    bodies: list[list[bytes]], refuse: str = ""
) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST" and request.url.path.endswith("/studies")
        assert "transfer-encoding" not in request.headers
        body = request.content
        assert int(request.headers["content-length"]) == len(body)
        bodies.append(split_multipart(body, request.headers["content-type"]))
        if refuse and any(refuse.encode() in part for part in bodies[-1]):
            failed = {"00081155": {"vr": "UI", "Value": [refuse]}}
            return httpx.Response(200, json={"00081198": {"vr": "SQ", "Value": [failed]}})
        return httpx.Response(200, json={})

    return handle


async def test_stow_sends_bounded_requests_of_bytes_and_files(tmp_path: Path) -> None:
    instances: list[bytes | Path] = []
    for index in range(7):
        data = f"instance-{index}-".encode() * 100
        if index % 2:
            path = tmp_path / f"{index}.dcm"
            path.write_bytes(data)
            instances.append(path)
        else:
            instances.append(data)
    bodies: list[list[bytes]] = []
    gateway = _gateway(_stow_recorder(bodies, refuse="instance-4-"), stow_max_instances=3)
    report = await gateway.store(instances)
    assert [len(b) for b in bodies] == [3, 3, 1]
    expected = [i.read_bytes() if isinstance(i, Path) else i for i in instances]
    assert [part for body in bodies for part in body] == expected
    assert report.stored == 6 and report.failed_uids == ("instance-4-",)


async def test_stow_bytes_limit_and_oversized_instance() -> None:
    bodies: list[list[bytes]] = []
    gateway = _gateway(_stow_recorder(bodies), stow_max_bytes=2048)
    report = await gateway.store([b"a" * 1000, b"b" * 1000, b"c" * 5000, b"d" * 10])
    assert [len(b) for b in bodies] == [2, 1, 1] and report.stored == 4


async def test_multipart_body_refuses_a_file_that_changed(tmp_path: Path) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(b"x" * 10)
    body = MultipartBody([path], [10])
    path.write_bytes(b"x" * 11)
    with pytest.raises(PermanentError, match="changed size"):
        [block async for block in body]
