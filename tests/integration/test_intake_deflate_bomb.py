"""The C-STORE landing zone refuses a decompression bomb before pynetdicom inflates it.

A deflated instance whose dataset inflates to sixteen times the bound (lowered here to 1 MiB so
the test stays small; the daemon's is 512 MiB) is answered ``0xC000`` (cannot understand) and
never lands; an ordinary deflated instance on the same association still lands.  Before, the SCP
inflated every request in memory to read its Study Instance UID: a 1.5 MB request became a
1.5 GB dataset.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pynetdicom import AE

from dxai.actors import inflate
from dxai.daemon.intake.dicom_scp import STATUS_CANNOT_UNDERSTAND, StoreScp
from dxai.daemon.intake.landing import LandingZone
from dxai.synth.hostile import deflated_instance

pytestmark = pytest.mark.integration

LIMIT = 1024 * 1024


def _deflated(padding: int) -> pydicom.Dataset:
    """A deflated instance with ``padding`` zero bytes, read back as a sender reads its file."""
    return pydicom.dcmread(io.BytesIO(deflated_instance(padding)))


def _send(port: int, datasets: list[pydicom.Dataset]) -> list[int]:
    ae = AE(ae_title="BOMBER")
    ae.add_requested_context(str(datasets[0].SOPClassUID), DeflatedExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="DXAI")
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


async def test_a_deflate_bomb_is_refused_and_an_ordinary_instance_lands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inflate, "MAX_INFLATED_BYTES", LIMIT)
    zone = LandingZone(tmp_path / "landing")
    arrived: list[str] = []
    scp = StoreScp(
        zone, "DXAI", lambda study, _assoc: arrived.append(study), asyncio.get_running_loop()
    )
    port = scp.start("127.0.0.1", 0)
    try:
        bomb, fine = _deflated(16 * LIMIT), _deflated(LIMIT // 4)
        statuses = await asyncio.to_thread(_send, port, [bomb, fine])
    finally:
        await asyncio.to_thread(scp.stop)
    assert statuses == [STATUS_CANNOT_UNDERSTAND, 0]
    landed = sorted(p.name for p in (tmp_path / "landing").rglob("*.dcm"))
    assert landed == [f"{fine.SOPInstanceUID}.dcm"]
