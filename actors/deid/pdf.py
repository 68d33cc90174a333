"""Reading the text of a PDF (pypdf) and writing a plain PDF that holds only given text.

An Encapsulated PDF is never passed through: it is replaced by a dummy or, when the profile
cleans documents, by a new PDF written here from its cleaned text (no images, fonts, metadata,
attachments, forms or annotations of the original survive).  The writer needs no library: one
Type 1 Helvetica font in WinAnsi encoding, uncompressed content streams, a cross-reference
table.  Characters that WinAnsi cannot show are transliterated (``ł`` -> ``l``) or become ``?``.

pypdf logs about malformed files with fragments of their content; its logger is switched off
here so that nothing of a document reaches the logs.
"""

from __future__ import annotations

import io
import logging
import textwrap

from dxai.configs.phi import TRANSLITERATIONS, fold_accents

MAX_PDF_PAGES = 500  # a longer document is not read (it is replaced by a dummy)
MAX_PDF_BYTES = 64 * 1024 * 1024
LINE_CHARS = 95  # characters per line of a written page (Helvetica 10 pt on A4)
PAGE_LINES = 60
_PAGE = (595, 842)  # A4 in points
_MARGIN = 50
_LEADING = 12
_ENCODING = "cp1252"  # WinAnsiEncoding

logging.getLogger("pypdf").disabled = True


def is_pdf(data: bytes) -> bool:
    """True when ``data`` starts like a PDF file (``%PDF-`` within its first 1024 bytes)."""
    return b"%PDF-" in data[:1024]


def pdf_text(data: bytes) -> str | None:
    """The text of every page of a PDF, or None when it cannot be read in full.

    None for an encrypted, malformed or oversized (:data:`MAX_PDF_PAGES`,
    :data:`MAX_PDF_BYTES`) document: its text cannot be shown clean.  A document with pages but
    no text (a scan) gives an empty string.
    """
    if len(data) > MAX_PDF_BYTES:
        return None
    from pypdf import PdfReader  # imported on use: the plain header path never needs it

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted or len(reader.pages) > MAX_PDF_PAGES:
            return None
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
    except Exception:  # noqa: BLE001 - a document that does not parse cannot be shown clean
        return None
    return text


def _pdf_char(ch: str) -> str:
    try:
        ch.encode(_ENCODING)
    except UnicodeEncodeError:
        plain = TRANSLITERATIONS.get(ch, fold_accents(ch))
        plain = plain[:1].upper() + plain[1:] if ch.isupper() else plain
        try:
            plain.encode(_ENCODING)
        except UnicodeEncodeError:
            return "?"
        return plain
    return ch


def _pdf_string(line: str) -> bytes:
    try:
        data = line.encode(_ENCODING) if line.isprintable() else b""
    except UnicodeEncodeError:
        data = b""
    if not data and line:
        text = "".join(_pdf_char(ch) for ch in line if ch.isprintable() or ch == "\t")
        data = text.encode(_ENCODING)
    return b"(" + data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _lines(text: str) -> list[str]:
    out: list[str] = []
    for paragraph in text.splitlines() or [""]:
        out.extend(textwrap.wrap(paragraph, LINE_CHARS) or [""])
    return out


def _content(lines: list[str]) -> bytes:
    top = _PAGE[1] - _MARGIN
    parts = [f"BT /F1 10 Tf {_LEADING} TL {_MARGIN} {top} Td".encode()]
    for index, line in enumerate(lines):
        parts.append((b"" if index == 0 else b"T* ") + _pdf_string(line) + b" Tj")
    parts.append(b"ET")
    return b"\n".join(parts)


def _assemble(objects: list[bytes]) -> bytes:
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    start = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    out.write(b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets))
    trailer = f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{start}\n%%EOF\n"
    out.write(trailer.encode())
    return out.getvalue()


def write_text_pdf(text: str) -> bytes:
    """A PDF that shows ``text`` (wrapped, :data:`PAGE_LINES` lines a page) and nothing else."""
    lines = _lines(text)
    pages = [lines[i : i + PAGE_LINES] for i in range(0, len(lines), PAGE_LINES)] or [[""]]
    first_page = 4  # 1 catalog, 2 page tree, 3 font, then (page, content) pairs
    kids = " ".join(f"{first_page + 2 * i} 0 R" for i in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for index, page in enumerate(pages):
        content = _content(page)
        contents = first_page + 2 * index + 1
        page_object = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_PAGE[0]} {_PAGE[1]}] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {contents} 0 R >>"
        )
        objects.append(page_object.encode())
        objects.append(
            f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream"
        )
    return _assemble(objects)
