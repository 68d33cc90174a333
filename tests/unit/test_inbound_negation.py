"""Negation-aware concept detection (negspacy NegEx over a blank spaCy pipeline): negated,
questioned (rule-out), historical and asserted mentions; HL7 text normalisation; threads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from spacy.language import Language

from dxai.actors.inbound import negation
from dxai.actors.inbound.negation import (
    ConceptHit,
    detect_concepts,
    normalise_text,
    unescape_hl7,
)
from dxai.configs.schema.triage import TriageConfig

pytestmark = pytest.mark.unit

CONCEPTS = TriageConfig().concept_keywords()


def states(text: str, concepts: Mapping[str, Sequence[str]] | None = None) -> list[tuple[str, str]]:
    """(concept, assertion) of every mention, in text order."""
    return [(h.concept, h.assertion) for h in detect_concepts(text, concepts or CONCEPTS)]


@pytest.mark.parametrize(
    "text",
    [
        "no acute hemorrhage",
        "No acute hemorrhage.",
        "negative for hemorrhage",
        "NEGATIVE FOR INTRACRANIAL HEMORRHAGE",
        "without evidence of hemorrhage",
        "no evidence of bleed",
        "hemorrhage ruled out",
        "ruled out hemorrhage on prior scan",
        "hemorrhage was ruled out",
        "free of hemorrhage",
        "no new hemorrhage",
    ],
)
def test_negation_forms_negate_the_concept(text: str) -> None:
    assert states(text) == [("hemorrhage", "negated")]


@pytest.mark.parametrize(
    "text",
    [
        "acute subdural hemorrhage",
        "Acute SUBDURAL Hemorrhage",
        "45 year old with ICH",
        "suspected hemorrhage",
        "concern for hemorrhage",
        "no trauma. acute bleed",
        "denies fall; acute bleed",
    ],
)
def test_asserted_mentions(text: str) -> None:
    assert states(text) == [("hemorrhage", "present")]


@pytest.mark.parametrize(
    "text",
    [
        "r/o hemorrhage",
        "R/O SAH",
        "rule out hemorrhage",
        "Rule out intracranial hemorrhage",
        "evaluate for hemorrhage",
        "?bleed",
        "bleed?",
        "cannot rule out hemorrhage",
    ],
)
def test_rule_out_forms_are_possible_not_negated(text: str) -> None:
    hits = detect_concepts(text, CONCEPTS)
    assert [(h.concept, h.negated, h.possible) for h in hits] == [("hemorrhage", False, True)]
    assert not hits[0].asserted


@pytest.mark.parametrize("text", ["history of stroke", "h/o stroke", "status post stroke"])
def test_history_forms_are_historical(text: str) -> None:
    assert states(text) == [("stroke", "historical")]


def test_negation_stops_at_but() -> None:
    assert states("no hemorrhage but large vessel occlusion") == [
        ("hemorrhage", "negated"),
        ("large_vessel_occlusion", "present"),
    ]


def test_a_comma_does_not_end_the_scope_a_line_break_does() -> None:
    assert states("no trauma, acute bleed") == [("hemorrhage", "negated")]
    assert states("no trauma\\.br\\acute bleed") == [("hemorrhage", "present")]
    assert states("no trauma~~~~acute bleed") == [("hemorrhage", "present")]
    assert states("no trauma\r\nacute bleed") == [("hemorrhage", "present")]


def test_hl7_escapes_and_repeats_are_normalised() -> None:
    text = "HEADACHE\\.br\\NO BLEED~~~~new weakness, LVO \\T\\ aphasia"
    assert normalise_text(text) == "HEADACHE. NO BLEED. new weakness, LVO & aphasia."
    assert states(text) == [("hemorrhage", "negated"), ("large_vessel_occlusion", "present")]


def test_unescape_hl7_decodes_delimiters_and_hex() -> None:
    assert unescape_hl7("a\\F\\b\\S\\c\\R\\d\\E\\e\\X41\\") == "a|b^c~d\\eA"
    assert unescape_hl7("\\H\\bold\\N\\") == " bold "


def test_offsets_point_into_the_normalised_text() -> None:
    text = "Pain.\\.br\\Acute SDH"
    plain = normalise_text(text)
    (hit,) = detect_concepts(text, CONCEPTS)
    assert plain[hit.start : hit.end] == "SDH"


def test_every_mention_is_reported_in_order() -> None:
    text = "No pneumothorax. Acute PE. History of fracture. r/o aortic dissection."
    assert states(text) == [
        ("pneumothorax", "negated"),
        ("pulmonary_embolism", "present"),
        ("fracture", "historical"),
        ("aortic_dissection", "possible"),
    ]


def test_custom_concepts_match_any_case_longest_phrase() -> None:
    concepts = {"mass": ("Mass", "MASS LESION"), "edema": ("edema",)}
    assert states("large mass lesion with EDEMA", concepts) == [
        ("mass", "present"),
        ("edema", "present"),
    ]
    (hit,) = detect_concepts("mass lesion", concepts)
    assert (hit.start, hit.end) == (0, len("mass lesion"))


def test_blank_text_or_no_concepts_give_nothing() -> None:
    assert detect_concepts("", CONCEPTS) == ()
    assert detect_concepts("  ~~ \\.br\\ ", CONCEPTS) == ()
    assert detect_concepts("acute hemorrhage", {}) == ()


def test_long_text_is_cut_at_max_chars() -> None:
    filler = "Patient stable overnight. " * 400
    text = filler + "Acute hemorrhage."
    assert len(text) > 10_000
    assert states(text) == [("hemorrhage", "present")]
    assert detect_concepts(text, CONCEPTS, max_chars=5_000) == ()


def test_calls_from_many_threads_agree() -> None:
    texts = ["no acute hemorrhage", "acute subdural hemorrhage", "r/o PE", "history of stroke"]
    expected = [detect_concepts(t, CONCEPTS) for t in texts]
    other = {"mass": ("mass",)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: detect_concepts(texts[i % 4], CONCEPTS), range(64)))
        masses = list(pool.map(lambda _: detect_concepts("no mass", other), range(16)))
    assert results == [expected[i % 4] for i in range(64)]
    assert all(m == (ConceptHit("mass", True, start=3, end=7),) for m in masses)


def test_pipelines_are_cached_per_concept_set_and_renewed(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    real = negation.build_pipeline

    def counting(key: Sequence[tuple[str, Sequence[str]]]) -> Language:
        built.append(key)
        return real(key)

    monkeypatch.setattr(negation, "build_pipeline", counting)
    monkeypatch.setattr(negation, "_REBUILD_AFTER", 3)
    concepts = {"cyst": ("cyst", "Cyst")}
    for _ in range(5):
        assert states("no cyst", concepts) == [("cyst", "negated")]
    assert len(built) == 2  # built once, renewed after three texts
    assert states("acute bleed", {"hemorrhage": ("bleed",), "x": ("xx",)}) == [
        ("hemorrhage", "present")
    ]
    assert len(built) == 3


def test_an_escaped_tilde_is_text_not_a_break() -> None:
    assert normalise_text("no trauma \\R\\ acute bleed") == "no trauma ~ acute bleed."
    assert states("no trauma \\R\\ acute bleed") == [("hemorrhage", "negated")]
