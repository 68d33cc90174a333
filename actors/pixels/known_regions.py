"""Known PHI regions: CTP DicomPixelAnonymizer scripts, matched on the header, blanked before OCR.

A script (RSNA MIRC wiki, "The CTP DICOM Pixel Anonymizer") is a list of rules.  A rule is a
*signature* in braces, a boolean expression over header attributes, followed by one or more
*regions* ``(left,top,width,height)`` in pixels, to blank on every frame of an image whose header
satisfies the signature::

    { Manufacturer.containsIgnoreCase("GE MEDICAL") *
      CommentsOnRadiationDose.containsIgnoreCase("DLP") }
    (0,0,512,110)

Everything else is commentary: the free text between rules (CTP's own library is laid out that
way) and lines whose first character is ``#``.  In a signature:

- an attribute is a keyword (``Modality``) or a tag (``[0008,0070]``), followed by a method:
  ``equals``, ``equalsIgnoreCase``, ``contains``, ``containsIgnoreCase``, ``startsWith``,
  ``startsWithIgnoreCase``, ``endsWith``, ``endsWithIgnoreCase`` or ``matches`` (a regular
  expression for the whole value), each with one double-quoted argument, or ``isBlank()``;
- ``true`` and ``false``; ``!`` (not) binds tighter than ``*`` (and), which binds tighter than
  ``+`` (or); parentheses group; ``//`` starts a comment to the end of the line.

Values are read as CTP reads them: several values joined by a backslash, numbers as written,
group 0002 from the file meta information, an absent attribute as the empty string.  Where dxai
differs from CTP it blanks more, or refuses a doubtful script rather than skip part of it:

- every matching rule applies (CTP applies only the first);
- an attribute absent from the top level is looked up in sequence items (its first occurrence,
  depth first): CTP's GE dose-screen rule names ``CodeMeaning``, which lives in a sequence;
- an unknown keyword or method, an invalid regular expression, and a parenthesised group after
  a signature that is not a region are errors naming the line (CTP skips such a region with a
  warning, leaving its PHI in place).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Protocol

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from dxai.actors.pixels.types import Box
from dxai.configs.errors import ConfigError
from dxai.configs.schema.pixels import PixelPolicyConfig

#: The config key that names the script (in every load error).
CONFIG_KEY = "deid.pixel_policy.known_regions_file"
#: Where the library CTP ships lies inside ``dxai.actors`` (used when the key is unset).
PACKAGED = ("data", "ctp", "DicomPixelAnonymizer.script")
#: The ``RedactedBox`` reason of a known region.
REASON = "known_region"

#: Reads the value of a tag (an int ``0xggggeeee``) as text.
Lookup = Callable[[int], str]


class Expr(Protocol):
    """A node of a parsed signature."""

    def evaluate(self, value: Lookup) -> bool:
        """The node's truth for the header that ``value`` reads."""
        ...


@dataclass(frozen=True)
class Const:
    """``true`` or ``false``."""

    value: bool

    def evaluate(self, value: Lookup) -> bool:
        """The constant."""
        return self.value


@dataclass(frozen=True)
class Method:
    """``attribute.method("argument")``."""

    tag: int
    method: str
    argument: str
    check: Callable[[str], bool] = field(compare=False, repr=False)

    def evaluate(self, value: Lookup) -> bool:
        """The method applied to the attribute's value."""
        return self.check(value(self.tag))


@dataclass(frozen=True)
class Not:
    """``!operand``."""

    operand: Expr

    def evaluate(self, value: Lookup) -> bool:
        """The negation of the operand."""
        return not self.operand.evaluate(value)


@dataclass(frozen=True)
class And:
    """``a * b * ...``."""

    parts: tuple[Expr, ...]

    def evaluate(self, value: Lookup) -> bool:
        """True when every part is (left to right, stopping at the first false)."""
        return all(part.evaluate(value) for part in self.parts)


@dataclass(frozen=True)
class Or:
    """``a + b + ...``."""

    parts: tuple[Expr, ...]

    def evaluate(self, value: Lookup) -> bool:
        """True when any part is (left to right, stopping at the first true)."""
        return any(part.evaluate(value) for part in self.parts)


