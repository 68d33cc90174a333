"""The hash-chained audit log: appends, restart, and tampering found by ``dxai audit verify``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from dxai.daemon.audit import FILE_NAME, AuditLog, read_records, verify_log
from dxai.daemon.cli import main

pytestmark = pytest.mark.unit


def _fill(folder: Path, count: int = 5) -> Path:
    async def go() -> None:
        async with AuditLog(folder / FILE_NAME) as log:
            for n in range(count):
                await log.append("decision", f"job{n}", {"decision": "proceed", "instances": n})

    asyncio.run(go())
    return folder / FILE_NAME


def _tamper(path: Path, *sql: str) -> None:
    con = sqlite3.connect(path)
    con.execute("DROP TRIGGER audit_no_update")
    con.execute("DROP TRIGGER audit_no_delete")
    for statement in sql:
        con.execute(statement)
    con.commit()
    con.close()


def _verify(folder: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["audit", "verify", "--data-dir", str(folder)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_an_intact_chain_verifies_and_a_restart_continues_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _fill(tmp_path, 3)
    _fill(tmp_path, 2)  # a second daemon run appends after the head it finds
    assert [r.seq for r in read_records(path)] == [1, 2, 3, 4, 5]
    code, text = _verify(tmp_path, capsys)
    assert code == 0 and "5 records" in text


def test_the_daemon_cannot_change_or_delete_a_record(tmp_path: Path) -> None:
    path = _fill(tmp_path, 2)
    con = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("UPDATE audit SET kind = 'x' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("DELETE FROM audit WHERE seq = 1")
    con.close()


def test_a_changed_field_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _fill(tmp_path)
    _tamper(path, """UPDATE audit SET data = '{"decision":"hold","instances":2}' WHERE seq = 3""")
    code, text = _verify(tmp_path, capsys)
    assert code == 1 and "record 3" in text and "changed" in text
    assert verify_log(path).bad_seq == 3


def test_a_deleted_record_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _fill(tmp_path)
    _tamper(path, "DELETE FROM audit WHERE seq = 2")
    code, text = _verify(tmp_path, capsys)
    assert code == 1 and "record 3" in text  # the first one whose predecessor is gone


def test_a_deleted_and_renumbered_record_is_named(tmp_path: Path) -> None:
    path = _fill(tmp_path)
    _tamper(path, "DELETE FROM audit WHERE seq = 2", "UPDATE audit SET seq = seq - 1 WHERE seq > 2")
    assert verify_log(path).bad_seq == 2


def test_an_inserted_record_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _fill(tmp_path)
    forged = next(r for r in read_records(path) if r.seq == 2)
    _tamper(
        path,
        "UPDATE audit SET seq = seq + 100 WHERE seq >= 3",
        f"INSERT INTO audit VALUES (3, 1.0, 'release', 'system:daemon', 'x', '{{}}',"
        f" '{forged.hash}', '{'0' * 64}')",
        "UPDATE audit SET seq = seq - 99 WHERE seq > 100",
    )
    code, text = _verify(tmp_path, capsys)
    assert code == 1 and "record 3" in text


def test_export_writes_one_json_object_per_record(tmp_path: Path) -> None:
    _fill(tmp_path, 3)
    out = tmp_path / "audit.jsonl"
    assert main(["audit", "export", "--data-dir", str(tmp_path), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert rows[1]["prev_hash"] == rows[0]["hash"] and rows[0]["data"]["decision"] == "proceed"


def test_a_missing_log_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--data-dir", str(tmp_path)]) == 2
    assert "no log" in capsys.readouterr().err
