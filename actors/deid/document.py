"""Encapsulated documents (PDF, text, CDA ...): a dummy by default, or their cleaned text.

PS3.15 Table E.1-1 gives Encapsulated Document ``(0042,0011)`` the action ``D``: the document
is replaced by a dummy of its kind (a one-page PDF that reads ``ANONYMIZED`` for a PDF).  With
the profile's ``clean_encapsulated_documents`` the text is read instead and written back clean:

- a PDF's text (:func:`dxai.actors.deid.pdf.pdf_text`) is cleaned and written as a new plain
  PDF (nothing else of the original survives); a PDF whose text cannot be read in full
  (encrypted, malformed, oversized) or that holds no text (a scan) gets the dummy;
- ``text/plain`` is decoded (UTF-8, else Latin-1), cleaned and written back in UTF-8;
- any other kind (CDA XML, STL, OBJ, MTL ...) gets the dummy: it is not cleaned here.

Encapsulated Document Length ``(0042,0015)`` follows the new value.  No PHI is logged.
"""

from __future__ import annotations

from collections.abc import Callable

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from dxai.actors.deid.pdf import is_pdf, pdf_text, write_text_pdf
from dxai.actors.deid.values import DUMMY_TEXT, encodings_of, text_of

ENCAPSULATED_DOCUMENT = 0x00420011
MIME_TYPE = 0x00420012
DOCUMENT_LENGTH = 0x00420015
PDF_MIME = "application/pdf"
TEXT_MIME = "text/plain"


def mime_type(ds: Dataset) -> str:
    """The MIME Type of Encapsulated Document of ``ds``, lower case (empty when absent)."""
    elem = ds.get_item(BaseTag(MIME_TYPE))
    if elem is None:
        return ""
    return text_of(elem, encodings_of(ds)).strip("\x00 ").lower()


def document_bytes(ds: Dataset) -> bytes:
    """The encapsulated document's bytes (empty when absent or not bytes)."""
    value = ds.get_item(BaseTag(ENCAPSULATED_DOCUMENT))
    data = value.value if value is not None else None
    return bytes(data) if isinstance(data, bytes | bytearray) else b""


def dummy_document(mime: str) -> bytes:
    """A dummy of the document's kind: a PDF for a PDF, the dummy text for text, else 2 NULs."""
    if mime == PDF_MIME:
        return write_text_pdf(DUMMY_TEXT)
    if mime.startswith("text/"):
        return DUMMY_TEXT.encode("ascii")
    return b"\x00\x00"


def set_document(ds: Dataset, data: bytes) -> None:
    """Replace the encapsulated document of ``ds`` (and its length, when present)."""
    ds[ENCAPSULATED_DOCUMENT] = DataElement(ENCAPSULATED_DOCUMENT, "OB", data)
    if DOCUMENT_LENGTH in ds:
        ds[DOCUMENT_LENGTH] = DataElement(DOCUMENT_LENGTH, "UL", len(data))


def document_text(data: bytes, mime: str) -> str | None:
    """The readable text of a document: a PDF's text, decoded text; None when unreadable."""
    if mime == PDF_MIME or is_pdf(data):
        return pdf_text(data)
    if mime.startswith("text/") or not mime:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    return None


def cleaned_document(data: bytes, mime: str, scrub: Callable[[str], str]) -> bytes | None:
    """The document rewritten from its ``scrub``-bed text, or None when the dummy must go in."""
    if mime == PDF_MIME or is_pdf(data):
        text = pdf_text(data)
        if text is None or not text.strip():  # unreadable, or a scan: its images are not read
            return None
        return write_text_pdf(scrub(text) or DUMMY_TEXT)
    if mime == TEXT_MIME:
        text = document_text(data, mime)
        return None if text is None else scrub(text).encode("utf-8")
    return None
