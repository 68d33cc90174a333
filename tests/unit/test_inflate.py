"""Decompression bombs: a deflated instance whose dataset inflates past the bound is refused
before pydicom inflates it (``actors/inflate.py``), wherever instances are read."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian

from dxai.actors import inflate
from dxai.actors.deid.fileio import read_dicom
from dxai.actors.inflate import InflatedTooLargeError, check_deflated, check_part10
from dxai.actors.outbound.series import read_member
from dxai.configs.errors import InvalidDicomError
from dxai.daemon.policy.facts import read_header_facts
from dxai.synth.hostile import deflated_instance

pytestmark = pytest.mark.unit

LIMIT = 1024 * 1024


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inflate, "MAX_INFLATED_BYTES", LIMIT)


@pytest.mark.usefixtures("small_limit")
def test_a_bomb_is_refused_by_every_reader(tmp_path: Path) -> None:
    bomb = deflated_instance(16 * LIMIT)
    assert len(bomb) < LIMIT // 8  # sixteen times the bound, inflated
    with pytest.raises(InflatedTooLargeError) as caught:
        check_part10(bomb)
    assert caught.value.code == "deflated_too_large"
    path = tmp_path / "bomb.dcm"
    path.write_bytes(bomb)
    for source in (bomb, path):
        with pytest.raises(InvalidDicomError) as refused:
            read_dicom(source)
        assert refused.value.code == "deflated_too_large"
    assert read_member(bomb).series_uid == ""  # planned alone; it fails in the pipeline
    assert read_header_facts(bomb).patient_id == ""


@pytest.mark.usefixtures("small_limit")
def test_instances_within_the_bound_are_read() -> None:
    deflated = deflated_instance(LIMIT // 2)
    plain = deflated_instance(4 * LIMIT, ExplicitVRLittleEndian)  # not deflated: nothing to bound
    for data in (deflated, plain):
        check_part10(data)
        assert read_dicom(data).Modality == "CT"
    assert read_member(deflated).series_uid != ""
    fp = io.BytesIO(deflated)
    fp.seek(5)
    check_part10(fp)
    assert fp.tell() == 5  # the reader's position is kept
    shipped = Path(get_testdata_file("image_dfl.dcm"))  # type: ignore[arg-type]
    assert read_dicom(shipped).Rows == 512


def test_what_is_not_deflate_is_left_to_the_reader() -> None:
    check_part10(b"not dicom at all")
    check_deflated(io.BytesIO(b"\xff" * 64), limit=1)  # invalid deflate: the reader refuses
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw = packer.compress(b"\0" * 4096) + packer.flush()
    check_deflated(io.BytesIO(raw), limit=4096)
    with pytest.raises(InflatedTooLargeError):
        check_deflated(io.BytesIO(raw), limit=4095)
