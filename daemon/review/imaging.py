"""What the reviewer sees and what re-verification does, on one kept instance (blocking).

:func:`render_png`: the first frame as the pixel step displays it, with boxes drawn (the
pipeline's fills, where it still found PHI, the reviewer's own).  :func:`fill_and_verify`: the
reviewer's boxes filled on the pipeline's output (on every frame), then the pixel step's full
pass (OCR, fills, verify, the independent second reader) run again on the result with the PHI
values of the original header; without a pixel actor the fills alone (``unverified``).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

from dxai.actors.deid.encode import encode
from dxai.actors.deid.fileio import read_dicom
from dxai.actors.outbound.pixel_step import PixelActor, PixelStep
from dxai.actors.pixels import codec
from dxai.actors.pixels.frames import fill_boxes, fill_value
from dxai.actors.pixels.render import display_info, to_display
from dxai.actors.pixels.types import Box
from dxai.configs.errors import InvalidDicomError
from dxai.daemon.review.errors import ReviewConflictError
from dxai.daemon.review.manifest import BoxModel

MAX_SIDE_PX = 1024
#: outline colours: the pipeline's fills, PHI still found, the reviewer's boxes
COLOURS = {"filled": (0, 200, 0), "held": (255, 40, 40), "reviewer": (40, 120, 255)}


@dataclass(frozen=True)
class VerifyOutcome:
    """The output with the reviewer's boxes filled, and what the verify pass said of it."""

    data: bytes
    status: str
    held_reasons: list[str]
    held_boxes: list[BoxModel]


def render_png(data: bytes, boxes: Sequence[tuple[BoxModel, str]]) -> bytes:
    """The first frame of ``data`` as PNG with each ``(box, kind)`` outlined (see COLOURS)."""
    try:
        ds = read_dicom(data)
        decoded = codec.decode(ds)
        rgb = to_display(decoded.frames[0], display_info(ds, decoded.palette))
    except (InvalidDicomError, ValueError, TypeError, IndexError) as exc:
        raise ReviewConflictError("the instance has no displayable pixel data") from exc
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    width = max(2, max(image.size) // 300)
    for box, kind in boxes:
        if box.x1 > box.x0 and box.y1 > box.y0:
            shape = (box.x0, box.y0, box.x1 - 1, box.y1 - 1)
            draw.rectangle(shape, outline=COLOURS.get(kind, (255, 255, 0)), width=width)
    if max(image.size) > MAX_SIDE_PX:
        image.thumbnail((MAX_SIDE_PX, MAX_SIDE_PX))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def fill_and_verify(
    before: bytes, output: bytes, boxes: Sequence[BoxModel], actor: PixelActor | None
) -> VerifyOutcome:
    """Fill ``boxes`` on ``output`` and run the pixel pass again (see the module doc)."""
    pre = PixelStep.prepare(read_dicom(before))
    ds = read_dicom(output)
    if boxes:
        decoded = codec.decode(ds)
        frames = decoded.frames
        height, width = int(frames.shape[1]), int(frames.shape[2])
        clipped = [_clip(b, width, height) for b in boxes]
        value = fill_value(frames, str(ds.get("PhotometricInterpretation", "")), decoded.palette)
        fill_boxes(frames, [b for b in clipped if b.area], value)
        codec.encode(ds, decoded)
    if actor is None:
        return VerifyOutcome(encode(ds), "unverified", [], [])
    report = actor.redact_dataset(ds, pre.phi_values, "always", flagged=pre.flagged)
    held = [
        BoxModel(x0=b.x0, y0=b.y0, x1=b.x1, y1=b.y1, reason=b.reason) for b in report.held_boxes
    ]
    return VerifyOutcome(encode(ds), str(report.status), list(report.held_reasons), held)


def _clip(box: BoxModel, width: int, height: int) -> Box:
    return Box(min(box.x0, width), min(box.y0, height), min(box.x1, width), min(box.y1, height))
