"""The verify pass: scan every element of an output for PHI tokens and original UIDs.

Every depth, private tags and the File Meta are scanned.  Text is decoded in the dataset's own
character set; OB/UN values are searched as Latin-1 and UTF-8 text.  Pixel data (and other bulk
numeric data, which holds no text) is out of scope here: burned-in text is the pixel pipeline's
job.  Findings carry the tag path and a hash of the token, never the token itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag

from dxai.actors.deid.phi import PhiMatcher, token_hash
from dxai.actors.deid.values import BINARY_VRS, NUMERIC_VRS, element_vr, encodings_of, raw_text

_BULK_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})


def _contains_uid(text: str, uid: str) -> bool:
    """True when ``uid`` occurs in ``text`` not as part of a longer UID."""
    start = text.find(uid)
    while start >= 0:
        end = start + len(uid)
        before = text[start - 1] if start else ""
        after = text[end] if end < len(text) else ""
        if not (before and (before.isdigit() or before == ".")) and not (
            after and (after.isdigit() or after == ".")
        ):
            return True
        start = text.find(uid, start + 1)
    return False


@dataclass(frozen=True)
class Finding:
    """One PHI hit: where it is and which token (as a hash), never the value."""

    path: str
    kind: str  # "phi" or "original_uid"
    token_hash: str

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form for reports."""
        return {"path": self.path, "kind": self.kind, "token_hash": self.token_hash}


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of the verify pass over one instance."""

    findings: list[Finding] = field(default_factory=list)
    elements_scanned: int = 0

    @property
    def passed(self) -> bool:
        """True when nothing from the input was found in the output."""
        return not self.findings


class _Scanner:
    def __init__(self, phi_values: Iterable[str], original_uids: Iterable[str]) -> None:
        self.matcher = PhiMatcher(phi_values)
        self.uids = frozenset(u for u in original_uids if u)
        self.findings: list[Finding] = []
        self.scanned = 0

    def _text_hits(self, path: str, text: str) -> None:
        for hit in self.matcher.find(text):
            self.findings.append(Finding(path, "phi", token_hash(hit)))
        for uid in self.uids:
            if _contains_uid(text, uid):
                self.findings.append(Finding(path, "original_uid", token_hash(uid)))

    def element(self, ds: Dataset, tag: BaseTag, path: str, encodings: list[str]) -> None:
        vr = element_vr(ds, tag)
        if vr == "SQ":
            try:
                items = ds[tag].value or ()
            except Exception:  # noqa: BLE001 - an unreadable sequence cannot be shown clean
                self.findings.append(Finding(path, "unscannable", ""))
                return
            for index, item in enumerate(items):
                self.dataset(item, f"{path}[{index}]/")
            return
        if int(tag) in _BULK_TAGS or vr in NUMERIC_VRS:
            return
        self.scanned += 1
        elem = ds.get_item(tag)
        if vr in BINARY_VRS or vr == "OB":
            data = elem.value if isinstance(elem.value, bytes) else b""
            self._text_hits(path, data.decode("latin-1"))
            self._text_hits(path, data.decode("utf-8", "ignore"))
            return
        try:
            text = raw_text(elem, encodings)
        except (ValueError, LookupError, TypeError):
            raw = elem.value if isinstance(elem.value, bytes) else str(elem.value).encode()
            text = raw.decode("latin-1")
        if vr == "UI":
            for uid in text.split("\\"):
                if uid.strip("\x00 ") in self.uids:
                    self.findings.append(Finding(path, "original_uid", token_hash(uid)))
            return
        self._text_hits(path, text)

    def dataset(self, ds: Dataset, prefix: str = "") -> None:
        encodings = encodings_of(ds)
        for tag in list(ds.keys()):
            value = int(tag)
            self.element(ds, tag, f"{prefix}({value >> 16:04X},{value & 0xFFFF:04X})", encodings)


def verify(
    output: Dataset,
    phi_values: Iterable[str],
    *,
    original_uids: Iterable[str] = (),
) -> VerifyResult:
    """Scan ``output`` (all depths, private tags, File Meta) for PHI tokens and original UIDs."""
    scanner = _Scanner(phi_values, original_uids)
    meta = getattr(output, "file_meta", None)
    if isinstance(meta, FileMetaDataset):
        scanner.dataset(meta, "meta:")
    scanner.dataset(output)
    return VerifyResult(findings=scanner.findings, elements_scanned=scanner.scanned)
