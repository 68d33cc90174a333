"""The pipeline core: event -> job -> fetch -> per-instance pipeline -> store -> outputs."""

from dxai.daemon.pipeline.core import Admission, Pipeline, PipelineParts, SourceFactory
from dxai.daemon.pipeline.outcome import StudyTally, decide
from dxai.daemon.pipeline.retry import RetryPolicy, with_retry

__all__ = [
    "Admission",
    "Pipeline",
    "PipelineParts",
    "RetryPolicy",
    "SourceFactory",
    "StudyTally",
    "decide",
    "with_retry",
]
