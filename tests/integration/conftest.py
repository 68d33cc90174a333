"""Fixtures for integration tests against the real services started by scripts/services/up.sh.

A service that is not running makes the test FAIL with the command that starts it (never skip).
Session fixtures: ``kafka_bootstrap`` (``"127.0.0.1:PORT"``), ``orthanc_source`` and
``orthanc_dest`` (:class:`OrthancInstance`).  Per-test fixtures: ``kafka_topic`` (a fresh topic,
deleted afterwards) and ``clean_orthanc`` (both Orthancs emptied before the test).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES_DIR = Path(os.environ.get("DXAI_SERVICES_DIR", REPO_ROOT / ".services"))
START_HINT = "start the services with `bash scripts/services/up.sh` (repo root)"
HTTP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class OrthancInstance:
    """One running Orthanc: REST base URL, DICOMweb root and DICOM network identity."""

    name: str
    base_url: str
    dicomweb_url: str
    aet: str
    dicom_port: int
    host: str = "127.0.0.1"

    def http(self) -> httpx.Client:
        """A new httpx client on the REST API (close it, or use it as a context manager)."""
        return httpx.Client(base_url=self.base_url, timeout=HTTP_TIMEOUT_S)

    def dicomweb(self) -> DICOMwebClient:
        """A dicomweb-client on this instance's DICOMweb root."""
        return DICOMwebClient(url=self.dicomweb_url)

    def instance_count(self) -> int:
        """How many instances the instance stores (``/statistics``)."""
        with self.http() as client:
            return int(client.get("/statistics").raise_for_status().json()["CountInstances"])

    def clear(self) -> None:
        """Delete every patient (and so every study, series and instance)."""
        with self.http() as client:
            for patient_id in client.get("/patients").raise_for_status().json():
                client.delete(f"/patients/{patient_id}").raise_for_status()
        remaining = self.instance_count()
        if remaining:
            pytest.fail(f"orthanc {self.name} still holds {remaining} instances after clearing")


@dataclass(frozen=True)
class OrthancPair:
    """The two Orthancs of the test setup."""

    source: OrthancInstance
    dest: OrthancInstance


def _read_state(*parts: str) -> str:
    path = SERVICES_DIR.joinpath(*parts)
    if not path.is_file():
        pytest.fail(f"{path} missing: the service is not running; {START_HINT}")
    return path.read_text(encoding="utf-8").strip()


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return True
    except OSError:
        return False


def _orthanc(name: str) -> OrthancInstance:
    http_port = int(_read_state("orthanc", name, "http_port"))
    base_url = f"http://127.0.0.1:{http_port}"
    try:
        httpx.get(f"{base_url}/system", timeout=HTTP_TIMEOUT_S).raise_for_status()
    except httpx.HTTPError as exc:
        pytest.fail(f"orthanc {name} does not answer at {base_url} ({exc!r}); {START_HINT}")
    return OrthancInstance(
        name=name,
        base_url=base_url,
        dicomweb_url=f"{base_url}/dicom-web",
        aet=_read_state("orthanc", name, "aet"),
        dicom_port=int(_read_state("orthanc", name, "dicom_port")),
    )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """``host:port`` of the running test broker; fails when Kafka is not running."""
    bootstrap = _read_state("kafka", "bootstrap")
    host, _, port = bootstrap.rpartition(":")
    if not _port_open(host, int(port)):
        pytest.fail(f"kafka does not answer at {bootstrap}; {START_HINT}")
    return bootstrap


@pytest.fixture(scope="session")
def orthanc_source() -> OrthancInstance:
    """The ``source`` Orthanc (AE SOURCE), the archive dxai fetches from."""
    return _orthanc("source")


@pytest.fixture(scope="session")
def orthanc_dest() -> OrthancInstance:
    """The ``dest`` Orthanc (AE DEST), where dxai sends its outputs."""
    return _orthanc("dest")


@pytest.fixture
def clean_orthanc(orthanc_source: OrthancInstance, orthanc_dest: OrthancInstance) -> OrthancPair:
    """Empty both Orthancs before the test and hand them over as a pair."""
    orthanc_source.clear()
    orthanc_dest.clear()
    return OrthancPair(source=orthanc_source, dest=orthanc_dest)


def _topic_errors(response: object) -> list[tuple[str, int]]:
    """(topic, error code) pairs of a CreateTopics/DeleteTopics response that did not succeed."""
    obj = response.to_object()  # type: ignore[attr-defined]
    key = "topic_errors" if "topic_errors" in obj else "topic_error_codes"
    return [(e["topic"], e["error_code"]) for e in obj.get(key, []) if e["error_code"] != 0]


@pytest_asyncio.fixture
async def kafka_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh, uniquely named 3-partition topic for this test; deleted afterwards."""
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name)[:80]
    topic = f"test.{stem}.{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=20_000)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name=topic, num_partitions=3, replication_factor=1)]
        )
        if errors := _topic_errors(response):
            pytest.fail(f"could not create topic {topic}: {errors}")
        yield topic
        if errors := _topic_errors(await admin.delete_topics([topic])):
            pytest.fail(f"could not delete topic {topic}: {errors}")
    finally:
        await admin.close()


def new_ct_instance() -> Dataset:
    """pydicom's bundled CT_small.dcm (valid CT Image, 128x128) with fresh study/series/SOP UIDs."""
    path = get_testdata_file("CT_small.dcm")
    if path is None:
        pytest.fail("pydicom's bundled CT_small.dcm is missing")
    ds = dcmread(path)
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


@pytest.fixture
def make_ct() -> Callable[[], Dataset]:
    """Factory of CT instances with fresh UIDs (each call: a new study)."""
    return new_ct_instance
