"""Outputs: every publisher of a job's decision, results and dead letters (Kafka, folder)."""

from dxai.daemon.outputs.base import Publisher
from dxai.daemon.outputs.folder import FolderPublisher

__all__ = ["FolderPublisher", "Publisher"]
