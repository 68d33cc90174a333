"""The ground-floor PHI vocabulary: folding, months and the written forms of a date."""

from __future__ import annotations

import re

import pytest

from dxai.configs.phi import (
    MONTH_PATTERN,
    MONTHS,
    DateParts,
    date_spellings,
    date_variants,
    fold_accents,
    fold_case,
    normalise,
    parse_date,
)


def test_months_in_calendar_order() -> None:
    assert len(MONTHS) == 12
    assert MONTHS[0] == "Jan" and MONTHS[6] == "Jul" and MONTHS[11] == "Dec"


@pytest.mark.parametrize(
    "text", ["JAN", "January", "Sept", "JUL", "JULY", "JuI", "JU1Y", "June", "Dec."]
)
def test_month_pattern_reads_names_and_ocr_confusions(text: str) -> None:
    assert re.fullmatch(MONTH_PATTERN, text, re.IGNORECASE), text


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Müller", "Muller"),
        ("Zoë Ångström", "Zoe Angstrom"),
        ("AYŞE İSTANBUL", "AYSE ISTANBUL"),
        ("Groß", "Groß"),  # no single base letter: kept
        ("ﬁne", "ﬁne"),  # a ligature would grow: kept
        ("plain ascii", "plain ascii"),
    ],
)
def test_fold_accents_is_one_for_one(text: str, folded: str) -> None:
    assert fold_accents(text) == folded
    assert len(fold_accents(text)) == len(text)


def test_fold_case_lowers_drops_accents_and_reads_separators_as_spaces() -> None:
    assert fold_case("MÜLLER^Jürgen=X") == "muller jurgen x"
    assert fold_case("DOE\tJOHN\r\nX") == "doe john  x"
    assert fold_case("Müller") == fold_case("MULLER") == fold_case("muller")


def test_normalise_keeps_upper_case_ascii_alphanumerics() -> None:
    assert normalise("Müller^J. 12-a") == "MULLERJ12A"
    assert normalise("Groß") == "GROSS"  # upper-case ß is SS
    assert normalise("--- ") == ""


def test_parse_date_reads_the_first_eight_digits() -> None:
    assert parse_date("19960717") == DateParts("1996", "07", "17")
    assert parse_date("1996.07.17") == DateParts("1996", "07", "17")
    assert parse_date("19960717103000.000+0100") == DateParts("1996", "07", "17")
    assert parse_date("20230231") == DateParts("2023", "02", "31")  # PHI even if not a date
    for value in ("1996", "19961317", "19960017", "not a date", ""):
        assert parse_date(value) is None, value


def test_date_parts_fields() -> None:
    fields = DateParts("2001", "07", "05").fields
    assert fields == {
        "y": "2001",
        "yy": "01",
        "m": "07",
        "d": "05",
        "m1": "7",
        "d1": "5",
        "mon": "Jul",
    }


def test_date_variants_written_forms() -> None:
    forms = date_variants("20010705")
    expected = {
        "2001-07-05",
        "2001/07/05",
        "2001.07.05",
        "05/07/2001",
        "07/05/2001",
        "05.07.2001",
        "05-07-2001",
        "07-05-2001",
        "7/5/2001",
        "5.7.2001",
        "07/05/01",
        "05.07.01",
        "05-Jul-2001",
        "05 Jul 2001",
        "5 Jul 2001",
        "Jul 5 2001",
        "05Jul2001",
        "2001 Jul 05",
        "2001-Jul-5",
    }
    assert expected <= forms
    assert "20010705" not in forms  # the value itself is not a variant
    assert date_variants("2001") == set()
    assert date_variants("20011305") == set()


def test_date_spellings_are_the_normalised_variants() -> None:
    for value in ("19430722", "20010705", "20001201", "20230231"):
        variants = {normalise(v) for v in date_variants(value)}
        assert date_spellings(value) == {v for v in variants if len(v) >= 6}, value


def test_date_spellings_forms_and_length_floor() -> None:
    forms = date_spellings("20010705")
    assert {"20010705", "07052001", "05072001", "752001", "070501", "050701"} <= forms
    assert {"05JUL2001", "5JUL2001", "JUL52001", "2001JUL05", "2001JUL5"} <= forms
    assert all(len(f) >= 6 and f == f.upper() for f in forms)
    assert "0701" not in forms
    assert date_spellings("not a date") == set()


def test_fold_case_is_one_for_one_over_the_basic_plane() -> None:
    plane = "".join(map(chr, range(0x10000)))
    assert len(fold_case(plane)) == len(plane)
    assert len(fold_accents(plane)) == len(plane)


def test_fold_case_folds_each_character_on_its_own() -> None:
    assert fold_case("ΟΔΟΣ") == fold_case("οδος") == "οδοσ"  # final sigma too
    assert fold_case("İSTANBUL") == "istanbul"
    assert fold_case("STRAẞE") == fold_case("straße") == "straße"  # ss would grow
