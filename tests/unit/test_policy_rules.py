"""Policy rules: validation, matching (first match wins, unknown facts, hashed physicians), the
facts of an event (source name, HL7 order), and ``dxai policy explain``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from dxai.configs.schema.policy import physician_digest, physician_key
from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.cli import main
from dxai.daemon.events import StudyEvent
from dxai.daemon.gateways.resolve import Routes
from dxai.daemon.policy.engine import PolicyEngine
from dxai.daemon.policy.facts import Facts, facts_from_event

pytestmark = pytest.mark.unit

DOCTOR = "Welby^Marcus"
RULES: list[dict[str, Any]] = [
    {
        "name": "research-export",
        "match": {"destination": ["research"], "modality": ["CT", "MR"]},
        "then": {
            "profile": "research_longitudinal",
            "review": {"required_always": True},
            "review_timeout_s": 86400,
            "consent": {"scope": ["research"]},
        },
    },
    {
        "name": "stat-teleradiology",
        "match": {"destination": ["telerad"], "priority": ["stat", "urgent"]},
        "then": {"profile": "teleradiology", "review": {"on_pixel_hold": False}},
    },
    {
        "name": "known-referrer",
        "match": {"referring_physician": [DOCTOR], "source": ["vna"]},
        "then": {"profile": "hipaa_safe_harbor"},
    },
]


def _config(tmp: Path, rules: list[dict[str, Any]] | None = None, **extra: Any) -> DxaiConfig:
    data: dict[str, Any] = {
        "state": {"data_dir": str(tmp)},
        "sources": {"vna": {"kind": "dicomweb", "base_url": "http://vna.example:8042/dicom-web"}},
        "destinations": {
            "research": {"kind": "folder", "path": str(tmp / "out-r")},
            "telerad": {"kind": "folder", "path": str(tmp / "out-t")},
        },
        "policy": {
            "rules": RULES if rules is None else rules,
            "consent_source": {"kind": "folder", "folder": str(tmp / "consents")},
        },
    }
    data.update(extra)
    return DxaiConfig.model_validate(data)


def _event(destination: str, priority: str = "routine", hl7: str | None = None) -> StudyEvent:
    return StudyEvent.model_validate(
        {
            "event_type": "study_scheduled_for_exchange",
            "study_uid": "1.2.826.0.1.3680043.8.498.1",
            "destination": destination,
            "exchange_job_id": "job-42",
            "source": {"name": "vna"},
            "priority": priority,
            "hl7": hl7,
        }
    )


def _facts(config: DxaiConfig, event: StudyEvent) -> Facts:
    return facts_from_event(event, Routes(config).source_name(event))


def test_first_matching_rule_decides_else_default(tmp_path: Path) -> None:
    config = _config(tmp_path)
    engine = PolicyEngine(config.policy, config.deid)
    research = _facts(config, _event("research"))
    assert research.source == "vna" and research.workflow == "outbound"
    ct = engine.resolve(research.with_instance("CT", "1.2.840.10008.5.1.4.1.1.2"))
    assert (ct.rule, ct.profile, ct.pixels) == ("research-export", "research_longitudinal", "never")
    assert ct.review.required_always and ct.review_timeout_s == 86400
    assert ct.consent is not None and ct.consent.scope == ("research",)
    us = engine.resolve(research.with_instance("US", "1.2.840.10008.5.1.4.1.1.6.1"))
    assert (us.rule, us.profile) == ("default", "basic")
    stat = engine.resolve(_facts(config, _event("telerad", "stat")))
    assert (stat.rule, stat.profile) == ("stat-teleradiology", "teleradiology")
    assert not stat.review.on_pixel_hold and stat.review.on_low_confidence
    assert engine.resolve(_facts(config, _event("telerad", "low"))).rule == "default"


def test_an_unknown_fact_never_matches_but_is_a_candidate(tmp_path: Path) -> None:
    config = _config(tmp_path)
    engine = PolicyEngine(config.policy, config.deid)
    facts = _facts(config, _event("research"))  # no modality yet
    resolution = engine.resolve(facts)
    assert resolution.rule == "default"
    first = resolution.trace[0]
    outcomes = {c.field: c.outcome for c in first.checks}
    assert outcomes == {"destination": "match", "modality": "unknown"}
    assert first.possible and not first.matched
    candidates = [r.rule for r in engine.candidates(facts)]
    assert candidates == ["research-export", "known-referrer", "default"]  # physician unknown
    assert engine.uses_instances and engine.uses_physician


def test_referring_physician_is_matched_as_a_hash_and_never_shown(tmp_path: Path) -> None:
    digest = physician_digest(DOCTOR)
    rules = [{**RULES[2], "match": {"referring_physician": [digest]}}]
    for config in (_config(tmp_path), _config(tmp_path, rules)):
        engine = PolicyEngine(config.policy, config.deid)
        same = Facts(source="vna", referring_physician=physician_digest(" WELBY ^ marcus ^"))
        resolution = engine.resolve(same)
        assert resolution.rule == "known-referrer"
        other = engine.resolve(Facts(source="vna", referring_physician=physician_digest("X^Y")))
        assert other.rule == "default"
        shown = repr(resolution) + repr(other)
        assert "welby" not in shown.lower() and digest not in shown
    assert physician_key("Welby^Marcus^^^") == "welby^marcus"


def test_hl7_order_gives_physician_and_modality() -> None:
    order = "\r".join(
        [
            "MSH|^~\\&|RIS|HOSP|DXAI|DXAI|20240101120000||ORM^O01|C1|P|2.3",
            "PID|1||MRN0001||Doe^Jane||19700101|F",
            "|".join(["PV1", "1", "O", *[""] * 5, "1234^Welby^Marcus^^^Dr"]),  # PV1-8
            "ORC|NW|ORD1",
            "|".join(["OBR", "1", "ORD1", "", "CT^CT HEAD", *[""] * 19, "CT"]),  # OBR-24
        ]
    )
    facts = facts_from_event(_event("research", hl7=order), "vna")
    assert facts.referring_physician == physician_digest(DOCTOR)
    assert facts.modality == "CT"
    garbage = facts_from_event(_event("research", hl7="not hl7"), None)
    assert garbage.referring_physician is None and garbage.modality is None


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"rules": [{"name": "a", "then": {"profile": "nope"}}]}, "profile 'nope'"),
        ({"rules": [{"name": "a"}, {"name": "a"}]}, "unique"),
        ({"rules": [{"name": "a", "then": {"consent": {}}}]}, "consent_source"),
        ({"rules": [{"name": "a", "match": {"destination": ["elsewhere"]}}]}, "destination"),
        ({"rules": [{"name": "a", "match": {"modality": ["ct"]}}]}, "upper-case"),
        ({"rules": [{"name": "default"}]}, "names the policy's default"),
        ({"rules": [{"name": "a", "match": {"colour": ["red"]}}]}, "Extra inputs"),
        ({"rules": [{"name": "a", "match": {"referring_physician": ["sha256:12"]}}]}, "64"),
    ],
)
def test_policy_is_validated_like_the_rest(
    tmp_path: Path, policy: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        _config(tmp_path, **{"policy": policy})


def _explain(tmp: Path, event: StudyEvent, *flags: str, capsys: pytest.CaptureFixture[str]) -> str:
    config_file = tmp / "config.yaml"
    config = _config(tmp)
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    event_file = tmp / "event.json"
    event_file.write_text(event.model_dump_json())
    argv = ["policy", "explain", "--event", str(event_file), "--config", str(config_file)]
    assert main([*argv, *flags]) == 0
    return capsys.readouterr().out


def test_explain_prints_the_rules_that_matched_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _explain(tmp_path, _event("research"), "--modality", "CT", capsys=capsys)
    assert "1. research-export          MATCH (decides)" in out
    assert "modality             match      CT in [CT, MR]" in out
    assert "decision  rule research-export" in out and "required, scope research" in out
    assert "timeout  86400 s" in out
    out = _explain(tmp_path, _event("telerad", "stat"), capsys=capsys)
    assert "2. stat-teleradiology       MATCH (decides)" in out
    assert "pixel holds: block" in out
    out = _explain(tmp_path, _event("research"), capsys=capsys)
    assert "may match once the instances are read" in out and "decision  rule default" in out
    out = _explain(tmp_path, _event("telerad"), "--referring-physician", DOCTOR, capsys=capsys)
    assert "3. known-referrer           MATCH (decides)" in out
    assert "one of the 1 listed" in out and "welby" not in out.lower()


def test_explain_checks_consent_without_printing_the_patient(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "consents").mkdir()
    flags = ("--modality", "MR", "--patient-id", "PAT-7781")
    out = _explain(tmp_path, _event("research"), *flags, capsys=capsys)
    assert "consent   consent_missing: 0 consent(s) found" in out
    assert "PAT-7781" not in out


def test_explain_refuses_a_bad_event(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"event_type": "nope"}))
    assert main(["policy", "explain", "--event", str(bad)]) == 2
    assert "the event is not valid" in capsys.readouterr().err
