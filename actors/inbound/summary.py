"""The transfer summary: a short plain-language text for the referrer about a received study.

Built from PHI-free parts only: the triage priority and its reasons, the messages of the other
tasks' findings (QC, preflight, AI: PHI-free by contract), the priors found (count, the most
recent one's modalities and date) and where the SR was stored.  Rendered with a sandboxed Jinja
environment (no autoescape: plain text) from ``summary.template`` or the packaged
``templates/summary.txt.j2``.  As a last guard, any patient name, identifier, birth date or
accession number of the study's header that still shows up is replaced by ``[removed]``.

An LLM rewrite is a daemon-side hook (:class:`SummaryWriter`, ``summary.llm_endpoint``): actors
never call a network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from functools import lru_cache
from importlib import resources
from typing import Any, Protocol

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from dxai.actors.inbound.findings import Finding, TaskReport
from dxai.actors.inbound.study import StudyView
from dxai.actors.inbound.triage import TriageResult
from dxai.configs.errors import PermanentError
from dxai.configs.schema.triage import SummaryConfig

TEMPLATE_FILE = "summary.txt.j2"
REMOVED = "[removed]"
_SEVERITY_ORDER = {"blocking": 0, "warning": 1, "info": 2}
_SEVERITY_LABEL = {"blocking": "needs attention", "warning": "warning", "info": "note"}
_SKIPPED_TASKS = frozenset({"triage", "routing"})
_PHI_KEYWORDS = (
    "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthDate",
    "AccessionNumber", "PatientBirthName", "PatientMotherBirthName",
)  # fmt: skip
_MIN_REDACT_CHARS = 3


class SummaryTemplateError(PermanentError):
    """The summary template failed to render (a config error: fix ``summary.template``)."""

    code = "summary_template"


class PriorLike(Protocol):
    """What the summary reads of a prior (``dxai.actors.inbound.priors.Prior`` has it)."""

    @property
    def study_uid(self) -> str:
        """The prior's Study Instance UID."""
        ...

    @property
    def study_date(self) -> date | None:
        """When it was acquired (None: not known)."""
        ...

    @property
    def modalities(self) -> tuple[str, ...]:
        """Its modalities."""
        ...


@dataclass(frozen=True)
class PriorStudy:
    """A prior study of the patient that the priors search found (a plain :class:`PriorLike`)."""

    study_uid: str
    modalities: tuple[str, ...] = ()
    study_date: date | None = None


@dataclass(frozen=True)
class SrLocation:
    """Where the structured report was stored: a configured destination name and its UIDs."""

    destination: str
    study_uid: str
    series_uid: str
    sop_uid: str


@dataclass(frozen=True)
class SummaryInput:
    """What the summary is built from.  ``redact``: values that must never appear (the patient's
    names, identifiers, birth date, accession number), kept out of ``repr``."""

    study_uid: str
    modalities: tuple[str, ...] = ()
    triage: TriageResult | None = None
    reports: tuple[TaskReport, ...] = ()
    priors: tuple[PriorLike, ...] = ()
    sr: SrLocation | None = None
    redact: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_study(
        cls,
        study: StudyView,
        *,
        triage: TriageResult | None = None,
        reports: Iterable[TaskReport] = (),
        priors: Iterable[PriorLike] = (),
        sr: SrLocation | None = None,
    ) -> SummaryInput:
        """The input for ``study``: its UID and modalities, and its header's PHI to redact."""
        return cls(
            study_uid=study.study_uid,
            modalities=study.modalities,
            triage=triage,
            reports=tuple(reports),
            priors=tuple(priors),
            sr=sr,
            redact=phi_values(study.first_header()),
        )


class SummaryWriter(Protocol):
    """A daemon-side rewriter of the templated draft (e.g. an LLM at ``summary.llm_endpoint``).

    It gets the draft and the PHI-free context the template saw, and returns the text to send;
    the daemon implements it (network I/O), actors never call it.  Its output must pass the same
    redaction (:func:`redact_values`) before it is sent.
    """

    async def rewrite(self, draft: str, context: Mapping[str, Any]) -> str:
        """The rewritten summary."""
        ...


def transfer_summary(inp: SummaryInput, config: SummaryConfig) -> str:
    """The summary text for ``inp`` ("" when ``summary.enabled`` is false).

    Raises :class:`SummaryTemplateError` when the template fails to render.
    """
    if not config.enabled:
        return ""
    template = _template(config.template if config.template is not None else _packaged())
    try:
        text = template.render(**summary_context(inp, config.max_findings))
    except TemplateError as exc:
        raise SummaryTemplateError(f"summary template failed: {type(exc).__name__}") from exc
    return redact_values(_tidy(text), inp.redact)


