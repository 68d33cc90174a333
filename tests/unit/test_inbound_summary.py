"""The referrer's transfer summary: content (priority, reasons, findings, priors, SR), no patient
name or identifier from the headers, redaction as a last guard, templates and their errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from pydantic import ValidationError
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dxai.actors.inbound.findings import Finding, report_of
from dxai.actors.inbound.study import InstanceRef, SeriesView, StudyView
from dxai.actors.inbound.summary import (
    PriorStudy,
    SrLocation,
    SummaryInput,
    SummaryTemplateError,
    redact_values,
    summary_context,
    transfer_summary,
)
from dxai.actors.inbound.triage import TriageInput, triage
from dxai.configs.schema.triage import SummaryConfig, TriageConfig

pytestmark = pytest.mark.unit

NAME = "Pellegrino^Annunziata^Maria"
PID = "MRN7734211"
ACCESSION = "ACC99120"


def _loader(header: Dataset) -> Callable[[], Dataset]:
    return lambda: header


def study(*modalities: str) -> StudyView:
    """A study whose headers carry a patient name, ID, birth date and accession number."""
    series = []
    for modality in modalities:
        header = Dataset()
        header.Modality = modality
        header.PatientName = NAME
        header.PatientID = PID
        header.OtherPatientIDs = ["ALT55512", PID]
        header.PatientBirthDate = "19561103"
        header.AccessionNumber = ACCESSION
        ref = InstanceRef(header, _loader(header), 100, "1.2.840.10008.1.2.1")
        series.append(SeriesView(generate_uid(), (ref,)))
    return StudyView(generate_uid(), tuple(series))


def full_input(view: StudyView) -> SummaryInput:
    text = "Fell at home; acute subdural hemorrhage"
    result = triage(TriageInput(view.modalities, "HEAD", clinical_history=text), TriageConfig())
    qc = report_of("qc", [Finding("qc.slice_gap", "warning", "slice gap 5.0 mm > 2.5 mm", "qc")])
    ai = report_of("ai", [Finding("ai.hemorrhage", "info", "hemorrhage score 0.94", "ai")])
    priors = (
        PriorStudy(generate_uid(), ("CT",), date(2021, 3, 4)),
        PriorStudy(generate_uid(), ("MR", "SR"), date(2023, 7, 19)),
        PriorStudy(generate_uid(), ("CR",), None),
    )
    sr = SrLocation("pacs-main", view.study_uid, "1.2.3.4.5", "1.2.3.4.5.6")
    reports = (qc, ai, result.report())
    return SummaryInput.from_study(view, triage=result, reports=reports, priors=priors, sr=sr)


def test_summary_content_and_no_patient_identifiers() -> None:
    view = study("CT", "SR")
    text = transfer_summary(full_input(view), SummaryConfig())
    assert f"Study {view.study_uid} (CT, SR) has been received" in text
    assert (
        "Reading priority: STAT, because of rule acute_hemorrhage (clinical history: hemorrhage)."
        in text
    )
    assert "- qc warning: slice gap 5.0 mm > 2.5 mm" in text
    assert "- ai note: hemorrhage score 0.94" in text
    assert "triage.priority" not in text and "rule acute_hemorrhage: STAT" not in text
    assert "Prior studies: 3 found; the most recent is MR, SR from 2023-07-19." in text
    assert "stored at pacs-main: study" in text and "instance 1.2.3.4.5.6" in text
    for value in ("Pellegrino", "Annunziata", "Maria", PID, "ALT55512", ACCESSION, "19561103"):
        assert value.lower() not in text.lower()
    assert "1956-11-03" not in text
    assert "Fell at home" not in text


def test_warnings_come_before_notes_and_the_list_is_capped() -> None:
    infos = [Finding(f"qc.n{i}", "info", f"note {i}", "qc") for i in range(5)]
    block = Finding("preflight.missing", "blocking", "3 instances missing", "preflight")
    inp = SummaryInput("1.2.3", ("CT",), reports=(report_of("qc", [*infos, block]),))
    text = transfer_summary(inp, SummaryConfig(max_findings=3))
    lines = [line for line in text.splitlines() if line.startswith("- ")]
    assert lines == [
        "- preflight needs attention: 3 instances missing",
        "- qc note: note 0",
        "- qc note: note 1",
        "- and 3 more",
    ]


def test_minimal_summary() -> None:
    text = transfer_summary(SummaryInput("1.2.3"), SummaryConfig())
    assert text == (
        "Study 1.2.3 has been received for reading.\n\n"
        "Reading priority: ROUTINE.\n\n"
        "Checks and AI results: nothing to report.\n\n"
        "Prior studies: none found.\n\n"
        "No structured report has been stored yet.\n"
    )


def test_leaked_identifiers_are_redacted_but_uids_are_not() -> None:
    view = study("CT")
    inp = SummaryInput.from_study(
        view,
        reports=(
            report_of("qc", [Finding("qc.bad", "warning", f"bad id {PID} in 1.2.{PID}.7", "qc")]),
        ),
    )
    text = transfer_summary(inp, SummaryConfig())
    assert f"bad id [removed] in 1.2.{PID}.7" in text
    assert (
        redact_values("Mr Pellegrino and pellegrino.", ("Pellegrino",))
        == "Mr [removed] and [removed]."
    )
    assert redact_values("Pellegrinos", ("Pellegrino",)) == "Pellegrinos"
    clean = repr(SummaryInput.from_study(view))
    assert "Pellegrino" not in clean and PID not in clean


def test_disabled_gives_empty_text() -> None:
    assert transfer_summary(full_input(study("CT")), SummaryConfig(enabled=False)) == ""


def test_custom_template() -> None:
    cfg = SummaryConfig(template="{{ priority }} {{ study_uid }}: {{ priors.count }} priors")
    view = study("CT")
    assert transfer_summary(full_input(view), cfg) == f"STAT {view.study_uid}: 3 priors\n"


def test_custom_template_cannot_reach_patient_data() -> None:
    cfg = SummaryConfig(template="{{ study_uid }} {{ patient_name }}")
    with pytest.raises(SummaryTemplateError, match="UndefinedError"):
        transfer_summary(full_input(study("CT")), cfg)
    unsafe = SummaryConfig(template="{{ sr.__class__.__mro__ }}")
    with pytest.raises(SummaryTemplateError):
        transfer_summary(full_input(study("CT")), unsafe)


def test_template_syntax_is_checked_at_config_load() -> None:
    with pytest.raises(ValidationError, match="does not compile"):
        SummaryConfig(template="{% if %}")
    with pytest.raises(ValidationError):
        SummaryConfig(llm_endpoint="ftp://x")
    assert SummaryConfig().llm_endpoint is None


def test_context_is_phi_free() -> None:
    context = summary_context(full_input(study("CT")))
    flat = repr(context)
    assert "Pellegrino" not in flat and PID not in flat
    assert context["priority"] == "STAT"
    assert context["tasks"] == [
        {"task": "qc", "status": "passed"},
        {"task": "ai", "status": "passed"},
        {"task": "triage", "status": "passed"},
    ]
