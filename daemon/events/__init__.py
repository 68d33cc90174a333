"""The versioned event contract of the daemon: input, decisions, results, dead letters."""

from dxai.daemon.events.codec import (
    Headers,
    dlq_headers,
    encode_event,
    header_value,
    parse_study_event,
    trace_headers,
)
from dxai.daemon.events.models import (
    SCHEMA_VERSION,
    DecisionEvent,
    DeidCertificate,
    DicomWebSource,
    DimseSource,
    LocalSource,
    NamedSource,
    Reason,
    ResultsEvent,
    StudyEvent,
    TaskResult,
)

__all__ = [
    "SCHEMA_VERSION",
    "DecisionEvent",
    "DeidCertificate",
    "DicomWebSource",
    "DimseSource",
    "Headers",
    "LocalSource",
    "NamedSource",
    "Reason",
    "ResultsEvent",
    "StudyEvent",
    "TaskResult",
    "dlq_headers",
    "encode_event",
    "header_value",
    "parse_study_event",
    "trace_headers",
]