def summary_context(inp: SummaryInput, max_findings: int = 10) -> dict[str, Any]:
    """The PHI-free variables the template sees (also what a :class:`SummaryWriter` gets)."""
    findings = _findings(inp.reports)
    shown = findings[:max_findings]
    return {
        "study_uid": inp.study_uid,
        "modalities": list(inp.modalities),
        "priority": (inp.triage.priority if inp.triage else "routine").upper(),
        "reasons": [f"rule {r.rule} ({r.detail})" for r in _top_reasons(inp.triage)],
        "findings": [_finding_view(f) for f in shown],
        "more_findings": len(findings) - len(shown),
        "tasks": [{"task": r.task, "status": r.status} for r in inp.reports],
        "priors": _priors_view(inp.priors),
        "sr": None if inp.sr is None else asdict(inp.sr),
    }


def _top_reasons(result: TriageResult | None) -> list[Any]:
    if result is None:
        return []
    return [r for r in result.reasons if r.priority == result.priority]


def _findings(reports: Iterable[TaskReport]) -> list[Finding]:
    found = [f for r in reports if r.task not in _SKIPPED_TASKS for f in r.findings]
    return sorted(found, key=lambda f: _SEVERITY_ORDER.get(f.severity, 3))


def _finding_view(finding: Finding) -> dict[str, str]:
    label = _SEVERITY_LABEL.get(finding.severity, finding.severity)
    return {"task": finding.task, "label": label, "code": finding.code, "message": finding.message}


def _priors_view(priors: tuple[PriorLike, ...]) -> dict[str, Any]:
    dated = [p for p in priors if p.study_date is not None]
    latest = max(dated, key=lambda p: p.study_date or date.min) if dated else None
    if latest is None and priors:
        latest = priors[0]
    return {
        "count": len(priors),
        "latest_modalities": ", ".join(latest.modalities) if latest else "",
        "latest_date": latest.study_date.isoformat() if latest and latest.study_date else "",
    }


def _tidy(text: str) -> str:
    """Trailing spaces dropped, runs of blank lines made one, one final newline."""
    lines = [line.rstrip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


@lru_cache(maxsize=16)
def _template(source: str) -> Template:
    env = SandboxedEnvironment(
        autoescape=False, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    try:
        return env.from_string(source)
    except TemplateError as exc:
        raise SummaryTemplateError(f"summary template invalid: {type(exc).__name__}") from exc


@lru_cache(maxsize=1)
def _packaged() -> str:
    path = resources.files("dxai.actors.inbound").joinpath("templates", TEMPLATE_FILE)
    return path.read_text(encoding="utf-8")


def phi_values(header: Dataset) -> tuple[str, ...]:
    """The header's patient names (whole and by component), identifiers, birth date (also as
    ISO) and accession number: what a summary must never contain."""
    values: list[str] = []
    for keyword in _PHI_KEYWORDS:
        raw = header.get(keyword)
        for item in raw if isinstance(raw, list | tuple | MultiValue) else [raw]:
            values.extend(_forms(keyword, str(item or "")))
    unique = {v.strip() for v in values if len(v.strip()) >= _MIN_REDACT_CHARS}
    return tuple(sorted(unique, key=len, reverse=True))


def _forms(keyword: str, value: str) -> list[str]:
    if "Name" in keyword:
        parts = [p for p in re.split(r"[\^=]", value) if p.strip()]
        return [value, value.replace("^", " "), " ".join(reversed(parts[:2])), *parts]
    if keyword == "PatientBirthDate" and re.fullmatch(r"\d{8}", value):
        return [value, f"{value[:4]}-{value[4:6]}-{value[6:]}"]
    return [value]


def redact_values(text: str, values: Iterable[str]) -> str:
    """``text`` with every whole-word occurrence of ``values`` (any case) replaced by
    ``[removed]``; parts of UIDs and longer words are left alone."""
    for value in values:
        if len(value) < _MIN_REDACT_CHARS:
            continue
        pattern = rf"(?<![\w.]){re.escape(value)}(?!\w)(?!\.\w)"
        text = re.sub(pattern, REMOVED, text, flags=re.IGNORECASE)
    return text
