"""Inbound triage: negation-aware clinical history, HL7 orders, event priority, model findings,
scope conditions, the report, and the config's validation."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dxai.actors.inbound.findings import Finding
from dxai.actors.inbound.study import InstanceRef, SeriesView, StudyView
from dxai.actors.inbound.triage import TriageInput, clinical_history_of, triage
from dxai.configs.schema.triage import (
    ModelFindingCondition,
    TriageConfig,
    TriageMatch,
    TriageRule,
)

pytestmark = pytest.mark.unit

CONFIG = TriageConfig()
PATIENT = "Doe^Jane"
MSH = "MSH|^~\\&|RIS|HOSP|DXAI|TELE|20240501120000||{kind}|MSG{n}|P|2.5"


def order(
    obr13: str = "", obr31: str = "", notes: tuple[str, ...] = (), kind: str = "ORM^O01"
) -> str:
    """An HL7 order with OBR-13 / OBR-31 and NTE comments at their exact positions."""
    obr = ["OBR", "1", "ACC1", "", "CT^CT HEAD"] + [""] * 8 + [obr13] + [""] * 17 + [obr31]
    assert obr[13] == obr13 and obr[31] == obr31
    segments = [
        MSH.format(kind=kind, n=random.randint(1, 9999)),
        f"PID|1||PID12345||{PATIENT}||19700101|F",
        "ORC|NW|ORD1",
        "|".join(obr),
        *(f"NTE|{i}||{text}" for i, text in enumerate(notes, 1)),
    ]
    return "\r".join(segments)


def history(text: str, description: str = "", event_priority: str | None = None) -> TriageInput:
    """A head CT whose order says ``text``."""
    return TriageInput(("CT",), "HEAD", description, event_priority, clinical_history=text)


def test_negated_hemorrhage_does_not_raise_priority() -> None:
    result = triage(history("Headache. No acute hemorrhage."), CONFIG)
    assert result.priority == "routine"
    assert result.reasons == ()
    assert result.report().findings[0].message == "ROUTINE: no rule matched"


def test_acute_subdural_hemorrhage_is_stat() -> None:
    result = triage(history("Fall from ladder, acute subdural hemorrhage"), CONFIG)
    assert result.priority == "stat"
    assert [(r.rule, r.detail) for r in result.reasons] == [
        ("acute_hemorrhage", "clinical history: hemorrhage")
    ]


@pytest.mark.parametrize(
    "text",
    [
        "negative for hemorrhage",
        "without evidence of hemorrhage",
        "hemorrhage ruled out yesterday",
        "ruled out pneumothorax",
        "no pulmonary embolism",
    ],
)
def test_negation_forms_leave_the_study_routine(text: str) -> None:
    assert triage(history(text), CONFIG).priority == "routine"


def test_rule_out_of_a_stat_condition_is_urgent() -> None:
    result = triage(history("R/O bleed"), CONFIG)
    assert result.priority == "urgent"
    (reason,) = result.reasons
    assert (reason.rule, reason.detail) == (
        "acute_hemorrhage",
        "rule-out in clinical history: hemorrhage",
    )


def test_rule_out_priority_can_be_switched_off() -> None:
    rule = TriageRule(
        name="bleed",
        when=TriageMatch(concepts=("hemorrhage",)),
        priority="stat",
        possible_priority=None,
    )
    config = TriageConfig(rules=(rule,))
    assert triage(history("rule out hemorrhage"), config).priority == "routine"
    assert triage(history("hemorrhage"), config).priority == "stat"


def test_history_of_stroke_does_not_trigger() -> None:
    assert triage(history("history of stroke, now dizzy"), CONFIG).priority == "routine"


def test_only_the_asserted_concept_counts() -> None:
    result = triage(history("no hemorrhage but large vessel occlusion"), CONFIG)
    assert result.priority == "stat"
    assert [r.rule for r in result.reasons] == ["large_vessel_occlusion"]


def test_orm_o01_obr13_drives_triage() -> None:
    hl7 = order(obr13="Sudden headache\\.br\\acute SAH on outside CT")
    assert clinical_history_of(hl7) == "Sudden headache\nacute SAH on outside CT"
    result = triage(
        TriageInput(modalities=("CT",), clinical_history=clinical_history_of(hl7)), CONFIG
    )
    assert result.priority == "stat"
    assert result.report().findings[0].message == (
        "STAT: rule acute_hemorrhage (clinical history: hemorrhage)"
    )


def test_order_reason_and_comments_are_read() -> None:
    hl7 = order(
        obr13="trauma~no bleed",
        obr31="R10.3^Right lower quadrant pain^I10~^r/o appendicitis",
        notes=("called by ED", "fracture of the left wrist"),
        kind="OMI^O23",
    )
    text = clinical_history_of(hl7)
    assert text.splitlines() == [
        "trauma",
        "no bleed",
        "Right lower quadrant pain",
        "r/o appendicitis",
        "called by ED",
        "fracture of the left wrist",
    ]
    assert PATIENT not in text and "PID12345" not in text
    result = triage(history(text), CONFIG)
    assert [(r.rule, r.priority) for r in result.reasons] == [
        ("fracture", "urgent"),
        ("appendicitis", "routine"),
    ]
    assert result.priority == "urgent"


def test_clinical_history_of_never_raises_on_junk() -> None:
    rng = random.Random(15)
    alphabet = "MSHOBRNTE|^~\\&\r\n x0.?"
    junk = [None, "", "garbage", "MSH", "MSH|", "\x00MSH", "MSH|^~\\&|\rOBR", "OBR|1|||||"]
    junk += ["MSH|^~\\&" + "".join(rng.choice(alphabet) for _ in range(80)) for _ in range(300)]
    junk += [order(obr13="x")[: rng.randint(0, 200)] for _ in range(100)]
    for item in junk:
        assert isinstance(clinical_history_of(item), str)
    assert clinical_history_of("not hl7 at all") == ""


def test_event_priority_stat_is_stat() -> None:
    result = triage(TriageInput(modalities=("CR",), event_priority="STAT"), CONFIG)
    assert result.priority == "stat"
    assert [(r.rule, r.detail) for r in result.reasons] == [("event_stat", "event priority stat")]
    assert triage(TriageInput(event_priority="routine"), CONFIG).priority == "routine"


def _finding(code: str, score: float | None) -> Finding:
    return Finding(code, "info", f"{code} model output", "ai", score=score)


def test_model_finding_above_the_threshold_raises_priority() -> None:
    rule = TriageRule(
        name="ai_pneumothorax",
        when=TriageMatch(model_findings=(ModelFindingCondition(code="ai.ptx", min_score=0.8),)),
        priority="stat",
    )
    config = TriageConfig(rules=(rule,))
    above = triage(TriageInput(findings=(_finding("ai.ptx", 0.85),)), config)
    assert above.priority == "stat"
    assert above.reasons[0].score == pytest.approx(0.85)
    assert above.reasons[0].detail == "model finding ai.ptx score 0.85 >= 0.80"
    below = triage(TriageInput(findings=(_finding("ai.ptx", 0.79),)), config)
    assert below.priority == "routine"
    other = triage(
        TriageInput(findings=(_finding("ai.other", 0.99), _finding("ai.ptx", None))), config
    )
    assert other.priority == "routine"


def test_default_rules_read_default_model_codes() -> None:
    result = triage(TriageInput(findings=(_finding("ai.hemorrhage", 0.9),)), CONFIG)
    assert [r.rule for r in result.reasons] == ["acute_hemorrhage"]


def test_scope_conditions_must_all_hold() -> None:
    rule = TriageRule(
        name="head_ct_bleed",
        when=TriageMatch(modalities=("CT",), body_parts=("HEAD",), concepts=("hemorrhage",)),
        priority="stat",
    )
    config = TriageConfig(rules=(rule,))
    text = "acute bleed"
    assert triage(TriageInput(("CT",), "head", clinical_history=text), config).priority == "stat"
    assert triage(TriageInput(("MR",), "HEAD", clinical_history=text), config).priority == "routine"
    assert (
        triage(TriageInput(("CT",), "CHEST", clinical_history=text), config).priority == "routine"
    )


def test_scope_only_rule_and_description_keyword() -> None:
    rules = (
        TriageRule(
            name="er_head",
            when=TriageMatch(modalities=("CT",), body_parts=("HEAD",)),
            priority="urgent",
        ),
    )
    config = TriageConfig(rules=rules)
    result = triage(TriageInput(("CT", "SR"), "HEAD"), config)
    assert [(r.rule, r.detail) for r in result.reasons] == [
        ("er_head", "modality CT; body part HEAD")
    ]
    stroke = triage(TriageInput(("CT",), study_description="CT HEAD  Stroke Protocol"), CONFIG)
    assert stroke.priority == "stat"
    assert stroke.reasons[0].detail == (
        "study description: stroke; study description keyword: stroke protocol"
    )


def test_most_urgent_rule_wins_and_report_lists_every_rule() -> None:
    inp = history("Acute fracture of femur. Tension pneumothorax.", event_priority="urgent")
    result = triage(inp, CONFIG)
    assert result.priority == "stat"
    assert [r.rule for r in result.reasons] == ["pneumothorax", "fracture", "event_urgent"]
    report = result.report()
    assert report.task == "triage" and report.status == "passed" and not report.holds
    assert [f.code for f in report.findings] == ["triage.priority"] + ["triage.rule"] * 3
    assert report.findings[1].message == "rule pneumothorax: STAT (clinical history: pneumothorax)"
    assert report.counts == {"rules": 3}


def test_no_free_text_in_reasons_findings_or_repr() -> None:
    text = f"Patient {PATIENT} MRN PID12345 fell: acute subdural hemorrhage"
    inp = history(text, f"CT HEAD for {PATIENT}")
    result = triage(inp, CONFIG)
    exposed = [repr(inp), repr(result)] + [f.message for f in result.report().findings]
    for value in ("Doe", "Jane", "PID12345", "fell", "ladder"):
        assert all(value not in item for item in exposed)


def test_from_study_reads_the_header_and_the_order() -> None:
    header = Dataset()
    header.Modality = "CT"
    header.BodyPartExamined = "HEAD"
    header.StudyDescription = "CT HEAD WO"
    header.PatientName = PATIENT
    ref = InstanceRef(header, lambda: header, 1000, "1.2.840.10008.1.2.1")
    study = StudyView(generate_uid(), (SeriesView(generate_uid(), (ref,)),))
    inp = TriageInput.from_study(study, event_priority="routine", hl7_message=order(obr13="ich"))
    assert (inp.modalities, inp.body_part, inp.clinical_history) == (("CT",), "HEAD", "ich")
    assert triage(inp, CONFIG).priority == "stat"


def test_config_defaults_and_validation() -> None:
    default = TriageConfig()
    assert {r.name for r in default.rules if r.priority == "stat"} >= {
        "acute_hemorrhage", "stroke", "large_vessel_occlusion", "pneumothorax",
        "aortic_dissection", "pulmonary_embolism", "event_stat",
    }  # fmt: skip
    assert default.default_priority == "routine"
    with pytest.raises(ValidationError, match="unknown concepts"):
        TriageConfig(
            rules=(TriageRule(name="x", when=TriageMatch(concepts=("nope",)), priority="stat"),)
        )
    with pytest.raises(ValidationError, match="no condition"):
        TriageRule(name="x", when=TriageMatch(), priority="stat")
    with pytest.raises(ValidationError, match="unique"):
        TriageConfig(rules=(default.rules[0], default.rules[0]))
    with pytest.raises(ValidationError):
        TriageMatch(modalities=("ct",))
    with pytest.raises(ValidationError):
        TriageConfig.model_validate({"rules": [], "unknown": 1})
