"""The verify pass: scan every element of an output for PHI tokens, PHI patterns and UIDs.

Every depth, private tags and the File Meta are scanned.  Text is decoded in the dataset's own
character set; OB/UN values are searched as Latin-1 and UTF-8 text.  Tokens are looked for in
every typed spelling (case, accents, transliteration and punctuation folded: see
:class:`~dxai.actors.deid.phi.PhiMatcher`).  Free-text elements (those the profile cleans as
text: the ``free_text`` predicate) are also searched for PHI patterns that no header value
gives (:func:`dxai.configs.phi_patterns.pattern_spans`: phone numbers, addresses, dates, names
after titles ...).  An encapsulated document is read as its text (a PDF through pypdf) and
searched for both; a PDF whose text cannot be read makes the instance unscannable, so it is
held.  Pixel data (and other bulk numeric data, which holds no text) is out of scope here:
burned-in text is the pixel pipeline's job.  Findings carry the tag path and a hash of the
token, never the token itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag

from dxai.actors.deid.context import tag_text
from dxai.actors.deid.document import ENCAPSULATED_DOCUMENT, document_text, mime_type
from dxai.actors.deid.pdf import is_pdf
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
PROSE_VRS = frozenset({"LT", "ST", "UT"})
#: The VRs whose elements may be free text (a :data:`FreeText` is asked about these only).
FREE_TEXT_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "UC"})

#: ``(tag, VR) -> True`` for an element whose text is searched for PHI patterns too.
FreeText = Callable[[int, str], bool]


def prose(tag: int, vr: str) -> bool:
    """The default :data:`FreeText`: the long-text VRs (LT, ST, UT) of public elements."""
    return vr in PROSE_VRS and not tag >> 16 & 1


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
    kind: str  # "phi", "pattern:<kind>" (phone, date, name ...), "original_uid", "unscannable"
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


# One scanned text: (path prefix, tag, text, free text); text None marks a UI element's
# original UID hit.
_Entry = tuple[str, int, str | None, bool]


class _Scanner:
    """Gathers the text of every scanned element, then searches all of it at once.

    Each token (and each original UID) is first looked for in the whole output joined into one
    string; only the few that occur there are then located element by element, so a clean
    output costs one decode per element and one ``in`` test per token.
    """

    def __init__(
        self, phi_values: Iterable[str], original_uids: Iterable[str], free_text: FreeText
    ) -> None:
        self.phi_values = phi_values
        self.free_text = free_text
        self.uids = frozenset(u for u in original_uids if u)
        self.entries: list[_Entry] = []
        self.ui_hits: dict[tuple[str, int], list[str]] = {}
        self.unscannable = False
        self.scanned = 0

    def _sequence(self, ds: Dataset, tag: BaseTag, path: str) -> None:
        try:
            items = ds[tag].value or ()
        except Exception:  # noqa: BLE001 - an unreadable sequence cannot be shown clean
            self.entries.append((path, -1, None, False))
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
            self.entries.append((prefix, tag, data.decode("latin-1"), False))
            self.entries.append((prefix, tag, data.decode("utf-8", "ignore"), False))
            return
        try:
            text = raw_text(elem, enc)
        except (ValueError, LookupError, TypeError):
            raw = elem.value if isinstance(elem.value, bytes) else str(elem.value).encode()
            text = raw.decode("latin-1")
        if vr != "UI":
            free = vr in FREE_TEXT_VRS and self.free_text(tag, vr)
            self.entries.append((prefix, tag, text, free))
            return
        hits = [uid for uid in text.split("\\") if uid.strip("\x00 ") in self.uids]
        if hits:
            self.ui_hits[(prefix, tag)] = hits
            self.entries.append((prefix, tag, None, False))

    def _document(self, ds: Dataset, elem: RawDataElement | DataElement, prefix: str) -> None:
        """An encapsulated document's text (a PDF's read by pypdf), searched as free text."""
        data = elem.value if isinstance(elem.value, bytes) else b""
        mime = mime_type(ds)
        text = document_text(data, mime) if data else ""
        if text is None and (is_pdf(data) or mime == "application/pdf"):
            self.entries.append((prefix + tag_text(ENCAPSULATED_DOCUMENT), -1, None, False))
            self.unscannable = True
        elif text:
            self.entries.append((prefix, ENCAPSULATED_DOCUMENT, text, True))

    def dataset(self, ds: Dataset, prefix: str = "") -> None:
        encodings = encodings_of(ds)
        for tag, elem in elements_of(ds):
            vr = vr_of(elem)
            if vr == "SQ":
                self._sequence(ds, tag, prefix + tag_text(int(tag)))
                continue
            if tag == ENCAPSULATED_DOCUMENT:
                self._document(ds, elem, prefix)
            self._element(elem, vr, prefix, encodings)

    def findings(self) -> list[Finding]:
        """Locate the tokens, patterns and UIDs in the gathered text, element by element."""
        haystack = "\x00".join(text for _, _, text, _ in self.entries if text)
        matcher = PhiMatcher.for_text(self.phi_values, haystack)
        uids = [uid for uid in self.uids if uid in haystack]
        found: list[Finding] = []
        entries = self.entries
        if not (matcher.tokens or uids or self.ui_hits or self.unscannable):
            entries = [entry for entry in entries if entry[3] and entry[2]]  # patterns only
        for prefix, tag, text, flag in entries:
            path = prefix + tag_text(tag) if tag >= 0 else prefix
            if tag < 0:
                found.append(Finding(path, "unscannable", ""))
            elif text is None:
                found.extend(
                    Finding(path, "original_uid", token_hash(u))
                    for u in self.ui_hits[(prefix, tag)]
                )
            else:
                found.extend(_text_findings(path, text, flag, matcher))
                found.extend(
                    Finding(path, "original_uid", token_hash(u))
                    for u in uids
                    if _contains_uid(text, u)
                )
        return found


def _text_findings(path: str, text: str, free_text: bool, matcher: PhiMatcher) -> list[Finding]:
    """Token hits in ``text`` and, for free text, pattern hits (each found span once)."""
    spans = matcher.spans(text, patterns=free_text)
    seen: set[tuple[str, str]] = set()
    out = []
    for start, end, kind in spans:
        key = ("phi" if kind == "phi" else f"pattern:{kind}", text[start:end])
        if key not in seen:
            seen.add(key)
            out.append(Finding(path, key[0], token_hash(key[1])))
    return out


def verify(
    output: Dataset,
    phi_values: Iterable[str],
    *,
    original_uids: Iterable[str] = (),
    free_text: FreeText = prose,
) -> VerifyResult:
    """Scan ``output`` (all depths, private tags, File Meta) for PHI tokens and original UIDs.

    Elements for which ``free_text(tag, VR)`` is true, and encapsulated documents, are also
    searched for PHI patterns.
    """
    scanner = _Scanner(phi_values, original_uids, free_text)
    meta = getattr(output, "file_meta", None)
    if isinstance(meta, FileMetaDataset):
        scanner.dataset(meta, "meta:")
    scanner.dataset(output)
    return VerifyResult(findings=scanner.findings(), elements_scanned=scanner.scanned)
