"""The outbound per-instance pipeline: de-identify headers, redact burned-in PHI, verify, encode.

One path for ``dxai deid`` and the daemon: :func:`build_pipeline` makes an
:class:`InstancePipeline` from the configuration, :func:`run_series` runs it over a series with
the pixel scan policy (``sample`` included), :class:`Tally` counts the outcomes.
"""

from dxai.actors.outbound.build import KeyInfo, PipelineChoice, build_pipeline
from dxai.actors.outbound.files import FileReport, deidentify_file, file_report, write_outcome
from dxai.actors.outbound.instance import InstancePipeline
from dxai.actors.outbound.outcome import (
    HeaderSummary,
    InstanceOutcome,
    InstanceStatus,
    PixelSummary,
    ProcessorInfo,
)
from dxai.actors.outbound.pixel_step import PixelActor, PixelStep
from dxai.actors.outbound.series import InstanceProcessor, Member, read_member, run_series
from dxai.actors.outbound.tally import PixelTally, Tally

__all__ = [
    "FileReport",
    "HeaderSummary",
    "InstanceOutcome",
    "InstancePipeline",
    "InstanceProcessor",
    "InstanceStatus",
    "KeyInfo",
    "Member",
    "PipelineChoice",
    "PixelActor",
    "PixelStep",
    "PixelSummary",
    "PixelTally",
    "ProcessorInfo",
    "Tally",
    "build_pipeline",
    "deidentify_file",
    "file_report",
    "read_member",
    "run_series",
    "write_outcome",
]