@dataclass(frozen=True)
class Region:
    """A region of a rule as the script writes it: ``(left,top,width,height)`` in pixels."""

    left: int
    top: int
    width: int
    height: int

    def box(self, columns: int, rows: int) -> Box:
        """The region as a box clipped to a ``columns`` x ``rows`` image (may be empty)."""
        x0, y0 = min(self.left, columns), min(self.top, rows)
        return Box(x0, y0, min(columns, self.left + self.width), min(rows, self.top + self.height))


@dataclass(frozen=True)
class Rule:
    """One signature and the regions to blank where it matches; ``line`` is 1-based."""

    line: int
    signature: str
    expression: Expr
    regions: tuple[Region, ...]
    tags: frozenset[int]


class _ScriptError(Exception):
    """A parse error at a character offset of the script (turned into a ConfigError)."""

    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message


# ---------------------------------------------------------------------------- signatures

_TOKEN = re.compile(
    r"""(?P<skip>\s+|//[^\n]*)
      | (?P<tag>\[\s*[0-9A-Fa-f]{4}\s*,\s*[0-9A-Fa-f]{4}\s*\])
      | (?P<name>[A-Za-z][A-Za-z0-9_]*)
      | (?P<string>"[^"]*")
      | (?P<op>[()*+!.])""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Tok:
    kind: str  # tag, name, string, op, end
    text: str
    pos: int


def _tokens(text: str, start: int, end: int) -> list[_Tok]:
    """The tokens of ``text[start:end]`` (a signature without its braces)."""
    out: list[_Tok] = []
    pos = start
    while pos < end:
        m = _TOKEN.match(text, pos, end)
        if m is None:
            what = "unterminated string" if text[pos] == '"' else f"unexpected {text[pos]!r}"
            raise _ScriptError(pos, what)
        kind = m.lastgroup or ""
        if kind != "skip":
            out.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    out.append(_Tok("end", "", end))
    return out


def _check(method: str, argument: str | None, pos: int) -> Callable[[str], bool]:
    """The test a method name and its argument make; errors for unknown methods or arity."""
    if method == "isBlank":
        if argument is not None:
            raise _ScriptError(pos, "isBlank() takes no argument")
        return lambda v: not v.strip()
    if argument is None:
        raise _ScriptError(pos, f"{method}() needs one double-quoted argument")
    if method == "matches":
        try:
            pattern = re.compile(argument)
        except re.error as exc:
            raise _ScriptError(pos, f"invalid regular expression: {exc}") from exc
        return lambda v: pattern.fullmatch(v) is not None
    low = argument.lower()
    tests: dict[str, Callable[[str], bool]] = {
        "equals": lambda v: v == argument,
        "equalsIgnoreCase": lambda v: v.lower() == low,
        "contains": lambda v: argument in v,
        "containsIgnoreCase": lambda v: low in v.lower(),
        "startsWith": lambda v: v.startswith(argument),
        "startsWithIgnoreCase": lambda v: v.lower().startswith(low),
        "endsWith": lambda v: v.endswith(argument),
        "endsWithIgnoreCase": lambda v: v.lower().endswith(low),
    }
    if method not in tests:
        raise _ScriptError(pos, f"unknown method {method!r}")
    return tests[method]


class _Parser:
    """Recursive descent over one signature: or := and ('+' and)*; and := not ('*' not)*."""

    def __init__(self, tokens: list[_Tok]) -> None:
        self.toks = tokens
        self.i = 0
        self.tags: set[int] = set()

    def parse(self) -> Expr:
        """The whole signature; it must be one expression."""
        expr = self._or()
        tok = self._peek()
        if tok.kind != "end":
            raise _ScriptError(tok.pos, f"unexpected {tok.text!r} after the expression")
        return expr

    def _peek(self) -> _Tok:
        return self.toks[self.i]

    def _take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1 if tok.kind != "end" else 0
        return tok

    def _is(self, op: str) -> bool:
        tok = self._peek()
        return tok.kind == "op" and tok.text == op

    def _expect(self, op: str) -> _Tok:
        tok = self._take()
        if tok.kind != "op" or tok.text != op:
            found = tok.text or "the end of the signature"
            raise _ScriptError(tok.pos, f"expected {op!r}, found {found!r}")
        return tok

    def _or(self) -> Expr:
        parts = [self._and()]
        while self._is("+"):
            self._take()
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def _and(self) -> Expr:
        parts = [self._not()]
        while self._is("*"):
            self._take()
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def _not(self) -> Expr:
        if self._is("!"):
            self._take()
            return Not(self._not())
        if self._is("("):
            self._take()
            inner = self._or()
            self._expect(")")
            return inner
        return self._operand()

    def _operand(self) -> Expr:
        tok = self._take()
        if tok.kind == "name" and tok.text in ("true", "false"):
            return Const(tok.text == "true")
        tag = self._attribute(tok)
        self._expect(".")
        method = self._take()
        if method.kind != "name":
            raise _ScriptError(method.pos, "expected a method name after '.'")
        self._expect("(")
        argument = self._take().text[1:-1] if self._peek().kind == "string" else None
        self._expect(")")
        self.tags.add(tag)
        return Method(tag, method.text, argument or "", _check(method.text, argument, method.pos))

    @staticmethod
    def _attribute(tok: _Tok) -> int:
        if tok.kind == "tag":
            group, element = tok.text.strip("[]").split(",")
            return int(group.strip(), 16) << 16 | int(element.strip(), 16)
        if tok.kind == "name":
            tag = tag_for_keyword(tok.text)
            if tag is None:
                raise _ScriptError(tok.pos, f"unknown attribute keyword {tok.text!r}")
            return int(tag)
        found = tok.text or "the end of the signature"
        raise _ScriptError(tok.pos, f"expected an attribute, found {found!r}")


# ---------------------------------------------------------------------------- the script

# a signature (no nested braces), a parenthesised group (no braces inside), or a lone bracket
_TOP = re.compile(r"\{(?P<sig>[^{}]*)\}|\((?P<group>[^(){}]*)\)|(?P<stray>[{}()])")
_REGION = re.compile(r"\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*")
_COMMENT = re.compile(r"(?m)^[ \t]*#[^\n]*")


@dataclass
class _Draft:
    line: int
    signature: str
    expression: Expr
    tags: frozenset[int]
    regions: list[Region] = field(default_factory=list)


def _signature(text: str, m: re.Match[str], line: int) -> _Draft:
    parser = _Parser(_tokens(text, m.start("sig"), m.end("sig")))
    expression = parser.parse()
    return _Draft(line, " ".join(m.group("sig").split()), expression, frozenset(parser.tags))


def _region(m: re.Match[str]) -> Region:
    values = _REGION.fullmatch(m.group("group"))
    if values is None:
        raise _ScriptError(m.start(), "not a region (left,top,width,height) of whole pixels")
    left, top, width, height = (int(v) for v in values.groups())
    return Region(left, top, width, height)


def _rules(text: str) -> list[_Draft]:
    """Parse a whole script (comment lines already blanked); raises :class:`_ScriptError`."""
    drafts: list[_Draft] = []
    for m in _TOP.finditer(text):
        if m.group("sig") is not None:
            drafts.append(_signature(text, m, text.count("\n", 0, m.start()) + 1))
        elif m.group("stray") in ("{", "}"):
            raise _ScriptError(m.start(), f"unbalanced {m.group('stray')!r}")
        elif not drafts:
            continue  # parentheses in the free text before the first rule
        elif m.group("group") is not None:
            drafts[-1].regions.append(_region(m))
        else:
            raise _ScriptError(m.start(), f"unbalanced {m.group('stray')!r} after a signature")
    return drafts


# ---------------------------------------------------------------------------- header values


def _text(elem: DataElement | None) -> str:
    """An element's value as CTP reads it (several values joined by a backslash)."""
    if elem is None or elem.VR == "SQ" or elem.value is None:
        return ""
    value = elem.value
    if isinstance(value, bytes):
        return value.decode("latin-1").rstrip("\x00 ")
    if not isinstance(value, MultiValue | list | tuple):
        return str(value)
    return "\\".join(v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in value)


def _nested(ds: Dataset, wanted: frozenset[int]) -> dict[int, str]:
    """The first occurrence, depth first, of each ``wanted`` tag inside sequence items."""
    found: dict[int, str] = {}
    try:
        for elem in ds.iterall():
            if int(elem.tag) in wanted and int(elem.tag) not in found:
                found[int(elem.tag)] = _text(elem)
    except (ValueError, TypeError, KeyError, AttributeError):
        pass  # a malformed element ends the search; what was found stands
    return found


class _Header:
    """The values a library's signatures read from one dataset, each read once."""

    def __init__(self, ds: Dataset, wanted: frozenset[int]) -> None:
        self.ds, self.wanted = ds, wanted
        self.values: dict[int, str] = {}
        self.nested: dict[int, str] | None = None

    def __call__(self, tag: int) -> str:
        if tag not in self.values:
            self.values[tag] = self._read(tag)
        return self.values[tag]

    def _read(self, tag: int) -> str:
        try:
            if tag >> 16 == 0x0002:
                meta = getattr(self.ds, "file_meta", None)
                return _text(meta[tag]) if meta is not None and tag in meta else ""
            if tag in self.ds:
                return _text(self.ds[tag])
        except (ValueError, TypeError, KeyError, AttributeError):
            return ""  # an unreadable value reads as absent
        if self.nested is None:
            self.nested = _nested(self.ds, self.wanted)
        return self.nested.get(tag, "")


# ---------------------------------------------------------------------------- the library


@dataclass(frozen=True)
class KnownRegionLibrary:
    """The rules of one script; :meth:`match` gives the boxes to blank on an image."""

    rules: tuple[Rule, ...]
    source: str = "script"
    tags: frozenset[int] = field(default=frozenset(), compare=False)

    @classmethod
    def parse(cls, text: str, source: str = "script") -> KnownRegionLibrary:
        """Parse a script; a :class:`ConfigError` names the config key, source and line."""
        blanked = _COMMENT.sub(lambda m: " " * len(m.group()), text)
        try:
            drafts = _rules(blanked)
        except _ScriptError as exc:
            line = blanked.count("\n", 0, exc.pos) + 1
            raise ConfigError(f"{CONFIG_KEY}: {source} line {line}: {exc.message}") from None
        rules = tuple(
            Rule(d.line, d.signature, d.expression, tuple(d.regions), d.tags) for d in drafts
        )
        return cls(rules, source, frozenset[int]().union(*(r.tags for r in rules)))

    @classmethod
    def load(cls, path: str | Path | None = None) -> KnownRegionLibrary:
        """Read a script file; ``None`` is the library CTP ships (packaged with dxai)."""
        if path is None:
            return packaged_library()
        file = Path(path).expanduser()
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or type(exc).__name__
            raise ConfigError(f"{CONFIG_KEY}: cannot read {file}: {why}") from None
        return cls.parse(text, str(file))

    def matching(self, ds: Dataset) -> list[Rule]:
        """The rules whose signature the header of ``ds`` satisfies, in script order."""
        header = _Header(ds, self.tags)
        return [rule for rule in self.rules if rule.expression.evaluate(header)]

    def match(self, ds: Dataset) -> list[Box]:
        """The boxes of every matching rule, clipped to the image, without duplicates.

        Empty when ``ds`` has no image size (``Rows``/``Columns``) or no rule matches.
        """
        rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        if not rows or not columns:
            return []
        boxes = {region.box(columns, rows) for rule in self.matching(ds) for region in rule.regions}
        return sorted(box for box in boxes if box.area)


@cache
def packaged_library() -> KnownRegionLibrary:
    """The burned-in annotation library CTP ships (``actors/data/ctp``), parsed once."""
    script = resources.files("dxai.actors").joinpath(*PACKAGED)
    return KnownRegionLibrary.parse(script.read_text(encoding="utf-8"), "CTP library")


def library_for(policy: PixelPolicyConfig) -> KnownRegionLibrary | None:
    """The known-region library a pixel policy asks for; None when ``known_regions`` is off."""
    if not policy.known_regions:
        return None
    return KnownRegionLibrary.load(policy.known_regions_file)
