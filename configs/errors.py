"""The one error hierarchy of dxai.

Every error raised on purpose by dxai code derives from :class:`DxaiError`.  Subclasses say
whether retrying the same work later can succeed (``retriable``); the single boundary that decides
ack / retry / dead-letter reads that flag.  Messages never carry PHI: use UIDs or hashed job ids.
"""

from __future__ import annotations

from typing import ClassVar


class DxaiError(Exception):
    """Root of all dxai errors."""

    retriable: ClassVar[bool] = False
    code: ClassVar[str] = "dxai_error"


class RetriableError(DxaiError):
    """The same work may succeed later (a service was down, a queue was full)."""

    retriable = True
    code = "retriable"


class PermanentError(DxaiError):
    """Retrying the same input will fail the same way (bad input, bad config)."""

    code = "permanent"


class ConfigError(PermanentError):
    """The configuration is invalid; the message names the dotted key, value and rule."""

    code = "config_invalid"


class InvalidDicomError(PermanentError):
    """A file or dataset could not be read as DICOM or lacks what the step needs."""

    code = "invalid_dicom"


class DeidentificationError(PermanentError):
    """De-identification could not be completed for an instance."""

    code = "deid_failed"


class PhiDetectedError(PermanentError):
    """The verify pass found PHI from the input in the output; the instance is held."""

    code = "phi_detected"


class ModelIntegrityError(PermanentError):
    """A model file is missing or its sha256 does not match the registry."""

    code = "model_integrity"


class EngineError(PermanentError):
    """An inference engine failed to load or to run a batch."""

    code = "engine_error"


class BackendUnavailableError(PermanentError):
    """A configured engine backend or device is not available on this node (no fallback)."""

    code = "backend_unavailable"


class ServiceUnavailableError(RetriableError):
    """A peer (Kafka, archive, PACS, Ray) could not be reached."""

    code = "service_unavailable"


class QueueFullError(RetriableError):
    """A bounded queue is full; the caller should back off."""

    code = "queue_full"


class DeadlineExceededError(RetriableError):
    """An item's deadline passed before it could be processed."""

    code = "deadline_exceeded"


class InvalidEventError(PermanentError):
    """An intake event does not match the event contract."""

    code = "invalid_event"


class ValidatorUnavailableError(PermanentError):
    """An external DICOM validator (dciodvfy) is missing, timed out or crashed before reporting."""

    code = "validator_unavailable"


class UnknownModelError(PermanentError):
    """A model name is not in the model registry (or not enabled on this node)."""

    code = "unknown_model"


class InvalidInferenceInputError(PermanentError):
    """An inference item does not match the model's input spec (rank, channels, dtype, size)."""

    code = "invalid_inference_input"


class BatcherStoppedError(RetriableError):
    """The inference client or batcher was stopped before the item could be processed."""

    code = "batcher_stopped"


class RetrieveIncompleteError(RetriableError):
    """A C-MOVE/C-GET retrieve ended with failed, cancelled or missing sub-operations."""

    code = "retrieve_incomplete"


class RetrieveRefusedError(PermanentError):
    """The archive refused a retrieve for good (unknown move destination, bad identifier)."""

    code = "retrieve_refused"


class ForeignInstanceError(RetrieveRefusedError):
    """The archive answered a study's retrieve with an instance of another study."""

    code = "foreign_instance"


class RepeatedInstanceError(RetrieveRefusedError):
    """The archive answered a study's retrieve with the same instance twice (the count of what
    it sent then no longer proves that nothing is missing)."""

    code = "repeated_instance"


class NotAcceptableError(PermanentError):
    """A DICOMweb peer cannot send what the Accept header asked for (HTTP 406)."""

    code = "dicomweb_not_acceptable"


class SourceNotAllowedError(PermanentError):
    """An event names a source (URL, peer, path) or destination that the config does not allow."""

    code = "source_not_allowed"


class IntakeAuthError(PermanentError):
    """An input arrived without valid credentials (webhook token or signature)."""

    code = "intake_unauthorized"
