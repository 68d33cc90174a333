"""C-MOVE source: method checks, status mapping, the move destination from config, who may send."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from dxai.configs.errors import (
    PermanentError,
    RetrieveIncompleteError,
    RetrieveRefusedError,
    ServiceUnavailableError,
    SourceNotAllowedError,
)
from dxai.configs.schema.root import DxaiConfig
from dxai.configs.schema.services import DimseEndpoint
from dxai.daemon.app import make_source_factory
from dxai.daemon.events import StudyEvent
from dxai.daemon.gateways import DimseSource, MoveTarget
from dxai.daemon.gateways.dimse_move import MoveCounts, Receiver, _start_scp, check_retrieve

PEER = DimseEndpoint(ae_title="SOURCE", host="127.0.0.1", port=4242)


def test_unsupported_method_is_permanent_never_a_fallback() -> None:
    with pytest.raises(PermanentError, match="unsupported"):
        DimseSource(PEER, "DXAI", "c-echo")
    with pytest.raises(PermanentError, match="move destination"):
        DimseSource(PEER, "DXAI", "c-move")
    source = DimseSource(PEER, "DXAI", "c-move", MoveTarget("DXAIMOVE", 11113))
    assert source.method == "c-move" and source.move_target is not None


def test_success_with_every_sub_operation_received_passes() -> None:
    check_retrieve(0x0000, MoveCounts(completed=3), 3, "SOURCE")
    check_retrieve(0x0000, MoveCounts(), 0, "SOURCE")  # an empty series


@pytest.mark.parametrize(
    ("code", "counts", "received", "error"),
    [
        (0xA801, MoveCounts(), 0, RetrieveRefusedError),
        (0xA900, MoveCounts(), 0, RetrieveRefusedError),
        (0xC000, MoveCounts(), 0, RetrieveRefusedError),
        (0xA702, MoveCounts(), 0, ServiceUnavailableError),
        (0xB000, MoveCounts(completed=2, failed=1), 2, RetrieveIncompleteError),
        (0xFE00, MoveCounts(completed=1, remaining=2), 1, RetrieveIncompleteError),
        (0xFF00, MoveCounts(completed=1, remaining=1), 1, RetrieveIncompleteError),
        (0x0000, MoveCounts(completed=3), 2, RetrieveIncompleteError),
        (0x0000, MoveCounts(completed=2, warning=1), 3, RetrieveIncompleteError),
    ],
)
def test_other_outcomes_raise(code: int, counts: MoveCounts, received: int, error: type) -> None:
    with pytest.raises(error):
        check_retrieve(code, counts, received, "SOURCE")


def _event(**source: Any) -> StudyEvent:
    src = {"kind": "dimse", "ae_title": "SOURCE", "host": "127.0.0.1", "port": 4242, **source}
    return StudyEvent.model_validate(
        {
            "event_type": "study_received",
            "study_uid": "1.2.3",
            "destination": "dest",
            "exchange_job_id": "j1",
            "source": src,
        }
    )


def _config(tmp: Path, mode: str, **spec: Any) -> DxaiConfig:
    pacs = {"kind": "dimse", "ae_title": "SOURCE", "host": "127.0.0.1", "port": 4242, **spec}
    data: dict[str, Any] = {
        "mode": mode,
        "state": {"data_dir": str(tmp)},
        "sources": {"pacs": pacs},
    }
    if mode == "production":
        data["kafka"] = {"bootstrap_servers": "127.0.0.1:9092"}
    return DxaiConfig.model_validate(data)


def test_move_destination_comes_from_config(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"sources\.pacs\.move_destination_port: required"):
        _config(tmp_path, "embedded", method="c-move", move_destination_ae="MV")
    embedded = make_source_factory(
        _config(
            tmp_path, "embedded", method="c-move", move_destination_ae="MV", move_destination_port=9
        )
    )
    source = embedded(_event())
    assert isinstance(source, DimseSource)
    assert source.move_target == MoveTarget("MV", 9, sender_ae="SOURCE")
    assert source.work_dir == tmp_path / "moves"
    same = embedded(_event(method="c-move", move_destination_ae="MV", move_destination_port=9))
    assert isinstance(same, DimseSource) and same.move_target == source.move_target
    for other in (
        {"move_destination_port": 10},
        {"move_destination_ae": "EVIL"},
        {"method": "c-get"},
    ):
        with pytest.raises(SourceNotAllowedError):
            embedded(_event(**other))
    with pytest.raises(ValidationError, match="landing zone"):
        _config(tmp_path, "embedded", method="c-move", move_destination_port=11112)
    production = make_source_factory(_config(tmp_path, "production", method="c-move"))
    source = production(_event())
    assert isinstance(source, DimseSource)
    assert source.move_target == MoveTarget("DXAI", 11112, sender_ae="SOURCE")
    c_get = make_source_factory(_config(tmp_path, "production"))
    assert isinstance(c_get(_event()), DimseSource)
    with pytest.raises(SourceNotAllowedError):
        c_get(_event(move_destination_port=9))  # a C-GET source has no move destination


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _associate_as(calling_ae: str, target: MoveTarget) -> Any:
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(CTImageStorage)
    ae.acse_timeout = ae.network_timeout = 10
    return ae.associate(target.host, target.port, ae_title=target.ae_title)


def test_move_scp_takes_only_the_archive(tmp_path: Path) -> None:
    target = MoveTarget("DXAIMOVE", _free_port())
    receiver = Receiver(tmp_path)
    server = _start_scp(target, receiver, "SOURCE")
    try:
        stranger = _associate_as("STRANGER", target)
        assert stranger.is_rejected and not stranger.is_established
        archive = _associate_as("SOURCE", target)
        assert archive.is_established
        ct = get_testdata_file("CT_small.dcm")
        assert ct is not None
        status = archive.send_c_store(dcmread(ct))
        archive.release()
    finally:
        server.shutdown()
    assert status.Status == 0x0000 and len(receiver.paths) == 1
