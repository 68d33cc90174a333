"""The inbound ORU^R01: parses back with python-hl7, escapes hostile values, maps priorities."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import hl7
import pytest
from pydicom.dataset import Dataset

from dxai.actors.inbound.findings import Finding, TaskReport, report_of
from dxai.actors.inbound.oru import InvalidAckError, build_oru, parse_ack
from dxai.configs.schema.clinical_out import Hl7OutConfig

NOW = datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC)
STUDY_UID = "1.2.826.0.1.3680043.10.1137.77"
SR = (
    "1.2.826.0.1.3680043.10.1137.77",
    "1.2.826.0.1.3680043.10.1137.78",
    "1.2.826.0.1.3680043.10.1137.79",
)


def _header(**overrides: str) -> Dataset:
    ds = Dataset()
    ds.PatientName = "DOE^JANE^Q^DR^III"
    ds.PatientID = "PID-0042"
    ds.IssuerOfPatientID = "HOSP"
    ds.PatientBirthDate = "19800215"
    ds.PatientSex = "F"
    ds.AccessionNumber = "ACC-7"
    ds.StudyInstanceUID = STUDY_UID
    ds.StudyDate, ds.StudyTime = "20240303", "101112.123"
    ds.StudyDescription = "CT HEAD"
    for key, value in overrides.items():
        setattr(ds, key, value)
    return ds


def _reports(message: str = "slice gap 5 mm") -> list[TaskReport]:
    gap = Finding("qc.slice_gap", "warning", message, "qc", value=5.0, unit="mm")
    ich = Finding("ai.ich", "blocking", "ich score 0.93", "ich", score=0.93)
    note = Finding("ai.note", "info", "no mass effect", "ich")
    return [report_of("qc", [gap]), report_of("ich", [ich, note])]


def _build(header: Dataset | None = None, **kwargs: Any) -> str:
    args: dict[str, Any] = {
        "priority": "stat",
        "reports": _reports(),
        "sr_study_uid": SR[0],
        "sr_series_uid": SR[1],
        "sr_sop_uid": SR[2],
        "summary": "2 tasks\nICH suspected",
        "config": Hl7OutConfig(),
        "control_id": "CTRL-1",
        "now": NOW,
    }
    args.update(kwargs)
    return build_oru(header if header is not None else _header(), **args)


def _obx(msg: Any, ident: str) -> list[Any]:
    return [seg for seg in msg.segments("OBX") if seg.extract_field(1, 3, 1, 1) == ident]


def test_message_parses_back_with_header_patient_and_order() -> None:
    text = _build()
    assert text.endswith("\r") and "\n" not in text
    msg = hl7.parse(text)
    assert [str(seg[0]) for seg in msg][:5] == ["MSH", "PID", "ORC", "OBR", "ZDS"]
    assert msg["MSH.F9.R1.C1"] == "ORU" and msg["MSH.F9.R1.C3"] == "ORU_R01"
    assert (msg["MSH.F10"], msg["MSH.F11"], msg["MSH.F12"]) == ("CTRL-1", "P", "2.5")
    assert msg["MSH.F7"] == "20240304050607+0000"
    assert (msg["PID.F3.R1.C1"], msg["PID.F3.R1.C4"]) == ("PID-0042", "HOSP")
    assert (msg["PID.F5.R1.C1"], msg["PID.F5.R1.C2"], msg["PID.F5.R1.C5"]) == ("DOE", "JANE", "DR")
    assert (msg["PID.F7"], msg["PID.F8"]) == ("19800215", "F")
    assert (msg["ORC.F2"], msg["ORC.F3"], msg["OBR.F18"]) == ("ACC-7", "ACC-7", "ACC-7")
    assert (msg["OBR.F25"], msg["OBR.F7"]) == ("F", "20240303101112")
    assert msg["OBR.F4.R1.C2"] == "CT HEAD"
    assert msg["ZDS.F1.R1.C1"] == STUDY_UID


def test_findings_carry_code_message_and_severity_flags() -> None:
    msg = hl7.parse(_build())
    qc = _obx(msg, "qc")
    assert [seg.extract_field(1, 2) for seg in qc] == ["CWE", "NM"]
    assert qc[0].extract_field(1, 5, 1, 1) == "qc.slice_gap"
    assert qc[0].extract_field(1, 5, 1, 2) == "slice gap 5 mm"
    assert qc[0].extract_field(1, 5, 1, 3) == "DXAI"
    assert qc[0].extract_field(1, 8) == "A"
    assert (qc[1].extract_field(1, 5), qc[1].extract_field(1, 6, 1, 1)) == ("5", "mm")
    flags = {seg.extract_field(1, 5, 1, 1): seg.extract_field(1, 8) for seg in _obx(msg, "ich")}
    assert flags == {"ai.ich": "AA", "ai.note": "N"}
    numbers = [seg.extract_field(1, 1) for seg in msg.segments("OBX")]
    assert numbers == [str(n) for n in range(1, len(numbers) + 1)]


def test_hostile_values_round_trip() -> None:
    hostile = "a|b^c&d~e\\f\\E\\ end"
    header = _header(PatientID="X|1^2&3~4", PatientName="O|B&C~D^ANN")
    text = _build(header, reports=_reports(hostile), summary=f"line {hostile}\rMSH|^~\\&|EVIL")
    msg = hl7.parse(text)
    assert len(msg) == len(hl7.parse(_build()))
    assert msg["PID.F3.R1.C1"] == "X|1^2&3~4"
    assert (msg["PID.F5.R1.C1"], msg["PID.F5.R1.C2"]) == ("O|B&C~D", "ANN")
    assert _obx(msg, "qc")[0].extract_field(1, 5, 1, 2) == hostile
    lines = [seg.extract_field(1, 5) for seg in _obx(msg, "summary")]
    assert lines == [f"line {hostile}", "MSH|^~\\&|EVIL"]
    assert len(msg.segments("MSH")) == 1


def test_non_ascii_names_are_kept() -> None:
    msg = hl7.parse(_build(_header(PatientName="MÜLLER^ZOË", PatientID="山田-1")))
    assert (msg["PID.F5.R1.C1"], msg["PID.F5.R1.C2"], msg["PID.F3.R1.C1"]) == (
        "MÜLLER",
        "ZOË",
        "山田-1",
    )
    assert msg["MSH.F18"] == "UNICODE UTF-8"


@pytest.mark.parametrize(("priority", "code"), [("stat", "S"), ("urgent", "A"), ("routine", "R")])
def test_priority_maps_to_table_0027(priority: str, code: str) -> None:
    msg = hl7.parse(_build(priority=priority))
    assert msg["OBR.F5"] == code
    assert msg["ORC.F7.R1.C6"] == code and msg["OBR.F27.R1.C6"] == code
    (obx,) = _obx(msg, "priority")
    assert (obx.extract_field(1, 5, 1, 1), obx.extract_field(1, 5, 1, 3)) == (code, "HL70027")


def test_unknown_priority_is_refused() -> None:
    with pytest.raises(ValueError, match="priority"):
        _build(priority="asap")


def test_rp_pointer_names_the_sr_and_is_left_out_without_one() -> None:
    (rp,) = _obx(hl7.parse(_build()), "sr")
    assert rp.extract_field(1, 2) == "RP"
    pointer = rp.extract_field(1, 5, 1, 1)
    assert pointer == f"studies/{SR[0]}/series/{SR[1]}/instances/{SR[2]}"
    assert rp.extract_field(1, 5, 1, 4) == "DICOM"
    without = hl7.parse(_build(sr_study_uid=None, sr_series_uid=None, sr_sop_uid=None))
    assert _obx(without, "sr") == []


def test_qc_flags_and_summary_lines() -> None:
    msg = hl7.parse(_build(summary="first\nsecond\nthird"))
    (qc_flags,) = _obx(msg, "qc_flags")
    assert qc_flags.extract_field(1, 5, 1, 1) == "qc.slice_gap"
    assert qc_flags.extract_field(1, 8) == "A"
    assert [seg.extract_field(1, 5) for seg in _obx(msg, "summary")] == ["first", "second", "third"]
    clean = hl7.parse(_build(reports=[report_of("qc", [])]))
    assert _obx(clean, "qc_flags")[0].extract_field(1, 5, 1, 1) == "none"


def test_parse_ack_reads_msa() -> None:
    ack = parse_ack("MSH|^~\\&|RIS|H|DXAI|D|20240101||ACK^R01^ACK|A1|P|2.5\rMSA|AA|CTRL-1|ok\r")
    assert (ack.code, ack.control_id, ack.text) == ("AA", "CTRL-1", "ok")
    assert ack.accepted and not ack.rejected
    nak = parse_ack("MSH|^~\\&|RIS|H|DXAI|D|20240101||ACK|A2|P|2.5\nMSA|AR|CTRL-9\n")
    assert (nak.code, nak.control_id, nak.rejected, nak.accepted) == ("AR", "CTRL-9", True, False)
    built = hl7.parse(_build()).create_ack("AE", message_id="A3")
    error = parse_ack(str(built))
    assert (error.code, error.control_id, error.accepted, error.rejected) == (
        "AE",
        "CTRL-1",
        False,
        False,
    )


@pytest.mark.parametrize("text", ["", "garbage", "MSH|^~\\&|RIS|H|DXAI|D|2024||ACK|A|P|2.5\r"])
def test_parse_ack_refuses_non_acks(text: str) -> None:
    with pytest.raises(InvalidAckError):
        parse_ack(text)
