"""DIMSE retrieve pieces without a peer: contexts, statuses, the thread-to-loop file hand-over."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from dxai.configs.errors import (
    RetrieveIncompleteError,
    RetrieveRefusedError,
    ServiceUnavailableError,
)
from dxai.daemon.gateways import FolderSink
from dxai.daemon.gateways.dimse import _check_find
from dxai.daemon.gateways.dimse_move import MoveCounts, check_retrieve
from dxai.daemon.gateways.dimse_retrieve import (
    COMPRESSED,
    MAX_REQUESTED_CONTEXTS,
    UNCOMPRESSED,
    RetrieveControl,
    storage_contexts,
    stream_received,
)

MR, CT = "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.2"


def test_one_context_per_compressed_syntax_for_each_sop_class() -> None:
    assert pydicom.uid.JPEG2000Lossless in COMPRESSED and pydicom.uid.JPEGLSLossless in COMPRESSED
    plan = storage_contexts([MR, CT, MR], MAX_REQUESTED_CONTEXTS - 1)
    assert len(plan) == 2 * (1 + len(COMPRESSED))
    for sop in (MR, CT):
        syntaxes = [s for a, ts in plan if a == sop for s in ts]
        assert sorted(syntaxes) == sorted([*UNCOMPRESSED, *COMPRESSED])
    assert all(len(ts) == 1 for _a, ts in plan if ts[0] not in UNCOMPRESSED)
    uncompressed_only = storage_contexts([MR], 10, compressed=False)
    assert uncompressed_only == [(MR, list(UNCOMPRESSED))]


def test_contexts_stay_within_the_association_limit() -> None:
    many = [f"1.2.3.{i}" for i in range(40)]
    plan = storage_contexts(many, MAX_REQUESTED_CONTEXTS - 1)
    assert len(plan) == MAX_REQUESTED_CONTEXTS - 1
    assert {a for a, _ts in plan} == set(many)  # every class keeps its uncompressed context
    fallback = storage_contexts([], MAX_REQUESTED_CONTEXTS - 1)
    assert 0 < len(fallback) <= MAX_REQUESTED_CONTEXTS - 1
    assert all(ts == [*UNCOMPRESSED, *COMPRESSED] for _a, ts in fallback)


@pytest.mark.parametrize(
    ("code", "counts", "failures", "error"),
    [
        (0xC000, MoveCounts(completed=2, failed=1), 0, RetrieveIncompleteError),  # Orthanc C-GET
        (0x0000, MoveCounts(completed=2), 1, RetrieveIncompleteError),  # we could not write one
        (0xC000, MoveCounts(), 0, RetrieveRefusedError),
    ],
)
def test_failed_sub_operations_are_incomplete_not_refused(
    code: int, counts: MoveCounts, failures: int, error: type[Exception]
) -> None:
    with pytest.raises(error, match="C-GET"):
        check_retrieve(code, counts, counts.completed, "SOURCE", "C-GET", failures=failures)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (-1, ServiceUnavailableError),
        (0xFF00, ServiceUnavailableError),
        (0xA700, ServiceUnavailableError),
        (0xFE00, ServiceUnavailableError),
        (0xA900, RetrieveRefusedError),
        (0xC000, RetrieveRefusedError),
    ],
)
def test_a_failed_c_find_is_never_an_empty_answer(code: int, error: type[Exception]) -> None:
    _check_find(0x0000, "SOURCE")
    with pytest.raises(error):
        _check_find(code, "SOURCE")


Run = Callable[[Callable[[Path], None], RetrieveControl], object]


def _writer(folder: Path, count: int, fail: Exception | None = None) -> Run:
    """A fake retrieve writing ``count`` files, then raising ``fail`` (if any)."""

    def run(on_file: Callable[[Path], None], control: RetrieveControl) -> None:
        for index in range(count):
            path = folder / f"{index}.dcm"
            path.write_bytes(f"instance {index}".encode())
            on_file(path)
        if fail is not None:
            raise fail

    return run


async def test_files_are_yielded_in_order_read_once_and_the_folder_removed(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "series"
    folder.mkdir()
    got = [raw async for raw in stream_received(_writer(folder, 5), folder)]
    assert got == [f"instance {i}".encode() for i in range(5)]
    assert not folder.exists()


async def test_the_retrieve_error_comes_after_the_files(tmp_path: Path) -> None:
    folder = tmp_path / "series"
    folder.mkdir()
    got = []
    with pytest.raises(RetrieveIncompleteError):
        async for raw in stream_received(_writer(folder, 3, RetrieveIncompleteError("x")), folder):
            got.append(raw)
    assert len(got) == 3 and not folder.exists()


async def test_a_consumer_that_stops_early_cancels_the_retrieve(tmp_path: Path) -> None:
    folder = tmp_path / "series"
    folder.mkdir()
    stopped = threading.Event()

    def run(on_file: Callable[[Path], None], control: RetrieveControl) -> None:
        index = 0
        while not control.stop.wait(0.01):  # an archive that keeps sending until stopped
            path = folder / f"{index}.dcm"
            path.write_bytes(b"x")
            on_file(path)
            index += 1
        stopped.set()

    stream = stream_received(run, folder)
    assert await anext(stream) == b"x"
    await stream.aclose()
    assert stopped.is_set() and not folder.exists()


async def test_folder_sink_reads_files_one_at_a_time(tmp_path: Path) -> None:
    src = get_testdata_file("CT_small.dcm")
    assert src is not None
    staged = tmp_path / "staged.dcm"
    shutil.copy(src, staged)
    report = await FolderSink(tmp_path / "out").store([staged, tmp_path / "missing.dcm"])
    assert report.stored == 1 and report.failed_uids == ("index-1",)
    ds = pydicom.dcmread(src)
    out = tmp_path / "out" / ds.StudyInstanceUID / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"
    assert out.read_bytes() == staged.read_bytes()


def test_an_endless_c_find_answer_is_cut_at_the_match_bound() -> None:
    """A peer answering a C-FIND with pending matches without end (a million here) is cut off
    once it passes ``max_find_matches``: the association is aborted, nothing more is held."""
    from pydicom.dataset import Dataset
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    from dxai.configs.schema.services import DimseEndpoint
    from dxai.daemon.gateways.answers import AnswerTooLargeError
    from dxai.daemon.gateways.dimse import c_find_series_blocking

    sent = [0]

    def endless(event: evt.Event) -> object:
        for index in range(1_000_000):
            if event.assoc.is_aborted:
                return
            ident = Dataset()
            ident.QueryRetrieveLevel = "SERIES"
            ident.SeriesInstanceUID = f"1.2.3.{index}"
            sent[0] += 1
            yield 0xFF00, ident

    scp = AE(ae_title="HOSTILE")
    scp.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    server = scp.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_FIND, endless)]
    )
    try:
        port = server.server_address[1]
        peer = DimseEndpoint(ae_title="HOSTILE", host="127.0.0.1", port=port, max_find_matches=50)
        with pytest.raises(AnswerTooLargeError, match="more than 50 matches"):
            c_find_series_blocking(peer, "DXAI", "1.2.3")
    finally:
        server.shutdown()
    assert 50 < sent[0] < 1_000
