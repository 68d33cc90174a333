"""Fake patient, staff and site identities, deterministic from a seed.

Every value here is invented; the generator plants them as "PHI" so that de-identification can be
judged against a known ground truth.  A few names need a non-ASCII character set (ISO_IR 100 for
Latin-1, ISO_IR 192 for UTF-8) so that character-set handling is exercised too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# (family, given, specific character set or None for plain ASCII)
_NAMES: tuple[tuple[str, str, str | None], ...] = (
    ("DOE", "JOHN", None),
    ("Müller", "Jürgen", "ISO_IR 100"),
    ("Ødegård", "Åse", "ISO_IR 192"),
    ("SMITH", "MARGARET", None),
    ("GARCÍA", "JOSÉ", "ISO_IR 100"),
    ("Nguyễn", "Thị Lan", "ISO_IR 192"),
    ("O'BRIEN", "PATRICK", None),
    ("Lefèvre", "Hélène", "ISO_IR 100"),
    ("KOWALSKI", "ANNA", None),
    ("JOHNSON", "WILLIAM", None),
)
_STAFF: tuple[str, ...] = (
    "HOUSE^GREGORY^^DR",
    "GREY^MEREDITH",
    "QUINN^MICHAELA^^DR",
    "KILDARE^JAMES",
    "WELBY^MARCUS^^DR",
    "ROSS^DOUGLAS",
)
_STREETS = ("Elm Street", "Harbour Road", "Lindenallee", "Rue des Lilas", "Maple Avenue")
_CITIES = ("Springfield", "Bergen", "München", "Lyon", "Riverton")
_INSTITUTIONS = (
    ("SAINT ELSEWHERE HOSPITAL", "12 Hospital Way, Boston"),
    ("COUNTY GENERAL", "300 Lake Shore Drive, Chicago"),
    ("KLINIKUM NORDSTADT", "Hauptstrasse 5, Hannover"),
    ("SEATTLE GRACE", "1 Grace Plaza, Seattle"),
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class FakeIdentity:
    """One invented patient with the staff and site around their studies."""

    family: str
    given: str
    charset: str | None
    mrn: str
    other_mrn: str
    birth_date: str  # YYYYMMDD
    sex: str
    address: str
    phone: str
    referring: str
    performing: str
    operator: str
    institution: str
    institution_address: str
    station: str

    @property
    def dicom_name(self) -> str:
        """The name as a DICOM PN value (``FAMILY^GIVEN``)."""
        return f"{self.family}^{self.given}"

    @property
    def birth_year(self) -> int:
        """Year of birth as an int."""
        return int(self.birth_date[:4])

    def name_formats(self) -> tuple[str, ...]:
        """The name as it is typically burned into pixels: PN, "Given Family", "FAMILY, GIVEN"."""
        return (
            self.dicom_name,
            f"{self.given.title()} {self.family.title()}",
            f"{self.family.upper()}, {self.given.upper()}",
        )

    def dob_formats(self) -> tuple[str, ...]:
        """The birth date as YYYYMMDD, MM/DD/YYYY, YYYY-MM-DD and DD-Mon-YYYY."""
        y, m, d = self.birth_date[:4], self.birth_date[4:6], self.birth_date[6:]
        return (self.birth_date, f"{m}/{d}/{y}", f"{y}-{m}-{d}", f"{d}-{_MONTHS[int(m) - 1]}-{y}")


def make_identity(seed: int, index: int) -> FakeIdentity:
    """The ``index``-th invented patient for ``seed`` (same inputs, same identity)."""
    rng = random.Random(f"dxai-synth-identity-{seed}-{index}")
    family, given, charset = _NAMES[(seed + index) % len(_NAMES)]
    year, month, day = rng.randint(1930, 2010), rng.randint(1, 12), rng.randint(1, 28)
    institution, inst_address = rng.choice(_INSTITUTIONS)
    staff = rng.sample(_STAFF, 3)
    address = f"{rng.randint(1, 999)} {rng.choice(_STREETS)}, {rng.choice(_CITIES)}"
    if charset is None and not address.isascii():
        charset = "ISO_IR 100"  # an ASCII name can still live in München
    return FakeIdentity(
        family=family,
        given=given,
        charset=charset,
        mrn=f"MRN{rng.randint(1000000, 9999999)}",
        other_mrn=f"{rng.randint(100, 999)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
        birth_date=f"{year:04d}{month:02d}{day:02d}",
        sex=rng.choice("MF"),
        address=address,
        phone=f"+1-555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
        referring=staff[0],
        performing=staff[1],
        operator=staff[2],
        institution=institution,
        institution_address=inst_address,
        station=f"{institution.split()[0][:6]}_RAD{rng.randint(1, 9)}",
    )
