"""Keyed, deterministic pseudonyms: UIDs, patient names and IDs, per-patient date shifts.

Everything is derived with HMAC-SHA256 under the site key, so the same input and key give the same
output in every file and every run, and nobody without the key can recompute or reverse it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

UID_ROOT = "2.25."
_UID_MAX = 64
_DA_FORMAT = "%Y%m%d"


def _mac(key: bytes, domain: str, value: str) -> bytes:
    return hmac.new(key, f"{domain}\x00{value}".encode(), hashlib.sha256).digest()


def keyed_uid(key: bytes, uid: str) -> str:
    """``2.25.<int>`` from HMAC-SHA256(key, uid); at most 64 characters, no leading zeros."""
    digest = _mac(key, "uid", uid.strip().rstrip("\x00"))
    number = int.from_bytes(digest[:16], "big")  # 128 bits: at most 39 digits
    out = f"{UID_ROOT}{number}"
    return out[:_UID_MAX]


@dataclass(frozen=True)
class Pseudonymizer:
    """Derives every replacement value from one secret key."""

    key: bytes
    date_shift_max_days: int = 365

    def uid(self, uid: str) -> str:
        """The keyed replacement of ``uid``."""
        return keyed_uid(self.key, uid)

    def patient_id(self, original: str) -> str:
        """A pseudonymous Patient ID (``DXAI`` + 12 hex digits); empty input -> ``DXAIANON``."""
        if not original.strip():
            return "DXAIANON"
        return "DXAI" + _mac(self.key, "pid", original.strip()).hex()[:12].upper()

    def patient_name(self, patient_id: str, name: str) -> str:
        """A pseudonymous Patient's Name ``ANON^<8 hex>`` keyed on the ID (or the name)."""
        basis = patient_id.strip() or name.strip()
        return "ANON^" + _mac(self.key, "pname", basis).hex()[:8].upper()

    def date_offset_days(self, patient_id: str) -> int:
        """Per-patient offset in days, never zero, within ``±date_shift_max_days``."""
        span = self.date_shift_max_days
        raw = int.from_bytes(_mac(self.key, "date", patient_id.strip())[:8], "big")
        offset = raw % (2 * span) - span  # in [-span, span - 1]
        return offset if offset != 0 else span

    def shift_da(self, value: str, days: int) -> str:
        """Shift one DA value (``YYYYMMDD``; partial values keep their precision)."""
        text = value.strip()
        if len(text) < 4 or not text[:4].isdigit():
            return "19000101"
        padded = (text + "0101")[:8] if len(text) in (4, 6) else text[:8]
        try:
            day = dt.datetime.strptime(padded, _DA_FORMAT).date()
        except ValueError:
            return "19000101"
        shifted = (day + dt.timedelta(days=days)).strftime(_DA_FORMAT)
        return shifted[: len(text)] if len(text) in (4, 6) else shifted

    def shift_dt(self, value: str, days: int) -> str:
        """Shift the date part of one DT value; time, fraction and offset are kept."""
        text = value.strip()
        head = text[:8] if len(text) >= 8 else text
        return self.shift_da(head, days) + text[len(head) :]
