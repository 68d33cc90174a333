"""Fuzzy patient matching: names in any order / case / accents, birth dates, issuers, decoys."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from dxai.actors.inbound.patient_match import (
    Demographics,
    demographics_from_json,
    demographics_of,
    match_patient,
    name_similarity,
    name_tokens,
    swapped_date,
)
from dxai.configs.schema.priors import PriorsConfig

CONFIG = PriorsConfig()
TARGET = Demographics(
    name="MÜLLER^Hans", birth_date="19610503", sex="M", patient_id="A123", issuer="HOSP"
)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("DOE^JOHN", "John Doe"),
        ("DOE^JOHN", "doe^john^^^"),
        ("DOE^JOHN", "JOHN^DOE"),
        ("MÜLLER^Hans", "Hans Mueller"),
        ("MÜLLER^Hans", "MULLER^HANS"),
        ("MÜLLER^Hans", "hans müller"),
        ("Straße^Jürgen", "STRASSE^JUERGEN"),
        ("Núñez^José", "NUNEZ^JOSE"),
        ("YAMADA^TARO=山田^太郎=やまだ^たろう", "Taro Yamada"),
        ("DOE^JOHN^^DR^JR", "John Doe"),
        ("DOE^JOHN^PAUL", "John Doe"),
    ],
)
def test_same_name_however_written(left: str, right: str) -> None:
    similarity = name_similarity(left, right)
    assert similarity is not None
    assert similarity[0] == pytest.approx(1.0)


def test_name_tokens_normalised() -> None:
    assert name_tokens("Müller-Lüdenscheidt^Hans^^^") == ("muller", "ludenscheidt", "hans")
    assert name_tokens("ØSTERGÅRD^Æsa") == ("ostergard", "aesa")
    assert name_tokens("=山田^太郎") == ()


def test_different_names_score_low() -> None:
    similarity = name_similarity("DOE^JOHN", "SMITH^ANNA")
    assert similarity is not None
    assert similarity[0] < 0.5
    assert name_similarity("", "DOE^JOHN") is None


def test_single_shared_token_is_not_a_full_match() -> None:
    similarity = name_similarity("MÜLLER^Hans", "MÜLLER")
    assert similarity is not None
    assert similarity[0] < 0.8
    assert similarity[1] == "token sort"


def test_swapped_date() -> None:
    assert swapped_date("19610503") == "19610305"
    assert swapped_date("19610315") is None  # month 15 does not exist
    assert swapped_date("19610303") is None  # the same date
    assert swapped_date("1961") is None


def test_exact_match_scores_one_with_reasons() -> None:
    match = match_patient(TARGET, TARGET, CONFIG)
    assert match.score == pytest.approx(1.0)
    assert match.explanation == (
        "name 1.00 (token set)",
        "birth date exact",
        "patient id + issuer equal",
        "sex equal",
    )


def test_reformatted_name_same_dob_and_id_matches() -> None:
    candidate = Demographics(name="Hans Mueller", birth_date="19610503", sex="M", patient_id="a123")
    match = match_patient(TARGET, candidate, CONFIG)
    assert match.score >= 0.95
    assert "patient id equal (issuer on one side only)" in match.explanation


def test_swapped_dob_without_id_still_matches() -> None:
    candidate = Demographics(name="hans^müller", birth_date="19610305", sex="M")
    match = match_patient(TARGET, candidate, CONFIG)
    assert "birth date day-month swapped" in match.explanation
    assert "patient id unknown" in match.explanation
    assert CONFIG.min_match_score <= match.score < 1.0


def test_decoy_similar_name_other_dob_and_id_below_threshold() -> None:
    decoy = Demographics(
        name="MÜLLER^Hanna", birth_date="19700101", sex="F", patient_id="B999", issuer="HOSP"
    )
    match = match_patient(TARGET, decoy, CONFIG)
    assert match.score < CONFIG.min_match_score
    assert match.explanation[1:] == ("birth date differs", "patient id differs", "sex differs")


def test_same_name_and_dob_but_other_id_same_issuer_below_threshold() -> None:
    other = Demographics(
        name="MÜLLER^Hans", birth_date="19610503", sex="M", patient_id="Z9", issuer="HOSP"
    )
    assert match_patient(TARGET, other, CONFIG).score < CONFIG.min_match_score


def test_name_only_is_not_enough() -> None:
    assert match_patient(TARGET, Demographics(name="MULLER^HANS"), CONFIG).score < 0.8


def test_equal_id_same_issuer_is_strong_evidence() -> None:
    # a changed family name (marriage): the ID with its issuer and the birth date carry it
    renamed = Demographics(
        name="SCHMIDT^Hans", birth_date="19610503", sex="M", patient_id="A123", issuer="hosp"
    )
    match = match_patient(TARGET, renamed, CONFIG)
    assert "patient id + issuer equal" in match.explanation
    assert match.score >= CONFIG.min_match_score


def test_equal_id_other_issuer_is_no_evidence() -> None:
    same_issuer = Demographics(
        name="SCHMIDT^Hans", birth_date="19610503", sex="M", patient_id="A123", issuer="HOSP"
    )
    other_issuer = Demographics(
        name="SCHMIDT^Hans", birth_date="19610503", sex="M", patient_id="A123", issuer="CLINIC"
    )
    strong = match_patient(TARGET, same_issuer, CONFIG)
    weak = match_patient(TARGET, other_issuer, CONFIG)
    assert "patient id equal, issuers differ (no evidence)" in weak.explanation
    assert weak.score < strong.score
    assert weak.score < CONFIG.min_match_score


def test_sex_unknown_is_neutral() -> None:
    known = match_patient(TARGET, TARGET, CONFIG)
    unknown = match_patient(TARGET, Demographics(**{**_fields(TARGET), "sex": "O"}), CONFIG)
    assert "sex unknown" in unknown.explanation
    assert unknown.score < known.score


def test_weights_come_from_config() -> None:
    by_name_only = PriorsConfig(birth_date_weight=0, patient_id_weight=0, sex_weight=0)
    decoy = Demographics(name="DOE^JOHN", birth_date="19000101", patient_id="X")
    assert match_patient(Demographics(name="John Doe"), decoy, by_name_only).score == 1.0


def test_nothing_printed() -> None:
    text = repr(TARGET) + str(TARGET) + repr(match_patient(TARGET, TARGET, CONFIG))
    for value in ("MÜLLER", "Hans", "19610503", "A123", "HOSP"):
        assert value not in text


def test_demographics_from_dataset_and_json() -> None:
    ds = Dataset()
    ds.PatientName = "MÜLLER^Hans"
    ds.PatientBirthDate = "19610503"
    ds.PatientID = "A123"
    ds.IssuerOfPatientID = "HOSP"
    ds.PatientSex = "M"
    row = {
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "MÜLLER^Hans"}]},
        "00100020": {"vr": "LO", "Value": ["A123"]},
        "00100021": {"vr": "LO", "Value": ["HOSP"]},
        "00100030": {"vr": "DA", "Value": ["19610503"]},
        "00100040": {"vr": "CS", "Value": ["M"]},
    }
    assert demographics_of(ds) == TARGET
    assert demographics_from_json(row) == TARGET
    assert demographics_from_json({"00100010": {"vr": "PN"}}) == Demographics()


def _fields(d: Demographics) -> dict[str, str]:
    return {
        "name": d.name,
        "birth_date": d.birth_date,
        "sex": d.sex,
        "patient_id": d.patient_id,
        "issuer": d.issuer,
    }
