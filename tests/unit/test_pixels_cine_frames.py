"""Frame-by-frame reading of a marker's place on a loop (actors/pixels/cine.py): what holds."""

from __future__ import annotations

import pytest

from dxai.actors.pixels.cine import marker_under, same_marker, shows_marker
from dxai.actors.pixels.phi import build_terms, compile_allow
from dxai.actors.pixels.redactor import LOW, PixelRedactor, _Decide
from dxai.actors.pixels.second_reader import ReadLine
from dxai.actors.pixels.types import Box, Recognition, UInt8Array
from dxai.configs.schema.pixels import PixelPolicyConfig

pytestmark = pytest.mark.unit

REGION, MARKER = Box(248, 187, 320, 220), Box(273, 198, 320, 220)


class _Nothing:
    name = "none"

    def detect(self, image: UInt8Array) -> list[Box]:
        return []

    def recognize(self, crops: list[UInt8Array]) -> list[Recognition]:
        return [Recognition("", 0.0) for _ in crops]

    def read(self, image: UInt8Array) -> list[ReadLine]:
        return []


def _holds(region: Recognition, alone: Recognition, redact_all: bool = True) -> set[str]:
    fake = _Nothing()
    redactor = PixelRedactor(PixelPolicyConfig(), fake, fake, second_reader=fake)
    allow = compile_allow(PixelPolicyConfig().allow_list)
    ctx = _Decide(build_terms(["SMITH^ANN"]), redact_all, allow, 64)
    return redactor._frame_holds(REGION, MARKER, region, alone, "1/10", ctx)


def test_a_clear_counter_passes_and_a_name_holds() -> None:
    assert _holds(Recognition("4/10", 0.99), Recognition("4/10", 0.99)) == set()
    assert _holds(Recognition("B/10", 0.97), Recognition("8/10", 0.99)) == set()
    assert "phi_legible" in _holds(Recognition("SMITH", 0.95), Recognition("SMI", 0.9))
    assert "phi_legible" in _holds(Recognition("SMITH", 0.95), Recognition("", 0.0), False)


def test_an_unsure_or_empty_region_needs_the_marker_to_read_clearly_alone() -> None:
    assert _holds(Recognition("0", 0.49), Recognition("4/10", 0.98)) == set()
    assert _holds(Recognition("", 0.0), Recognition("4/10", 0.98)) == set()
    assert _holds(Recognition("", 0.0), Recognition("", 0.0)) == {LOW}
    assert _holds(Recognition("0", 0.49), Recognition("4/1", 0.3)) == {LOW}
    assert _holds(Recognition("0", 0.49), Recognition("JONES", 0.98)) != set()


def test_marker_geometry_and_similarity() -> None:
    markers = [(Box(0, 0, 50, 20), "DOE"), (MARKER, "1/10")]
    assert marker_under(REGION, markers) == (MARKER, "1/10")
    assert marker_under(Box(100, 100, 120, 110), markers) is None
    assert REGION.union(MARKER) == Box(248, 187, 320, 220)
    assert same_marker("10/10", "1/10") and not same_marker("SMITH", "1/10")
    assert shows_marker(Recognition("FR 30Hz", 0.97), "FR30Hz")
    assert not shows_marker(Recognition("FR 30Hz", 0.6), "FR30Hz")
