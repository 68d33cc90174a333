"""C-MOVE source: method checks, status mapping and the move destination from event/config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dxai.configs.errors import (
    ConfigError,
    PermanentError,
    RetrieveIncompleteError,
    RetrieveRefusedError,
    ServiceUnavailableError,
)
from dxai.configs.schema.root import DxaiConfig
from dxai.configs.schema.services import DimseEndpoint
from dxai.daemon.app import make_source_factory
from dxai.daemon.events import StudyEvent
from dxai.daemon.gateways import DimseSource, MoveTarget
from dxai.daemon.gateways.dimse_move import MoveCounts, _check

PEER = DimseEndpoint(ae_title="SOURCE", host="127.0.0.1", port=4242)


def test_unsupported_method_is_permanent_never_a_fallback() -> None:
    with pytest.raises(PermanentError, match="unsupported"):
        DimseSource(PEER, "DXAI", "c-echo")
    with pytest.raises(PermanentError, match="move destination"):
        DimseSource(PEER, "DXAI", "c-move")
    source = DimseSource(PEER, "DXAI", "c-move", MoveTarget("DXAIMOVE", 11113))
    assert source.method == "c-move" and source.move_target is not None


def test_success_with_every_sub_operation_received_passes() -> None:
    _check(0x0000, MoveCounts(completed=3), 3, "SOURCE")
    _check(0x0000, MoveCounts(), 0, "SOURCE")  # an empty series


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
        _check(code, counts, received, "SOURCE")


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


def _config(tmp: Path, mode: str) -> DxaiConfig:
    data: dict[str, Any] = {"mode": mode, "state": {"data_dir": str(tmp)}}
    if mode == "production":
        data["kafka"] = {"bootstrap_servers": "127.0.0.1:9092"}
    return DxaiConfig.model_validate(data)


def test_move_destination_from_event_or_config(tmp_path: Path) -> None:
    embedded = make_source_factory(_config(tmp_path, "embedded"))
    source = embedded(_event(method="c-move", move_destination_ae="MV", move_destination_port=9))
    assert isinstance(source, DimseSource) and source.move_target == MoveTarget("MV", 9)
    assert source.work_dir == tmp_path / "moves"
    with pytest.raises(ConfigError):
        embedded(_event(method="c-move"))  # the landing zone owns embedded.dicom_port
    with pytest.raises(ConfigError):
        embedded(_event(method="c-move", move_destination_port=11112))
    production = make_source_factory(_config(tmp_path, "production"))
    source = production(_event(method="c-move"))
    assert isinstance(source, DimseSource) and source.move_target == MoveTarget("DXAI", 11112)
    assert isinstance(production(_event()), DimseSource)
