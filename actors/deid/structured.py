"""Structured report content under the Basic Profile: the Content Sequence as a dummy item.

Table E.1-1 gives Content Sequence ``(0040,A730)`` the action ``D`` (a dummy value) and ``C``
(clean) only with the Clean Structured Content Option.  Without that option the original
content tree (findings text, observer names, dates, references) is therefore not kept and
cleaned: it is replaced by one dummy item, a ``CONTAINS`` ``TEXT`` item with the concept name
(DCM 121106, "Comment") and the text ``ANONYMIZED``.  The PHI tokens of the original tree are
collected first (:func:`dxai.actors.deid.collect.collect`), so that the verify pass and the
cleaning of other text still look for them.
"""

from __future__ import annotations

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dxai.actors.deid.values import DUMMY_TEXT

CONTENT_SEQUENCE = 0x0040A730
DUMMY_CONCEPT = ("121106", "DCM", "Comment")
#: Every text value of the dummy item: written by de-identification, never PHI tokens.
DUMMY_VALUES = ("CONTAINS", "TEXT", *DUMMY_CONCEPT, DUMMY_TEXT)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item[0x00080100] = DataElement(0x00080100, "SH", value)  # CodeValue
    item[0x00080102] = DataElement(0x00080102, "SH", scheme)  # CodingSchemeDesignator
    item[0x00080104] = DataElement(0x00080104, "LO", meaning)  # CodeMeaning
    return item


def dummy_content_item() -> Dataset:
    """One ``CONTAINS`` ``TEXT`` content item that says ``ANONYMIZED``."""
    item = Dataset()
    item[0x0040A010] = DataElement(0x0040A010, "CS", "CONTAINS")  # RelationshipType
    item[0x0040A040] = DataElement(0x0040A040, "CS", "TEXT")  # ValueType
    concept = Sequence([_code(*DUMMY_CONCEPT)])
    item[0x0040A043] = DataElement(0x0040A043, "SQ", concept)  # ConceptNameCodeSequence
    item[0x0040A160] = DataElement(0x0040A160, "UT", DUMMY_TEXT)  # TextValue
    return item


def replace_content_tree(ds: Dataset) -> None:
    """Replace the Content Sequence of ``ds`` by one dummy item."""
    ds[CONTENT_SEQUENCE] = DataElement(CONTENT_SEQUENCE, "SQ", Sequence([dummy_content_item()]))
