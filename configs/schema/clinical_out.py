"""Clinical outputs of the inbound workflow: the DICOM SR (TID 1500) and the HL7 ORU^R01.

``sr:`` says how the Structured Report that carries the findings back to the archive describes
the device and the algorithms that made it.  ``hl7_out:`` says where the ORU^R01 result message
goes over MLLP (``host`` left out: no MLLP peer, the daemon writes the message to a file) and how
hard the sender tries before it gives up.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from dxai.configs.schema.base import Section

#: A DICOM UID root: digits and dots, no leading zero in a component, room left for a suffix.
_UID_ROOT_PATTERN = r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*\.$"
_UID_PATTERN = r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$"


class SrConfig(Section):
    """The SR written back to the archive: device (TID 1004) and algorithm (TID 4019) defaults."""

    enabled: bool = Field(default=True, description="Write an SR of the inbound findings.")
    manufacturer: str = Field(default="dxai", min_length=1, max_length=64)
    device_name: str = Field(default="dxai", min_length=1, max_length=64)
    model_name: str = Field(default="dxai-inbound", min_length=1, max_length=64)
    device_serial_number: str | None = Field(default=None, max_length=64)
    software_version: str = Field(default="1", min_length=1, max_length=64)
    device_uid: str | None = Field(
        default=None,
        max_length=64,
        pattern=_UID_PATTERN,
        description="Device Observer UID; default: derived from uid_root and the model name.",
    )
    algorithm_name: str = Field(
        default="dxai-inbound",
        min_length=1,
        max_length=64,
        description="TID 4019 name for a task whose algorithm the caller did not name.",
    )
    algorithm_version: str = Field(default="1", min_length=1, max_length=64)
    institution_name: str | None = Field(default=None, max_length=64)
    series_description: str = Field(default="DXAI AI RESULTS", min_length=1, max_length=64)
    series_number: int = Field(default=9901, ge=1, le=2_147_483_647)
    uid_root: str | None = Field(
        default=None,
        max_length=40,
        pattern=_UID_ROOT_PATTERN,
        description="Root (ending in '.') of the SR's series and SOP Instance UIDs; default: "
        "pydicom's root.",
    )
    final: bool = Field(
        default=False,
        description="Preliminary Flag FINAL; default PRELIMINARY (AI output, not verified).",
    )


class Hl7OutConfig(Section):
    """The ORU^R01 result message to the RIS over MLLP, with retries and timeouts."""

    host: str | None = Field(
        default=None,
        min_length=1,
        description="MLLP peer; None: no MLLP destination, the daemon writes a file instead.",
    )
    port: int = Field(default=2575, ge=1, le=65535)
    sending_application: str = Field(default="DXAI", min_length=1, max_length=180)
    sending_facility: str = Field(default="DXAI", min_length=1, max_length=180)
    receiving_application: str = Field(default="RIS", min_length=1, max_length=180)
    receiving_facility: str = Field(default="RIS", min_length=1, max_length=180)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    ack_timeout_s: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=100)
    retry_initial_s: float = Field(default=1.0, ge=0)
    retry_max_s: float = Field(default=60.0, ge=0)

    @model_validator(mode="after")
    def _backoff_sane(self) -> Hl7OutConfig:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("hl7_out.retry_max_s must be >= hl7_out.retry_initial_s")
        return self
