"""The shared matching form, typed spellings, PHI patterns and the folded token matcher."""

from __future__ import annotations

import pytest

from dxai.actors.deid.phi import PhiMatcher, name_tokens, tokens_from_value
from dxai.configs.phi import fold_text, fold_text_offsets, spelling_forms
from dxai.configs.phi_patterns import pattern_spans

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Łukaszewicz", "lukaszewicz"),
        ("Müller-Lüdenscheidt", "muller ludenscheidt"),
        ("MÜLLER^Jürgen=X", "muller jurgen x"),
        ("Straße", "strasse"),
        ("Søren Ørsted", "soren orsted"),
        ("Æsir Œuvre Þór Đorđe", "aesir oeuvre thor dorde"),
        ("  DOE,   John.  ", "doe john"),
        ("ﬁne İSTANBUL", "fine istanbul"),
        ("u\u0308ber", "uber"),  # decomposed (NFD) input folds the same
        ("山田^太郎", "山田 太郎"),
    ],
)
def test_fold_text(text: str, folded: str) -> None:
    assert fold_text(text) == folded


def test_fold_text_offsets_agree_with_fold_text_over_the_basic_plane() -> None:
    plane = "".join(map(chr, range(0x20, 0x10000)))
    for start in range(0, len(plane), 4096):
        chunk = plane[start : start + 4096]
        folded, starts, ends = fold_text_offsets(chunk)
        assert folded == fold_text(chunk)
        assert len(starts) == len(ends) == len(folded)
        assert all(0 <= a < b <= len(chunk) for a, b in zip(starts, ends, strict=True))


def test_fold_text_offsets_index_the_original() -> None:
    text = "Call Łukaszewicz-Groß at 10"
    folded, starts, ends = fold_text_offsets(text)
    at = folded.find("lukaszewicz gross")
    assert text[starts[at] : ends[at + len("lukaszewicz gross") - 1]] == "Łukaszewicz-Groß"


@pytest.mark.parametrize(
    ("value", "forms"),
    [
        ("Jürgen", {"jurgen", "juergen"}),
        ("Mueller", {"mueller", "muller"}),
        ("Søren", {"soren", "soeren"}),
        ("O'Brien", {"o brien", "obrien"}),
        ("Müller-Lüdenscheidt", {"muller ludenscheidt", "mueller luedenscheidt"}),
        ("DOE^JOHN", {"doe john"}),  # "do" would be too common: no collapsed form
    ],
)
def test_spelling_forms(value: str, forms: set[str]) -> None:
    assert forms <= spelling_forms(value)
    assert "do john" not in spelling_forms(value)


def test_name_tokens_give_parts_and_both_orders() -> None:
    tokens = name_tokens("Müller-Lüdenscheidt^Jürgen")
    assert {"Müller-Lüdenscheidt", "Müller", "Lüdenscheidt", "Jürgen"} <= tokens
    assert {"Müller-Lüdenscheidt Jürgen", "Jürgen Müller-Lüdenscheidt"} <= tokens
    japanese = tokens_from_value("Yamada^Tarou=山田^太郎=やまだ^たろう", "PN")
    assert {"山田", "太郎", "山田太郎", "やまだ", "たろう", "Yamada", "Tarou"} <= japanese


def test_address_tokens_include_comma_parts() -> None:
    tokens = tokens_from_value("12 Elm Street, Springfield IL 62704", "ST", 0x00101040)
    assert {"12 Elm Street", "Springfield IL 62704"} <= tokens
    assert tokens_from_value("12 Elm Street, Springfield", "ST") == {"12 Elm Street, Springfield"}


@pytest.mark.parametrize(
    ("token", "text", "found"),
    [
        ("Łukaszewicz", "call Dr Lukaszewicz today", ["Lukaszewicz"]),
        ("Müller", "seen by MUELLER", ["MUELLER"]),
        ("Mueller", "seen by Müller", ["Müller"]),
        ("Müller-Lüdenscheidt", "MULLER LUDENSCHEIDT, J", ["MULLER LUDENSCHEIDT"]),
        ("Straße", "STRASSE 5", ["STRASSE"]),
        ("O'Brien", "Mr OBrien", ["OBrien"]),
        ("Jürgen Müller", "JURGEN  MULLER", ["JURGEN  MULLER"]),
        ("山田", "山田太郎様", ["山田"]),
        ("ANN", "SCANNER and Ann", ["Ann"]),
        ("DOE", "do not resuscitate", []),
    ],
)
def test_matcher_folds_case_accents_transliteration_and_punctuation(
    token: str, text: str, found: list[str]
) -> None:
    assert PhiMatcher({token}).find(text) == found


