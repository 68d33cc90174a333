"""The real Orthanc DICOMweb plugin through dicomweb-client: STOW-RS, QIDO-RS, WADO-RS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydicom.dataset import Dataset

pytestmark = pytest.mark.usefixtures("clean_orthanc")

STUDY_UID = "0020000D"
SERIES_UID = "0020000E"
SOP_UID = "00080018"
MODALITY = "00080060"


def _value(result: dict[str, Any], tag: str) -> Any:
    """First value of ``tag`` in a DICOM JSON (PS3.18 F.2) object."""
    return result[tag]["Value"][0]


def test_stow_qido_wado_round_trip(orthanc_source: Any, make_ct: Callable[[], Dataset]) -> None:
    ds = make_ct()
    client = orthanc_source.dicomweb()

    response = client.store_instances([ds])
    assert len(response.get("FailedSOPSequence", [])) == 0
    stored = response.ReferencedSOPSequence
    assert [item.ReferencedSOPInstanceUID for item in stored] == [ds.SOPInstanceUID]

    studies = client.search_for_studies(search_filters={"StudyInstanceUID": ds.StudyInstanceUID})
    assert [_value(s, STUDY_UID) for s in studies] == [ds.StudyInstanceUID]
    series = client.search_for_series(study_instance_uid=ds.StudyInstanceUID)
    assert [_value(s, SERIES_UID) for s in series] == [ds.SeriesInstanceUID]
    assert _value(series[0], MODALITY) == "CT"
    instances = client.search_for_instances(
        study_instance_uid=ds.StudyInstanceUID, series_instance_uid=ds.SeriesInstanceUID
    )
    assert [_value(i, SOP_UID) for i in instances] == [ds.SOPInstanceUID]

    got = client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert got.SOPInstanceUID == ds.SOPInstanceUID
    assert got.SOPClassUID == ds.SOPClassUID
    assert (got.Rows, got.Columns) == (ds.Rows, ds.Columns)
    assert got.PixelData == ds.PixelData
    assert (got.pixel_array == ds.pixel_array).all()


def test_instances_are_distinct(
    orthanc_source: Any, orthanc_dest: Any, make_ct: Callable[[], Dataset]
) -> None:
    ds = make_ct()
    orthanc_source.dicomweb().store_instances([ds])

    found = orthanc_source.dicomweb().search_for_studies(
        search_filters={"StudyInstanceUID": ds.StudyInstanceUID}
    )
    assert len(found) == 1
    assert orthanc_dest.dicomweb().search_for_studies() == []
    assert orthanc_source.instance_count() == 1
    assert orthanc_dest.instance_count() == 0
    assert orthanc_source.base_url != orthanc_dest.base_url
    assert (orthanc_source.aet, orthanc_dest.aet) == ("SOURCE", "DEST")
