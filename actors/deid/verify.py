"""The verify pass: scan every element of an output for PHI tokens and original UIDs.

Every depth, private tags and the File Meta are scanned.  Text is decoded in the dataset's own
character set; OB/UN values are searched as Latin-1 and UTF-8 text.  Pixel data (and other bulk
numeric data, which holds no text) is out of scope here: burned-in text is the pixel pipeline's
job.  Findings carry the tag path and a hash of the token, never the token itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag

from dxai.actors.deid.context import tag_text
from dxai.actors.deid.phi import PhiMatcher, token_hash
from dxai.actors.deid.values import (
    BINARY_VRS,
    NUMERIC_VRS,
    elements_of,
    encodings_of,
    raw_text,
    vr_of,
)

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


# One scanned text: (path prefix, tag, text); text None marks a UI element's original UID hit.
_Entry = tuple[str, int, str | None]


class _Scanner:
    """Gathers the text of every scanned element, then searches all of it at once.

    Each token (and each original UID) is first looked for in the whole output joined into one
    string; only the few that occur there are then located element by element, so a clean
    output costs one decode per element and one ``in`` test per token.
    """

    def __init__(self, phi_values: Iterable[str], original_uids: Iterable[str]) -> None:
        self.phi_values = phi_values
        self.uids = frozenset(u for u in original_uids if u)
        self.entries: list[_Entry] = []
        self.ui_hits: dict[tuple[str, int], list[str]] = {}
        self.unscannable = False
        self.scanned = 0

    def _sequence(self, ds: Dataset, tag: BaseTag, path: str) -> None:
        try:
            items = ds[tag].value or ()
        except Exception:  # noqa: BLE001 - an unreadable sequence cannot be shown clean
            self.entries.append((path, -1, None))
            self.unscannable = True
            return
        for index, item in enumerate(items):
            self.dataset(item, f"{path}[{index}]/")

    def _element(
        self, elem: RawDataElement | DataElement, vr: str, prefix: str, enc: list[str]
    ) -> None:
        tag = int(elem.tag)
        if tag in _BULK_TAGS or vr in NUMERIC_VRS:
            return
        self.scanned += 1
        if vr in BINARY_VRS:
            data = elem.value if isinstance(elem.value, bytes) else b""
            self.entries.append((prefix, tag, data.decode("latin-1")))
            self.entries.append((prefix, tag, data.decode("utf-8", "ignore")))
            return
        try:
            text = raw_text(elem, enc)
        except (ValueError, LookupError, TypeError):
            raw = elem.value if isinstance(elem.value, bytes) else str(elem.value).encode()
            text = raw.decode("latin-1")
        if vr != "UI":
            self.entries.append((prefix, tag, text))
            return
        hits = [uid for uid in text.split("\\") if uid.strip("\x00 ") in self.uids]
        if hits:
            self.ui_hits[(prefix, tag)] = hits
            self.entries.append((prefix, tag, None))

    def dataset(self, ds: Dataset, prefix: str = "") -> None:
        encodings = encodings_of(ds)
        for tag, elem in elements_of(ds):
            vr = vr_of(elem)
            if vr == "SQ":
                self._sequence(ds, tag, prefix + tag_text(int(tag)))
            else:
                self._element(elem, vr, prefix, encodings)

    def findings(self) -> list[Finding]:
        """Locate the tokens and UIDs that occur in the gathered text, element by element."""
        haystack = "\x00".join(text for _, _, text in self.entries if text)
        matcher = PhiMatcher.for_text(self.phi_values, haystack)
        uids = [uid for uid in self.uids if uid in haystack]
        found: list[Finding] = []
        if not (matcher.tokens or uids or self.ui_hits or self.unscannable):
            return found
        for prefix, tag, text in self.entries:
            path = prefix + tag_text(tag) if tag >= 0 else prefix
            if tag < 0:
                found.append(Finding(path, "unscannable", ""))
            elif text is None:
                found.extend(
                    Finding(path, "original_uid", token_hash(u))
                    for u in self.ui_hits[(prefix, tag)]
                )
            else:
                found.extend(Finding(path, "phi", token_hash(hit)) for hit in matcher.find(text))
                found.extend(
                    Finding(path, "original_uid", token_hash(u))
                    for u in uids
                    if _contains_uid(text, u)
                )
        return found


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
    return VerifyResult(findings=scanner.findings(), elements_scanned=scanner.scanned)