def test_matcher_scrub_with_patterns_removes_what_no_header_holds() -> None:
    matcher = PhiMatcher({"Müller"})
    text = "Dr Kowalczyk saw Mueller on 17/07/1961, tel +44 20 7946 0958. Stable."
    assert matcher.scrub(text) == "Dr Kowalczyk saw on 17/07/1961, tel +44 20 7946 0958. Stable."
    assert matcher.scrub(text, patterns=True) == "Dr saw on , tel . Stable."


def test_matcher_scrubs_again_what_a_removal_joins() -> None:
    matcher = PhiMatcher({"XQZ"})
    assert matcher.scrub("Dr XQZ Smith", patterns=True) == "Dr"


@pytest.mark.parametrize(
    ("text", "phi", "kind"),
    [
        ("Call +44 20 7946 0958 now", "+44 20 7946 0958", "phone"),
        ("Call 020 7946 0958 now", "020 7946 0958", "phone"),
        ("Call (555) 123-4567 now", "(555) 123-4567", "phone"),
        ("電話03-1234-5678", "03-1234-5678", "phone"),
        ("Bleep 4521 please", "4521", "phone"),
        ("mail j.doe@example.org.", "j.doe@example.org", "email"),
        ("see https://portal.example.org/p/1.", "https://portal.example.org/p/1", "url"),
        ("at 12 Elm Street today", "12 Elm Street", "address"),
        ("Hauptstraße 12", "Hauptstraße 12", "address"),
        ("ul. Marszałkowska 10/12", "ul. Marszałkowska 10/12", "address"),
        ("London SW1A 1AA", "SW1A 1AA", "postcode"),
        ("Springfield IL 62704", "IL 62704", "postcode"),
        ("Escherweg 2, 26121 Oldenburg", "26121 Oldenburg", "postcode"),
        ("DOB 17/07/1961.", "17/07/1961", "date"),
        ("on 1961-07-17T10:15", "1961-07-17", "date"),
        ("on 17.07.61", "17.07.61", "date"),
        ("on 19610717", "19610717", "date"),
        ("on 17 Jul 1961", "17 Jul 1961", "date"),
        ("on July 17th, 1961", "July 17th, 1961", "date"),
        ("am 17. Juli 1961", "17. Juli 1961", "date"),
        ("since March 2020", "March 2020", "date"),
        ("1961年7月17日生", "1961年7月17日", "date"),
        ("at 10:15", "10:15", "time"),
        ("at 9:15 am", "9:15 am", "time"),
        ("at 1430 hrs", "1430 hrs", "time"),
        ("a 54-year-old man", "54-year-old", "age"),
        ("54 y/o", "54 y/o", "age"),
        ("aged 54", "aged 54", "age"),
        ("MRN 5550123", "5550123", "id"),
        ("Acc: A12345", "A12345", "id"),
        ("NHS No 485 777 3456", "485 777 3456", "id"),
        ("call Dr Łukaszewicz at", "Łukaszewicz", "name"),
        ("by Prof. Anna van der Berg, today", "Anna van der Berg", "name"),
        ("Dr. med. Jürgen Müller-Lüdenscheidt and", "Jürgen Müller-Lüdenscheidt", "name"),
        ("Referred by: Jan Kowalski.", "Jan Kowalski", "name"),
        ("Patient: DOE JOHN", "DOE JOHN", "name"),
        ("Dear Mr O'Brien,", "O'Brien", "name"),
    ],
)
def test_patterns_find_phi_no_header_holds(text: str, phi: str, kind: str) -> None:
    found = {(text[a:b], k) for a, b, k in pattern_spans(text)}
    assert (phi, kind) in found, found


@pytest.mark.parametrize(
    "text",
    [
        "AX T2 5MM FLAIR",
        "MR BRAIN W/WO CONTRAST",
        "CT CHEST 2.5mm",
        "Ratio 1:20, TR 300-2000, b=0-1000",
        "there may 5 lesions be",
        "DR CHEST PA",
        "MR KNEE",
        "MS lesions",
        "1.2.840.10008.5.1.4.1.1.2",
        "No acute intracranial abnormality.",
        "Slice 12 of 40, 5000 Hz",
    ],
)
def test_patterns_leave_ordinary_descriptors_alone(text: str) -> None:
    assert pattern_spans(text) == ()
