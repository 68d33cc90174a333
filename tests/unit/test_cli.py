"""The ``dxai`` command line skeleton."""

from __future__ import annotations

from pathlib import Path

import pytest

from dxai.daemon.cli import build_parser, main


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in ("config", "deid", "run", "synth", "audit", "review", "bench"):
        assert name in out


def test_bench_runs_a_script_with_arguments(tmp_path: Path) -> None:
    (tmp_path / "echo.py").write_text(
        "import sys, pathlib\npathlib.Path(sys.argv[1]).write_text('ran')\n"
    )
    marker = tmp_path / "marker.txt"
    assert main(["bench", "--bench-dir", str(tmp_path), "echo", str(marker)]) == 0
    assert marker.read_text() == "ran"


def test_bench_unknown_name_lists_available(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "batching.py").write_text("")
    assert main(["bench", "--bench-dir", str(tmp_path), "nope"]) == 2
    assert "available: batching" in capsys.readouterr().err
