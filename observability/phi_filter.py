"""The one PHI filter: what may leave the process in logs, metric labels and span attributes.

Everything the daemon says about its work goes through this module:

- log fields (``extra=``) and span attributes are judged by name *and* value: a name must be on
  :data:`FIELDS`, and its value must have that field's shape (an enum word, a number, a hex job
  key, a de-identified output UID, a short token).  A log field that fails is replaced by a
  hash (:func:`hash_value`: correlatable, not readable); a span attribute that fails is dropped;
- metric label values must be short lower-case enum words or small numbers
  (:func:`label_value`), never a UID, a name or free text;
- an exception is described by its class name only (:func:`exception_text`): messages may quote
  what a peer said or what a file held.

Original UIDs (the study, series and instances as the archive knows them) are identifiers of a
patient's study: they are hashed like PHI.  Only the UIDs of the de-identified output
(``output_study_uid``, ``output_sop_uid``, ``output_series_uid``) and job keys are printed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Literal

Shape = Literal["word", "token", "number", "hex", "uid", "flag"]

_WORD = re.compile(r"^[a-z][a-z0-9_.:/-]{0,63}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_.:/@+=-]{0,200}$")
_HEX = re.compile(r"^[0-9a-f]{1,64}$")
_UID = re.compile(r"^[0-9]+(\.[0-9]+)+$")
_SMALL_NUMBER = re.compile(r"^[0-9]{1,5}$")
_LOOKS_LIKE_UID = re.compile(r"^\d+(\.\d+){2,}$")
_UID_MAX = 64

#: Field name -> the shape its value must have (logs and spans alike).
FIELDS: dict[str, Shape] = {
    # job identity: the job key (sha256 of job id, study UID and pipeline version) or its prefix
    "job": "hex",
    "job_key": "hex",
    "job_id_hash": "token",
    # the de-identified output's UIDs (never the original ones)
    "output_study_uid": "uid",
    "output_series_uid": "uid",
    "output_sop_uid": "uid",
    # counts, sizes, durations, positions
    "count": "number",
    "instances": "number",
    "series": "number",
    "series_index": "number",
    "duration_s": "number",
    "batch_size": "number",
    "fill_ratio": "number",
    "items": "number",
    "links": "number",
    "partition": "number",
    "offset": "number",
    "port": "number",
    "path_index": "number",
    "lag": "number",
    # enum words and codes chosen by the code
    "state": "word",
    "status": "word",
    "decision": "word",
    "outcome": "word",
    "error_code": "word",
    "component": "word",
    "stage": "word",
    "source": "word",
    "backend": "word",
    "device": "word",
    "model": "word",
    "profile": "word",
    "precision": "word",
    "pixels": "word",
    "kind": "word",
    # short tokens from configuration or code (class names, topics, endpoints, model files)
    "reason": "token",
    "error_type": "token",
    "topic": "token",
    "url": "token",
    "file": "token",
    "providers": "token",
    "retried": "flag",
    "resumed": "flag",
}

#: Fields a span may carry (a subset: no endpoints or file names on spans).
SPAN_FIELDS = frozenset(FIELDS) - {"url", "file", "providers", "port", "path_index"}


def hash_value(value: object) -> str:
    """A short, stable, non-reversible token for a value that must not be printed."""
    return "h:" + hashlib.sha256(str(value).encode("utf-8")).hexdigest()[:12]


def _fits(shape: Shape, value: object) -> bool:
    """Whether ``value`` has ``shape`` (bool is a flag, never a number)."""
    if shape == "flag":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if shape == "number":
        return isinstance(value, int | float)
    if not isinstance(value, str):
        return False
    if shape == "uid":
        return len(value) <= _UID_MAX and _UID.match(value) is not None
    pattern = {"word": _WORD, "token": _TOKEN, "hex": _HEX}[shape]
    return pattern.match(value) is not None


def allowed(name: str, value: object) -> bool:
    """Whether field ``name`` may be printed with ``value`` (lists: every element fits)."""
    shape = FIELDS.get(name)
    if shape is None:
        return False
    if isinstance(value, list | tuple):
        return len(value) <= 16 and all(_fits(shape, v) for v in value)
    return _fits(shape, value)


def log_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` with every value that may not be printed replaced by its hash."""
    return {k: (v if allowed(k, v) else hash_value(v)) for k, v in fields.items()}


def span_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """The allowed attributes as ``dxai.<name>``; anything else is dropped (never hashed:
    a span is kept by a system outside the daemon's control)."""
    out: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if key in SPAN_FIELDS and allowed(key, value):
            out[f"dxai.{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def label_value(value: str) -> str:
    """``value`` if it is a safe, bounded metric label value; ValueError otherwise.

    Lower-case enum words (``proceed``, ``ppocr_det``, ``cuda:0``) or small numbers (a Kafka
    partition); never a UID, a name or free text.
    """
    if _SMALL_NUMBER.match(value):
        return value
    if not _WORD.match(value) or _LOOKS_LIKE_UID.match(value):
        raise ValueError("metric label values must be short lower-case enum words")
    return value


def exception_text(exc: BaseException) -> str:
    """What may be said of an exception outside the process: its class name alone."""
    return type(exc).__name__


def code_word(value: str, fallback: str = "other") -> str:
    """``value`` as a metric label: lower-cased, non-word characters folded to ``_``, at most
    48 characters; ``fallback`` when nothing of it is left (for reason codes)."""
    word = re.sub(r"[^a-z0-9_]", "_", value.lower())[:48].strip("_")
    if not word or not word[0].isalpha():
        return fallback
    return word
