"""Run dciodvfy (dicom3tools' IOD validator) on a DICOM file and parse what it reports.

dciodvfy writes everything to stderr: an optional line naming the IOD it checked (``CTImage``) and
one line per finding, containing ``Error - `` or ``Warning - `` (at the start of the line, or after
an attribute tag such as ``(0x0011,0x0001) LO PrivateCreator  - Error - ...``).

Finding lines can quote attribute values, which may be PHI: keep reports in memory, compare them,
count them, but never log the lines themselves; :meth:`DciodvfyReport.error_kinds` gives the
lines with quoted values blanked out.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from dxai.configs.errors import ValidatorUnavailableError

DCIODVFY = "dciodvfy"
_ERROR = re.compile(r"(?:^|\s)Error - ")
_WARNING = re.compile(r"(?:^|\s)Warning - ")
_IOD_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_QUOTED_VALUE = re.compile(r"= <[^>]*>")
_QUOTED_CHAR = re.compile(r"= '[^']*' \(0x[0-9a-fA-F]+\)")


@dataclass(frozen=True, slots=True)
class DciodvfyReport:
    """What dciodvfy said about one file.

    ``errors`` and ``warnings`` hold the finding lines in output order; ``iod`` is the IOD name
    dciodvfy chose (None when it printed none); ``other`` keeps unclassified lines (e.g. the
    continuation of a multi-line value); ``returncode`` is negative when dciodvfy was killed by a
    signal (it aborts on some malformed pixel data).
    """

    errors: list[str]
    warnings: list[str]
    iod: str | None = None
    other: list[str] = field(default_factory=list)
    returncode: int = 0

    @property
    def crashed(self) -> bool:
        """True when dciodvfy died from a signal before finishing its checks."""
        return self.returncode < 0

    @property
    def ok(self) -> bool:
        """True when dciodvfy finished and reported no error (warnings allowed)."""
        return not self.crashed and not self.errors

    def error_kinds(self) -> set[str]:
        """The distinct error lines with quoted attribute values blanked (PHI-free to compare)."""
        return {_normalise(line) for line in self.errors}

    def warning_kinds(self) -> set[str]:
        """The distinct warning lines with quoted attribute values blanked."""
        return {_normalise(line) for line in self.warnings}


def _normalise(line: str) -> str:
    """Blank the values dciodvfy quotes (``= <value>``, ``= 'c' (0x..)``) in a finding line."""
    line = _QUOTED_VALUE.sub("= <>", line)
    return _QUOTED_CHAR.sub("= ''", line).strip()


def parse_dciodvfy_output(text: str, returncode: int = 0) -> DciodvfyReport:
    """Sort dciodvfy's output lines into errors, warnings, the IOD name and other lines."""
    errors: list[str] = []
    warnings: list[str] = []
    other: list[str] = []
    iod: str | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip():
            continue
        if _ERROR.search(line):
            errors.append(line)
        elif _WARNING.search(line):
            warnings.append(line)
        elif iod is None and _IOD_NAME.match(line):
            iod = line
        else:
            other.append(line)
    return DciodvfyReport(
        errors=errors, warnings=warnings, iod=iod, other=other, returncode=returncode
    )


def run_dciodvfy(
    path: str | Path, *, timeout_s: float = 120.0, executable: str = DCIODVFY
) -> DciodvfyReport:
    """Validate the DICOM file at ``path`` with dciodvfy and return the parsed report.

    Blocking (runs a subprocess): call it from a worker thread in async code.  Raises
    :class:`ValidatorUnavailableError` when dciodvfy is not installed or exceeds ``timeout_s``.
    """
    exe = shutil.which(executable)
    if exe is None:
        raise ValidatorUnavailableError(
            f"{executable} not found on PATH (install dicom3tools: scripts/install_system.sh)"
        )
    try:
        proc = subprocess.run(
            [exe, str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ValidatorUnavailableError(f"{executable} exceeded {timeout_s:.0f}s") from exc
    except OSError as exc:
        raise ValidatorUnavailableError(f"{executable} could not be run: {exc.strerror}") from exc
    text = proc.stdout.decode("utf-8", errors="replace")
    return parse_dciodvfy_output(text, proc.returncode)
