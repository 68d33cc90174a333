"""The ground truth of a synthetic corpus (``ground_truth.json``) as typed models."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

BurnedKind = Literal["name", "mrn", "dob", "accession", "institution", "date", "marker"]
GENERATOR_NAME = "dxai.synth"


class BurnedInText(BaseModel):
    """One text string burned into the pixels.

    ``box`` is the tight pixel box of the rendered ink, ``[x0, y0, x1, y1]`` in image coordinates
    with ``x1``/``y1`` exclusive; ``frames`` are the 0-based frame indices that carry it.
    ``ink`` is the glyph mask inside the box (pixels at least half covered by the text), as
    base64 of ``numpy.packbits`` over the box's rows: the pixels a redaction must cover.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    frames: list[int]
    box: list[int] = Field(min_length=4, max_length=4)
    text: str
    phi: bool
    kind: BurnedKind
    ink: str | None = None

    def ink_mask(self) -> npt.NDArray[np.bool_] | None:
        """The glyph mask (box height x box width), or None when the record has none."""
        if self.ink is None:
            return None
        x0, y0, x1, y1 = self.box
        bits = np.frombuffer(base64.b64decode(self.ink), dtype=np.uint8)
        count = (y1 - y0) * (x1 - x0)
        return np.unpackbits(bits, count=count).astype(bool).reshape(y1 - y0, x1 - x0)


def pack_ink(mask: npt.NDArray[np.bool_]) -> str:
    """The ``ink`` field for a boolean glyph mask (rows x columns of the box)."""
    return base64.b64encode(np.packbits(mask.ravel()).tobytes()).decode("ascii")


class FileRecord(BaseModel):
    """Ground truth for one generated DICOM file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    modality: str
    sop_class_uid: str
    transfer_syntax_uid: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    frames: int
    rows: int
    columns: int
    phi_strings: list[str]
    original_uids: list[str]
    burned_in: list[BurnedInText]


class CorpusManifest(BaseModel):
    """Everything planted in a synthetic corpus, mirroring ``ground_truth.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generator: str = GENERATOR_NAME
    seed: int
    files: list[FileRecord]

    @classmethod
    def load(cls, path: Path | str) -> CorpusManifest:
        """Read and validate a ``ground_truth.json`` file."""
        return cls.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))

    def dump(self, path: Path | str) -> None:
        """Write this manifest as indented, key-stable UTF-8 JSON."""
        text = json.dumps(self.model_dump(mode="json"), indent=1, ensure_ascii=False)
        Path(path).write_text(text + "\n", encoding="utf-8")

    def by_path(self) -> dict[str, FileRecord]:
        """Records keyed by their relative path."""
        return {record.path: record for record in self.files}
