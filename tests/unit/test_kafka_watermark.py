"""The Kafka intake's per-partition watermarks (pure bookkeeping, no broker)."""

from __future__ import annotations

import pytest

from dxai.daemon.intake.partition_state import commit_metadata, state_partition
from dxai.daemon.intake.watermark import (
    Snapshot,
    WatermarkTracker,
    decode_snapshot,
    encode_snapshot,
)

T = "events"


def _tracker(base: Snapshot | None = None) -> WatermarkTracker:
    tracker = WatermarkTracker()
    tracker.assign(T, 0, base or Snapshot(0))
    return tracker


def test_a_running_job_holds_the_watermark_back() -> None:
    tracker = _tracker()
    tracker.hold(T, 0, 0, "slow")
    tracker.hold(T, 0, 1, "fast")
    tracker.finish(T, 0, 2)  # a dead letter
    assert tracker.preview([(T, 0)])[(T, 0)] == Snapshot(0, frozenset({2}))
    tracker.concluded("fast")
    assert tracker.marks(T, 0).snapshot() == Snapshot(0, frozenset({1, 2}))
    tracker.concluded("slow")
    assert tracker.marks(T, 0).snapshot() == Snapshot(3)
    assert tracker.marks(T, 0).window == 0


def test_one_job_at_two_offsets_frees_both() -> None:
    tracker = _tracker()
    tracker.hold(T, 0, 5, "k")
    tracker.hold(T, 0, 7, "k")  # the same event redelivered: in progress
    tracker.hold(T, 0, 6, "other")
    assert tracker.concluded("k") == [(T, 0)]
    assert tracker.marks(T, 0).snapshot() == Snapshot(6, frozenset({7}))
    assert tracker.pending_in([(T, 0)]) == 1


def test_preview_changes_nothing_until_settled() -> None:
    tracker = _tracker()
    tracker.hold(T, 0, 0, "a")
    tracker.hold(T, 0, 1, "b")
    would = tracker.preview([(T, 0)], "a")[(T, 0)]
    assert would == Snapshot(1)
    assert tracker.marks(T, 0).snapshot() == Snapshot(0)  # the transaction may still abort
    tracker.concluded("a")
    tracker.settle((T, 0), would)
    assert tracker.dirty() == []
    assert tracker.seen_before(T, 0, 0)


def test_settle_keeps_a_partition_dirty_when_it_changed_since() -> None:
    tracker = _tracker()
    tracker.finish(T, 0, 0)
    committed = tracker.preview([(T, 0)])[(T, 0)]
    tracker.finish(T, 0, 1)  # after the snapshot was taken
    tracker.settle((T, 0), committed)
    assert tracker.dirty() == [(T, 0)]
    assert tracker.marks(T, 0).snapshot() == Snapshot(2)


def test_what_a_previous_owner_concluded_is_seen_before() -> None:
    tracker = _tracker(Snapshot(10, frozenset({12, 13})))
    assert [o for o in range(9, 16) if tracker.seen_before(T, 0, o)] == [9, 12, 13]
    tracker.hold(T, 0, 10, "rerun")
    tracker.finish(T, 0, 11)
    assert tracker.marks(T, 0).snapshot() == Snapshot(10, frozenset({11, 12, 13}))
    tracker.concluded("rerun")
    for offset in (12, 13):
        tracker.finish(T, 0, offset)  # skipped as duplicates
    assert tracker.marks(T, 0).snapshot() == Snapshot(14)


def test_revoked_running_jobs_are_abandoned_until_held_again() -> None:
    tracker = _tracker()
    tracker.assign(T, 1, Snapshot(0))
    tracker.hold(T, 0, 0, "moved")
    tracker.hold(T, 0, 1, "both")
    tracker.hold(T, 1, 0, "both")
    assert tracker.revoke(T, 0) == ["both", "moved"]
    assert tracker.is_abandoned("moved")
    assert not tracker.is_abandoned("both")  # still held on partition 1
    assert not tracker.owns(T, 0)
    tracker.assign(T, 0, Snapshot(0))
    tracker.hold(T, 0, 0, "moved")  # the partition came back, the event with it
    assert not tracker.is_abandoned("moved")


def test_snapshot_round_trips_as_compact_json() -> None:
    snap = Snapshot(100, frozenset({101, 102, 103, 200, 205, 206}))
    raw = encode_snapshot(snap)
    assert b'"concluded":[[101,103],[200,200],[205,206]]' in raw
    assert decode_snapshot(raw) == snap
    assert decode_snapshot(b'{"v":99,"watermark":1,"concluded":[]}') is None
    assert decode_snapshot(b"not json") is None


@pytest.mark.parametrize(("partition", "count", "expected"), [(0, 4, 0), (5, 4, 1), (3, 0, 0)])
def test_state_partition(partition: int, count: int, expected: int) -> None:
    assert state_partition(partition, count) == expected
    assert commit_metadata(42) == "dxai-state:42"


def test_window_measures_what_a_slow_job_holds_back() -> None:
    tracker = _tracker()
    tracker.hold(T, 0, 0, "slow")
    for offset in range(1, 50):
        tracker.finish(T, 0, offset)
    assert tracker.marks(T, 0).window == 50
    assert tracker.marks(T, 0).watermark == 0


async def test_ownership_refuses_outputs_of_abandoned_jobs_and_frees_concluded_ones() -> None:
    import asyncio

    from dxai.configs.schema.services import KafkaConfig
    from dxai.daemon.intake.ownership import PartitionOwnership
    from dxai.daemon.intake.watermark import PartitionRevokedError
    from dxai.daemon.outputs.kafka import KafkaPublisher

    publisher = KafkaPublisher(KafkaConfig())  # never connected: no broker needed
    publisher._started = True  # so that stop() closes its producer
    own = PartitionOwnership(KafkaConfig(), publisher, lambda: None, asyncio.Event())  # type: ignore[arg-type,return-value]
    assert publisher.hooks is own
    own.tracker.assign(T, 0, Snapshot(0))
    own.tracker.hold(T, 0, 0, "done-here")
    own.tracker.hold(T, 0, 1, "moves")
    await own.concluded("done-here")  # not transactional: takes effect at once
    assert own.tracker.marks(T, 0).snapshot() == Snapshot(1)
    own.check_owned("moves")
    own.tracker.revoke(T, 0)
    with pytest.raises(PartitionRevokedError):
        own.check_owned("moves")
    own.check_owned("done-here")
    await publisher.stop()  # closes the unstarted producer (no warning at collection)
