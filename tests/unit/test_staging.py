"""The staging area's two tiers: memory within the daemon's budget, disk past it."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from dxai.configs.errors import ServiceUnavailableError
from dxai.daemon.pipeline.staging import Staging

pytestmark = pytest.mark.unit


def test_within_the_memory_budget_nothing_is_written(tmp_path: Path) -> None:
    staging = Staging(tmp_path, max_bytes=1024**2, memory_max_bytes=32 * 100)
    area = staging.open("job-a")
    kept = area.stage_input(b"x" * 60)
    assert kept == b"x" * 60
    assert staging.held_bytes == 60
    assert not list((tmp_path / "job-a").rglob("*.dcm"))
    out = area.stage_output(kept, b"y" * 30)
    assert out == b"y" * 30 and staging.held_bytes == 90
    area.drop_input(kept)
    assert staging.held_bytes == 30


def test_past_the_memory_budget_instances_go_to_disk(tmp_path: Path) -> None:
    staging = Staging(tmp_path, max_bytes=1024**2, memory_max_bytes=3200)
    area = staging.open("job-b")
    kept = [area.stage_input(b"a" * 80) for _ in range(40)]  # 3200 bytes: the budget
    assert all(isinstance(k, bytes) for k in kept)
    second = area.stage_input(b"b" * 80)
    assert isinstance(second, Path) and second.read_bytes() == b"b" * 80
    assert second.stat().st_mode & 0o777 == 0o600
    out = area.stage_output(kept[0], b"c" * 80)  # the budget is still spent by the inputs
    assert isinstance(out, Path) and out.parent.name == "out"
    area.drop_input(kept[1])
    other = area.stage_output(second, b"d" * 10)
    assert other == b"d" * 10
    assert staging.used_bytes == 160
    area.drop_input(second)
    assert not second.exists() and staging.used_bytes == 80


def test_a_large_instance_goes_to_disk_whatever_the_budget_left(tmp_path: Path) -> None:
    staging = Staging(tmp_path, max_bytes=1024**2, memory_max_bytes=3200)
    area = staging.open("job-l")
    assert isinstance(area.stage_input(b"s" * 100), bytes)  # a thirty-second of the budget
    assert isinstance(area.stage_input(b"L" * 101), Path)
    assert staging.held_bytes == 100 and staging.used_bytes == 101


def test_removing_a_job_gives_its_memory_and_disk_back(tmp_path: Path) -> None:
    staging = Staging(tmp_path, max_bytes=1024**2, memory_max_bytes=3200)
    area = staging.open("job-c")
    area.stage_input(b"m" * 90)
    area.stage_input(b"d" * 150)
    keep = staging.open("job-d")
    keep.stage_input(b"k" * 5)
    staging.remove("job-c")
    assert staging.held_bytes == 5 and staging.used_bytes == 0
    assert not (tmp_path / "job-c").exists()


def test_disk_budget_still_refuses_past_max_bytes(tmp_path: Path) -> None:
    staging = Staging(tmp_path, max_bytes=1024**2, memory_max_bytes=0)
    area = staging.open("job-e")
    area.stage_input(b"z" * (1024**2 - 10))
    with pytest.raises(ServiceUnavailableError):
        area.stage_input(b"z" * 20)


def test_a_full_disk_is_retriable_and_gives_its_reservation_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC on the staging disk (found by tests/chaos: it failed the job as internal_error
    and kept the bytes counted until the restart)."""
    staging = Staging(tmp_path, max_bytes=1024**2, memory_max_bytes=0)
    area = staging.open("job-f")

    def full(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("dxai.daemon.pipeline.staging.write_bytes_atomic", full)
    with pytest.raises(ServiceUnavailableError, match="disk full"):
        area.stage_input(b"z" * 1000)
    assert staging.used_bytes == 0
