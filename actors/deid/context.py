"""Per-instance state of the de-identification walk, and the element being worked on."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from dxai.actors.deid.phi import PhiCollector
from dxai.actors.deid.pseudonym import Pseudonymizer
from dxai.actors.deid.table import CompiledTable
from dxai.actors.deid.values import text_of

# Coded-entry attributes (not in Table E.1-1): kept verbatim and never PHI tokens.
CODE_TAGS = frozenset(
    {
        0x00080100,  # CodeValue
        0x00080102,  # CodingSchemeDesignator
        0x00080103,  # CodingSchemeVersion
        0x00080104,  # CodeMeaning
        0x00080105,  # MappingResource
        0x0008010F,  # ContextIdentifier
        0x00080119,  # LongCodeValue
        0x00080120,  # URNCodeValue
        0x00080117,  # ContextUID
        0x0040A040,  # ValueType
        0x0040A010,  # RelationshipType
    }
)


@dataclass
class WalkContext:
    """Everything one call of the walk accumulates (one per instance: thread-safe)."""

    table: CompiledTable
    pseudo: Pseudonymizer
    family: str
    keep_tags: frozenset[int]
    date_mode: str  # "full", "shift" or "remove"
    offset_days: int
    patient_id: str
    collector: PhiCollector = field(default_factory=PhiCollector)
    counts: Counter[str] = field(default_factory=Counter)
    uid_map: dict[str, str] = field(default_factory=dict)
    original_uids: set[str] = field(default_factory=set)
    deferred: list[tuple[Dataset, BaseTag, str]] = field(default_factory=list)
    clean_documents: bool = False  # clean encapsulated documents instead of a dummy
    documents: list[Dataset] = field(default_factory=list)  # datasets whose document to clean
    defaults: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Slot:
    """One element of one dataset, as found by the walk (its text decoded once, on demand)."""

    ds: Dataset
    tag: BaseTag
    elem: RawDataElement | DataElement
    vr: str
    encodings: list[str]
    _text: str | None = None

    def text(self) -> str:
        """The element's original value as text (decoded in the dataset's character set)."""
        if self._text is None:
            self._text = text_of(self.elem, self.encodings)
        return self._text


def tag_text(tag: int) -> str:
    """``(gggg,eeee)`` for reports (tags are never PHI)."""
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
