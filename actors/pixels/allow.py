"""The allow list under ``redact_all_text``: which recognised text is a marker, not PHI.

An allow-list entry (``pixel_policy.allow_list``) matches one marker: ``L``, ``AP``, ``5 cm``,
``TIS 0.4``, ``D 12.0cm``, ``C5-1``.  OCR of small annotation fonts often drops the spaces
between markers (``W:400L:40``, ``MI1.1TIS0.3``) and reads an O as 0 inside a word (``Zo0m``), so
a line is cut into *pieces*, each matching an entry as a whole, and a token is kept when pieces
cover every letter and digit in it.  A piece stands on its own (nothing alphanumeric touches it)
or touches other pieces; a short piece without a digit (``L``, ``AP``, ``MI``) must stand on its
own, and two pieces of letters only never touch: a name such as ``HARP`` is not ``H`` + ``A`` +
``R`` + ``P``, nor ``CORMAG`` ``COR`` + ``MAG``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# the longest marker one entry matches (a parameter, its value and unit: "DEPTH 12.5 cm")
MAX_PIECE = 24
# a piece of letters only this long may touch a piece with digits ("2.5ERECT")
STRONG_LETTERS = 3
_LOOKALIKE_IN_WORD = re.compile(r"(?<=[A-Za-z])[01](?=[A-Za-z])")
# the second reading: every l and | as I; 0s and 1s with a letter on one side and no digit on
# the other as O and I; a 1 before a small letter as I (Se21m14)
_LOOKALIKE_L = re.compile(r"[l|]")
_LOOKALIKE_RUN = re.compile(
    r"(?<=[A-Za-z])[01]+(?![0-9.])|(?<![0-9A-Za-z.])[01]+(?=[A-Za-z])|1(?=[a-z])"
)


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int
    digits: bool
    strong: bool
    mixed: bool  # letters and digits: a marker such as 5cm, FR30Hz (never part of a name)


def _views(text: str) -> tuple[str, str]:
    """Two readings of ``text``, one for one: 0 and 1 between letters as O and I (``Zo0m``);
    also l and | anywhere and 0s and 1s against a letter, not a digit (``Z00m``, ``Se2lm14``)."""

    def letter(m: re.Match[str]) -> str:
        return "O" if m.group() == "0" else "I"

    def letters(m: re.Match[str]) -> str:
        return m.group().replace("0", "O").replace("1", "I")

    first = _LOOKALIKE_IN_WORD.sub(letter, text)
    return first, _LOOKALIKE_RUN.sub(letters, _LOOKALIKE_L.sub("I", first))


def _kind(ch: str) -> int:
    return 0 if ch.isspace() else 1 if ch.isalpha() else 2 if ch.isdigit() else 3


def _cuts(view: str, phi: Sequence[bool]) -> list[int]:
    """Positions where the kind of character changes (letter, digit, space, other), and the
    edges of PHI found otherwise (``SEATTLEGRACE|G52``)."""
    return [
        i
        for i in range(len(view) + 1)
        if i in (0, len(view)) or _kind(view[i - 1]) != _kind(view[i]) or phi[i - 1] != phi[i]
    ]


def _pieces(view: str, allow: Sequence[re.Pattern[str]], phi: Sequence[bool]) -> list[_Piece]:
    """Every stretch between two cuts that an allow-list entry matches as a whole."""
    cuts = _cuts(view, phi)
    out: list[_Piece] = []
    for i, start in enumerate(cuts):
        if start == len(view) or view[start].isspace():
            continue
        for end in cuts[i + 1 :]:
            if end - start > MAX_PIECE:
                break
            part = view[start:end]
            if part[-1].isspace() or not any(ch.isalnum() for ch in part):
                continue
            if any(p.fullmatch(part) for p in allow):
                digits = any(ch.isdigit() for ch in part)
                letters = sum(ch.isalpha() for ch in part)
                strong = digits or letters >= STRONG_LETTERS
                out.append(_Piece(start, end, digits, strong, digits and letters > 0))
    return out


def _touches(view: str, piece: _Piece, kept: Sequence[_Piece], phi: Sequence[bool]) -> bool:
    """Whether ``piece`` may stay: each side free, or touching a kept piece it may touch.

    A side touching PHI found otherwise (``phi``: a name, a date) is free for a marker of
    letters and digits (``JohnDoe5cm``: the name is filled, ``5cm`` stays).
    """

    def free(i: int) -> bool:
        return not 0 <= i < len(view) or not view[i].isalnum() or (piece.mixed and phi[i])

    free_left, free_right = free(piece.start - 1), free(piece.end)
    if not piece.strong:
        return free_left and free_right

    def partner(other: _Piece) -> bool:
        return other.strong and (other.digits or piece.digits)

    left = free_left or any(o.end == piece.start and partner(o) for o in kept)
    right = free_right or any(o.start == piece.end and partner(o) for o in kept)
    return left and right


def allowed_cover(
    text: str, allow: Sequence[re.Pattern[str]], phi: Sequence[bool] | None = None
) -> list[bool]:
    """For each character of ``text``: whether it belongs to an allowed marker (on either
    reading of :func:`_views`); ``phi`` marks the characters found to be PHI otherwise."""
    cover = [False] * len(text)
    found = phi if phi is not None else cover[:]
    for view in dict.fromkeys(_views(text)):
        for piece in _kept(view, allow, found):
            cover[piece.start : piece.end] = [True] * (piece.end - piece.start)
    return cover


def _kept(view: str, allow: Sequence[re.Pattern[str]], phi: Sequence[bool]) -> list[_Piece]:
    """The pieces of ``view`` that stand on their own or touch partners that stay."""
    kept = _pieces(view, allow, phi)
    while True:  # drop pieces left without a partner until none is dropped
        still = [p for p in kept if _touches(view, p, kept, phi)]
        if len(still) == len(kept):
            return kept
        kept = still


def all_text_spans(
    text: str,
    allow: Sequence[re.Pattern[str]],
    phi: Sequence[tuple[int, int, str]] = (),
) -> list[tuple[int, int, str]]:
    """``redact_all_text``: every token with a letter or digit that is neither an allowed
    marker nor PHI already found (``phi``: spans of ``text``)."""
    found = [False] * len(text)
    for start, end, _ in phi:
        found[start:end] = [True] * (end - start)
    cover = allowed_cover(text, allow, found) if allow else found
    out: list[tuple[int, int, str]] = []
    for m in re.finditer(r"\S+", text):
        chars = enumerate(m.group(), m.start())
        if any(ch.isalnum() and not (cover[i] or found[i]) for i, ch in chars):
            out.append((m.start(), m.end(), "all_text"))
    return out
