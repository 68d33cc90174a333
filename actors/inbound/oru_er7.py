"""Small builders over python-hl7's containers: escaped fields, components, segments.

Separators are HL7's defaults (``|^~\\&``).  Every value goes through :func:`escape`: the
separators and the escape character become ``\\F\\``, ``\\S\\``, ``\\R\\``, ``\\T\\``, ``\\E\\``
(python-hl7's :func:`hl7.util.escape`), a line break becomes ``\\.br\\``, other control
characters become spaces; non-ASCII text is kept as is (the message is UTF-8, MSH-18).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, TypeAlias

import hl7
import hl7.util

#: Segment, field, repetition, component and sub-component separators (python-hl7's order).
SEPARATORS = "\r|~^&"
ESCAPE = "\\"
#: MSH-2: component, repetition, escape, sub-component characters.
ENCODING_CHARACTERS = "^~\\&"
_CONTROL = re.compile(r"[\x00-\x0c\x0e-\x1f]")
_CONTEXT = hl7.Message(separators=SEPARATORS, esc=ESCAPE)

#: One component: a plain value or a tuple of sub-components.
Component: TypeAlias = "str | tuple[str, ...]"


def escape(value: str) -> str:
    """``value`` escaped for an ER7 field; parsing it back with :func:`hl7.parse` restores it
    (line breaks come back as ``\\r``)."""
    text = _CONTROL.sub(" ", value.replace("\r\n", "\r").replace("\n", "\r"))
    return "".join(ch if ord(ch) > 0x7F else str(hl7.util.escape(_CONTEXT, ch)) for ch in text)


def _component(value: Component) -> Any:
    if isinstance(value, tuple):
        return hl7.Component(separators=SEPARATORS, esc=ESCAPE, sequence=[escape(v) for v in value])
    return escape(value)


def field(*components: Component) -> Any:
    """One field (an ``hl7.Field``) of one repetition made of ``components``."""
    return repeated([components])


def repeated(repetitions: Sequence[Sequence[Component]]) -> Any:
    """One field repeating each of ``repetitions`` (each a sequence of components)."""
    reps = [
        hl7.Repetition(separators=SEPARATORS, esc=ESCAPE, sequence=[_component(c) for c in rep])
        for rep in repetitions
    ]
    return hl7.Field(separators=SEPARATORS, esc=ESCAPE, sequence=reps)


def segment(name: str, *fields: Any) -> Any:
    """A segment (an ``hl7.Segment``) named ``name`` with ``fields`` (built by :func:`field`)."""
    head = hl7.Field(separators=SEPARATORS, esc=ESCAPE, sequence=[name])
    return hl7.Segment(separators=SEPARATORS, esc=ESCAPE, sequence=[head, *fields])


def msh_segment(*fields: Any) -> Any:
    """The MSH segment: MSH-1 and MSH-2 unescaped, then ``fields`` from MSH-3 on."""
    sep = hl7.Field(separators=SEPARATORS, esc=ESCAPE, sequence=[SEPARATORS[1]])
    enc = hl7.Field(separators=SEPARATORS, esc=ESCAPE, sequence=[ENCODING_CHARACTERS])
    return segment("MSH", sep, enc, *fields)


def message(segments: Sequence[Any]) -> str:
    """The ER7 text of ``segments`` (each ends with ``\\r``)."""
    return str(hl7.Message(separators=SEPARATORS, esc=ESCAPE, sequence=list(segments)))
