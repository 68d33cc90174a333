"""Build PHI-free findings with default severities and configured overrides."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from dxai.actors.inbound.findings import Finding, Severity

#: sop_uids kept on one finding; the message still counts all of them.
MAX_SOP_UIDS = 64


@dataclass
class Emitter:
    """Collects one task's findings; ``defaults`` and ``overrides`` give each code's severity."""

    task: str
    defaults: Mapping[str, Severity]
    overrides: Mapping[str, Severity] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def severity(self, code: str) -> Severity:
        """The configured severity of ``code`` (override, else default)."""
        return self.overrides.get(code, self.defaults[code])

    def emit(
        self,
        code: str,
        message: str,
        series_uid: str | None = None,
        sop_uids: Iterable[str] = (),
        value: float | None = None,
        unit: str | None = None,
    ) -> Finding:
        """Record one finding (``code`` must be a known code) and return it."""
        uids = tuple(dict.fromkeys(u for u in sop_uids if u))[:MAX_SOP_UIDS]
        finding = Finding(
            code=code,
            severity=self.severity(code),
            message=message,
            task=self.task,
            series_uid=series_uid,
            sop_uids=uids,
            value=value,
            unit=unit,
        )
        self.findings.append(finding)
        return finding


def mm(value: float) -> str:
    """A length for a message: one decimal, more when needed (0.625 stays 0.625)."""
    text = f"{value:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text
