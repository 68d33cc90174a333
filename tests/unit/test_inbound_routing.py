"""Routing suggestions: rules on study type, referrer (hashed) and priority; destination
capabilities (modalities, subspecialties, size); the fallback; the report; config validation."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from pydantic import ValidationError
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dxai.actors.inbound.routing import RoutingInput, suggest_routes
from dxai.actors.inbound.study import InstanceRef, SeriesView, StudyView
from dxai.configs.schema.policy import physician_digest
from dxai.configs.schema.triage import RoutingConfig

pytestmark = pytest.mark.unit

DOCTOR = "Welby^Marcus"
DESTINATIONS = [
    {"name": "neuro-group", "modalities": ["CT", "MR"], "subspecialties": ["neuro"]},
    {"name": "msk-group", "modalities": ["CR", "DX", "MR"], "subspecialties": ["msk"]},
    {"name": "small-site", "modalities": ["CT"], "max_study_bytes": 1000},
    {"name": "general", "subspecialties": ["body", "chest"]},
    {"name": "vip-reader", "modalities": ["CT", "MR", "CR"]},
]


def config(*rules: Mapping[str, object], fallback: bool = True) -> RoutingConfig:
    return RoutingConfig.model_validate(
        {"destinations": DESTINATIONS, "rules": list(rules), "capability_fallback": fallback}
    )


def ct_head(
    size: int = 500, referrer: str | None = None, priority: str | None = None
) -> RoutingInput:
    """A head CT of ``size`` bytes from ``referrer`` (hashed)."""
    inp = RoutingInput(("CT",), "HEAD", "CT HEAD WO", priority=priority, study_size_bytes=size)
    return inp.with_referrer(referrer)


def test_routing_by_referrer_hash() -> None:
    by_name = {
        "name": "vip",
        "when": {"referring_physicians": [DOCTOR]},
        "destinations": ["vip-reader"],
    }
    cfg = config(by_name, fallback=False)
    result = suggest_routes(ct_head(referrer="WELBY^marcus^"), cfg)
    assert [(s.destination, s.rule, s.why) for s in result.suggestions] == [
        ("vip-reader", "vip", "referrer")
    ]
    assert suggest_routes(ct_head(referrer="Kildare^James"), cfg).suggestions == ()
    assert suggest_routes(ct_head(referrer=None), cfg).suggestions == ()
    by_digest = {**by_name, "when": {"referring_physicians": [physician_digest(DOCTOR)]}}
    assert suggest_routes(ct_head(referrer=DOCTOR), config(by_digest)).destinations == (
        "vip-reader",
    )


def test_the_referrer_is_held_as_a_hash_only() -> None:
    inp = ct_head(referrer=DOCTOR)
    assert inp.referrer_digest == physician_digest(DOCTOR)
    cfg = config({"name": "vip", "when": {"referring_physicians": [DOCTOR]}})
    report = suggest_routes(inp, cfg).report()
    exposed = [repr(inp), *(f.message for f in report.findings)]
    assert all("Welby" not in e and "Marcus" not in e for e in exposed)


def test_routing_by_capability_when_no_rule_matches() -> None:
    result = suggest_routes(ct_head(size=500), config())
    assert result.destinations == ("neuro-group", "small-site", "general")
    assert {s.rule for s in result.suggestions} == {"capability"}
    assert result.suggestions[0].why == "accepts modality CT, 500 bytes"
    too_big = suggest_routes(ct_head(size=5000), config())
    assert "small-site" not in too_big.destinations
    assert too_big.destinations == ("neuro-group", "general", "vip-reader")


def test_derived_objects_need_not_be_accepted() -> None:
    inp = RoutingInput(("CR", "PR", "SR"), "CHEST", study_size_bytes=10)
    assert suggest_routes(inp, config()).destinations == ("msk-group", "general", "vip-reader")


def test_rule_with_subspecialty_filters_candidates() -> None:
    neuro = {
        "name": "neuro-head",
        "when": {"modalities": ["CT", "MR"], "body_parts": ["HEAD", "BRAIN"]},
        "subspecialties": ["neuro"],
    }
    result = suggest_routes(ct_head(), config(neuro))
    assert [(s.destination, s.rule, s.why) for s in result.suggestions] == [
        ("neuro-group", "neuro-head", "modality CT; body part HEAD; subspecialty neuro")
    ]
    report = result.report()
    assert report.task == "routing" and report.status == "passed"
    assert [f.code for f in report.findings] == ["routing.suggested"]
    assert report.findings[0].message == (
        "neuro-group: rule neuro-head (modality CT; body part HEAD; subspecialty neuro)"
    )


def test_listed_destinations_keep_their_order_and_capability_filter() -> None:
    rule = {
        "name": "stat-head",
        "when": {"priorities": ["stat"], "description_keywords": ["ct head"]},
        "destinations": ["small-site", "vip-reader", "msk-group"],
    }
    stat = suggest_routes(ct_head(size=2000, priority="stat"), config(rule))
    assert stat.destinations == ("vip-reader",)
    assert stat.rejected == 2
    assert stat.suggestions[0].why == "description keyword ct head; priority stat"
    routine = suggest_routes(ct_head(priority="routine"), config(rule, fallback=False))
    assert routine.destinations == ()


def test_every_matching_rule_adds_suggestions_without_repeats() -> None:
    first = {"name": "a", "when": {"modalities": ["CT"]}, "destinations": ["vip-reader"]}
    second = {
        "name": "b",
        "when": {"body_parts": ["HEAD"]},
        "destinations": ["vip-reader", "general"],
    }
    result = suggest_routes(ct_head(), config(first, second))
    assert [(s.destination, s.rule) for s in result.suggestions] == [
        ("vip-reader", "a"),
        ("general", "b"),
    ]


def test_max_suggestions() -> None:
    cfg = RoutingConfig.model_validate({"destinations": DESTINATIONS, "max_suggestions": 1})
    assert suggest_routes(ct_head(), cfg).destinations == ("neuro-group",)


def test_nothing_fits_gives_a_warning() -> None:
    inp = RoutingInput(("US",), "ABDOMEN", study_size_bytes=10)
    cfg = RoutingConfig.model_validate({"destinations": [DESTINATIONS[0], DESTINATIONS[2]]})
    result = suggest_routes(inp, cfg)
    assert result.suggestions == () and result.rejected == 2
    report = result.report()
    assert [(f.code, f.severity) for f in report.findings] == [("routing.none", "warning")]
    assert report.counts == {"suggested": 0, "rejected": 2}
    assert not report.holds
    assert suggest_routes(inp, RoutingConfig()).report().findings[0].code == "routing.none"


def test_from_study_reads_header_size_and_referrer() -> None:
    header = Dataset()
    header.Modality = "MR"
    header.BodyPartExamined = "KNEE"
    header.ReferringPhysicianName = DOCTOR
    refs = tuple(InstanceRef(header, lambda: header, 400, "1.2.840.10008.1.2.1") for _ in range(3))
    study = StudyView(generate_uid(), (SeriesView(generate_uid(), refs),))
    inp = RoutingInput.from_study(study, priority="urgent")
    assert (inp.modalities, inp.body_part, inp.study_size_bytes) == (("MR",), "KNEE", 1200)
    assert inp.referrer_digest == physician_digest(DOCTOR)
    other = RoutingInput.from_study(study, referrer="Kildare^James")
    assert other.referrer_digest == physician_digest("Kildare^James")


def test_config_validation() -> None:
    assert RoutingConfig().destinations == ()
    with pytest.raises(ValidationError, match="unknown destinations"):
        config({"name": "x", "destinations": ["nowhere"]})
    with pytest.raises(ValidationError, match="64 lower-case hex"):
        config({"name": "x", "when": {"referring_physicians": ["sha256:abc"]}})
    with pytest.raises(ValidationError, match="unique"):
        RoutingConfig.model_validate({"destinations": [DESTINATIONS[0], DESTINATIONS[0]]})
    with pytest.raises(ValidationError):
        RoutingConfig.model_validate({"destinations": [{"name": "a", "max_study_bytes": 0}]})
    with pytest.raises(ValidationError):
        RoutingConfig.model_validate({"destinations": [{"name": "a", "modalities": ["ct"]}]})
