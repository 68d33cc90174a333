"""Which series and instances an AI task takes (headers only; no pixels are read here)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset

from dxai.actors.inbound.study import InstanceRef, SeriesView, StudyView
from dxai.configs.schema.ai_tasks import PreprocessConfig, SeriesSelector


def _text(header: Dataset, keyword: str) -> str:
    value = header.get(keyword, "")
    return str(value if value is not None else "").strip()


def _image_types(header: Dataset) -> set[str]:
    value = header.get("ImageType")
    if value is None:
        return set()
    items = [value] if isinstance(value, str) else list(value)
    return {str(v).strip().upper() for v in items}


def eligible_instances(series: SeriesView, selector: SeriesSelector) -> list[InstanceRef]:
    """The series' instances whose ImageType holds none of ``skip_image_types``."""
    skip = set(selector.skip_image_types)
    return [ref for ref in series.instances if not (_image_types(ref.header) & skip)]


def _keywords_match(value: str, keywords: Sequence[str]) -> bool:
    if not keywords:
        return True
    lowered = value.lower()
    return any(k in lowered for k in keywords)


def series_matches(series: SeriesView, selector: SeriesSelector) -> bool:
    """Whether ``selector`` takes ``series`` (modality, keywords, eligible instance count)."""
    if not series.instances:
        return False
    if selector.modalities and series.modality not in selector.modalities:
        return False
    first = series.instances[0].header
    if not _keywords_match(_text(first, "SeriesDescription"), selector.description_keywords):
        return False
    if not _keywords_match(_text(first, "BodyPartExamined"), selector.body_part_keywords):
        return False
    count = len(eligible_instances(series, selector))
    if count < selector.min_instances:
        return False
    return selector.max_instances is None or count <= selector.max_instances


def select_series(study: StudyView, selector: SeriesSelector) -> list[SeriesView]:
    """The study's series that ``selector`` takes, in study order."""
    return [s for s in study.series if series_matches(s, selector)]


def _instance_number(ref: InstanceRef, arrival: int) -> tuple[int, int]:
    try:
        return int(ref.header.get("InstanceNumber", arrival) or arrival), arrival
    except (TypeError, ValueError):
        return arrival, arrival


def pick_instances(instances: Sequence[InstanceRef], pre: PreprocessConfig) -> list[InstanceRef]:
    """The instances to infer on, in InstanceNumber order: all, the middle one, or every
    n-th; then at most ``max_instances`` of them, evenly spread over the series."""
    ordered = [
        ref
        for _, ref in sorted(
            ((_instance_number(ref, i), ref) for i, ref in enumerate(instances)),
            key=lambda pair: pair[0],
        )
    ]
    if not ordered:
        return []
    if pre.instances == "middle":
        return [ordered[len(ordered) // 2]]
    if pre.instances == "every_nth":
        ordered = ordered[:: pre.every_nth]
    if len(ordered) <= pre.max_instances:
        return ordered
    picks = np.linspace(0, len(ordered) - 1, pre.max_instances).round().astype(int)
    return [ordered[int(i)] for i in dict.fromkeys(picks.tolist())]
