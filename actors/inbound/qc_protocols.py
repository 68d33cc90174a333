"""The protocol library: load ``protocols.yaml`` and pick the protocol a study matches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError
from pydicom.dataset import Dataset

from dxai.actors.inbound.qc_values import has_word, text, words
from dxai.actors.inbound.study import InstanceRef, StudyView
from dxai.configs.errors import ConfigError
from dxai.configs.schema.loader import format_validation_error
from dxai.configs.schema.qc import Protocol, ProtocolFile

#: the packaged protocol definitions.
DEFAULT_PROTOCOLS = Path(__file__).resolve().parents[2] / "configs" / "protocols.yaml"
_TEXT_KEYWORDS = ("SeriesDescription", "BodyPartExamined", "ProtocolName")


@dataclass(frozen=True)
class ProtocolLibrary:
    """Validated protocol definitions and the file they came from."""

    definitions: ProtocolFile
    source: str

    @property
    def names(self) -> tuple[str, ...]:
        """The protocols' names, in file order."""
        return tuple(self.definitions.protocols)

    def select(self, study: StudyView) -> tuple[str, Protocol] | None:
        """The protocol ``study`` matches best (the fallback when none does; None without one)."""
        facts = StudyFacts.of(study)
        best: tuple[int, int, str, Protocol] | None = None
        for name, protocol in self.definitions.protocols.items():
            if protocol.fallback:
                continue
            hits = _hits(protocol, facts)
            if hits is None:
                continue
            if best is None or (protocol.priority, hits) > (best[0], best[1]):
                best = (protocol.priority, hits, name, protocol)
        if best is not None:
            return best[2], best[3]
        for name, protocol in self.definitions.protocols.items():
            if protocol.fallback:
                return name, protocol
        return None


@dataclass(frozen=True)
class StudyFacts:
    """What protocol matching reads from a study: modalities, normalised texts, protocol names."""

    modalities: frozenset[str]
    text: str
    protocol_names: frozenset[str]

    @classmethod
    def of(cls, study: StudyView) -> StudyFacts:
        """Collect the facts from the study's headers (descriptions are never logged)."""
        parts = [words(text(study.first_header(), "StudyDescription"))]
        names: set[str] = set()
        for series in study.series:
            for header in _series_headers(series.instances):
                parts.extend(words(text(header, k)) for k in _TEXT_KEYWORDS)
                names.add(words(text(header, "ProtocolName")).strip())
        return cls(frozenset(study.modalities), "|".join(parts), frozenset(names - {""}))


def _series_headers(instances: tuple[InstanceRef, ...]) -> list[Dataset]:
    """The first and last instance's headers (descriptions are per series)."""
    return [instances[0].header] + ([instances[-1].header] if len(instances) > 1 else [])


def _hits(protocol: Protocol, facts: StudyFacts) -> int | None:
    """How many of ``protocol``'s keywords the study shows (None: it does not match)."""
    match = protocol.match
    if match.modalities and not facts.modalities & set(match.modalities):
        return None
    if any(has_word(facts.text, k) for k in match.exclude_keywords):
        return None
    by_name = any(words(n).strip() in facts.protocol_names for n in match.protocol_names)
    hits = sum(has_word(facts.text, k) for k in match.keywords) + (2 if by_name else 0)
    if match.keywords or match.protocol_names:
        return hits or None
    return 0


def load_protocols(path: str | Path | None = None) -> ProtocolLibrary:
    """Read and validate a protocol file (None: the packaged ``configs/protocols.yaml``).

    Raises :class:`ConfigError` naming the file and the dotted key of every problem.
    """
    source = Path(path) if path is not None else DEFAULT_PROTOCOLS
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read protocol file {source}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    try:
        definitions = ProtocolFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(source))) from exc
    return ProtocolLibrary(definitions, str(source))
