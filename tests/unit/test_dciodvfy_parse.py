"""Parsing of dciodvfy output (no dciodvfy needed: the text is real output, values replaced)."""

from __future__ import annotations

import pytest

from dxai.actors.validation import parse_dciodvfy_output, run_dciodvfy
from dxai.configs.errors import ValidatorUnavailableError

SAMPLE = """\
Warning - Value dubious for this VR - (0x0010,0x0010) PN Patient's Name  PN [1] = <ANON123> - \
Retired Person Name form
(0x0011,0x0001) LO PrivateCreator  - Error - Bad private owner value - element must be greater \
than or equal to 0x0010
CTImage
Error - Missing attribute Type 1 Required Element=<Modality> Module=<GeneralSeries>
Error - Value invalid for this VR - (0x0010,0x1010) AS Patient's Age  AS [1] = <75Y> - Length \
invalid for this VR = 3, expected == 4
   <xsd:element name="Rows" type="xsd:unsignedInt"/>

Warning - is only permitted to be empty when actually unknown - attribute <Laterality>
"""


def test_sorts_lines() -> None:
    report = parse_dciodvfy_output(SAMPLE, returncode=1)
    assert report.iod == "CTImage"
    assert len(report.errors) == 3
    assert report.errors[0].startswith("(0x0011,0x0001)")
    assert len(report.warnings) == 2
    assert report.other == ['   <xsd:element name="Rows" type="xsd:unsignedInt"/>']
    assert not report.ok
    assert not report.crashed


def test_kinds_blank_quoted_values() -> None:
    report = parse_dciodvfy_output(SAMPLE)
    kinds = report.error_kinds() | report.warning_kinds()
    assert not any("75Y" in k or "ANON123" in k for k in kinds)
    assert any("AS [1] = <> - Length" in k for k in kinds)
    assert any("attribute <Laterality>" in k for k in kinds)


def test_clean_and_crashed() -> None:
    assert parse_dciodvfy_output("MRImage\nWarning - x\n").ok
    crashed = parse_dciodvfy_output("dciodvfy: attrothr.cc:46: Assertion failed.\n", returncode=-6)
    assert crashed.crashed
    assert not crashed.ok
    assert crashed.iod is None


def test_missing_executable() -> None:
    with pytest.raises(ValidatorUnavailableError):
        run_dciodvfy("/nonexistent.dcm", executable="dciodvfy-not-installed")
