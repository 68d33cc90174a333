"""The encrypted review store: sealing round trip, tamper detection, the key file, no PHI."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from dxai.configs.errors import ConfigError
from dxai.daemon.pipeline.outcome import KeptInstance
from dxai.daemon.review.crypto import Sealer, load_or_create_key
from dxai.daemon.review.errors import ReviewTamperedError
from dxai.daemon.review.manifest import CommentEntry
from dxai.daemon.review.store import ReviewStore

pytestmark = pytest.mark.unit

JOB = "a" * 64
OTHER = "b" * 64
PHI = b"DOE^JOHN 1970-01-01"


def _store(tmp: Path) -> ReviewStore:
    key, created = load_or_create_key(tmp / "keys" / "review.key")
    assert created
    return ReviewStore(tmp / "review", key)


def _kept() -> list[KeptInstance]:
    pixel = {"status": "held", "boxes": [], "held_reasons": ["second_reader_phi"]}
    pixel["held_boxes"] = [{"x0": 1, "y0": 2, "x1": 30, "y1": 12, "reason": "second_reader_phi"}]
    return [
        KeptInstance(
            "held", "2.25.1", "pixel_second_reader_phi", b"out " + PHI, b"in " + PHI, pixel
        ),
        KeptInstance("passed", "2.25.2", output=b"passed output"),
        KeptInstance("failed", None, "invalid_dicom"),
    ]


def test_sealed_blobs_round_trip_with_a_fresh_nonce_each() -> None:
    sealer = Sealer(bytes(range(32)))
    one, two = sealer.seal(PHI, JOB, "000001.out"), sealer.seal(PHI, JOB, "000001.out")
    assert one != two and PHI not in one
    assert sealer.open(one, JOB, "000001.out") == PHI == sealer.open(two, JOB, "000001.out")


@pytest.mark.parametrize("attack", ["flip", "truncate", "other_job", "other_name", "other_key"])
def test_tampered_blob_does_not_open(attack: str) -> None:
    sealer = Sealer(bytes(range(32)))
    blob = bytearray(sealer.seal(PHI, JOB, "000001.out"))
    job, name, opener = JOB, "000001.out", sealer
    if attack == "flip":
        blob[-5] ^= 0x01
    elif attack == "truncate":
        del blob[-3:]
    elif attack == "other_job":
        job = OTHER
    elif attack == "other_name":
        name = "000002.out"
    else:
        opener = Sealer(bytes(32))
    with pytest.raises(ReviewTamperedError):
        opener.open(bytes(blob), job, name)


def test_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "k" / "review.key"
    key, created = load_or_create_key(path)
    assert created and len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = load_or_create_key(path)
    assert again == key and not created_again


def test_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "review.key"
    load_or_create_key(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="0600"):
        load_or_create_key(path)


def test_keep_and_read_back(tmp_path: Path) -> None:
    store = _store(tmp_path)
    manifest = store.keep_blocking(JOB, _kept(), ["pixel_second_reader_phi"], "2.25.9")
    loaded = store.load(JOB)
    assert loaded == manifest
    held, passed, failed = loaded.instances
    assert (held.status, held.releasable, held.reviewable) == ("held", True, True)
    assert held.held_boxes[0].x1 == 30 and held.held_reasons == ["second_reader_phi"]
    assert (passed.releasable, failed.releasable) == (True, False)
    assert store.read_blob(JOB, 1, "before") == b"in " + PHI
    assert store.output(JOB, held) == b"out " + PHI
    assert store.output(JOB, passed) == b"passed output"
    assert stat.S_IMODE(store.folder(JOB).stat().st_mode) == 0o700


def test_nothing_on_disk_holds_the_plaintext(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.keep_blocking(JOB, _kept(), ["pixel_second_reader_phi"])
    manifest = store.load(JOB)
    assert manifest is not None
    sealed = store.seal_text(JOB, "patient DOE^JOHN")
    manifest.comments.append(CommentEntry(user="alice", at=1.0, sealed=sealed))
    store.save(manifest)
    for path in store.folder(JOB).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"DOE^JOHN" not in data, path.name
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert store.open_text(JOB, sealed) == "patient DOE^JOHN"


def test_edited_manifest_is_detected(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.keep_blocking(JOB, _kept(), ["pixel_second_reader_phi"])
    path = store.folder(JOB) / "manifest.json"
    wrapper = json.loads(path.read_text())
    wrapper["manifest"]["instances"][0]["held_boxes"] = []
    path.write_text(json.dumps(wrapper))
    with pytest.raises(ReviewTamperedError):
        store.load(JOB)


def test_swapped_blob_is_detected(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.keep_blocking(JOB, _kept(), [])
    blobs = store.folder(JOB) / "blobs"
    (blobs / "000001.before").write_bytes((blobs / "000001.out").read_bytes())
    with pytest.raises(ReviewTamperedError):
        store.read_blob(JOB, 1, "before")


def test_keeping_again_replaces_and_temporary_folders_are_swept(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.keep_blocking(JOB, _kept(), ["a"])
    store.keep_blocking(JOB, _kept()[:1], ["b"])
    loaded = store.load(JOB)
    assert loaded is not None and loaded.reasons == ["b"] and len(loaded.instances) == 1
    (store.root / ".tmp-x").mkdir()
    assert store.sweep_temporary() == 1 and store.job_keys() == [JOB]
