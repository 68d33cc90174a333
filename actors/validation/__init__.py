"""DICOM conformance checks backed by external validators (dciodvfy from dicom3tools)."""

from __future__ import annotations

from dxai.actors.validation.dciodvfy import DciodvfyReport, parse_dciodvfy_output, run_dciodvfy

__all__ = ["DciodvfyReport", "parse_dciodvfy_output", "run_dciodvfy"]
