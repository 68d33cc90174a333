"""The pipeline core: event -> job -> fetch -> de-identify -> store -> decision + results."""

from dxai.daemon.pipeline.core import Admission, Pipeline, PipelineParts, SourceFactory
from dxai.daemon.pipeline.outcome import StudyTally, decide
from dxai.daemon.pipeline.processing import (
    InstanceOutcome,
    InstanceProcessor,
    ProcessorInfo,
    UnavailableProcessor,
)
from dxai.daemon.pipeline.retry import RetryPolicy, with_retry

__all__ = [
    "Admission",
    "InstanceOutcome",
    "InstanceProcessor",
    "Pipeline",
    "PipelineParts",
    "ProcessorInfo",
    "RetryPolicy",
    "SourceFactory",
    "StudyTally",
    "UnavailableProcessor",
    "decide",
    "with_retry",
]
