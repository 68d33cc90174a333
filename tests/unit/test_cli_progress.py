"""The CLI progress bar: shown on a terminal with rate and held/failed, silent otherwise."""

from __future__ import annotations

import io
import re

import pytest

from dxai.observability.progress import cli_progress

pytestmark = pytest.mark.unit


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(stream: io.StringIO, enabled: bool = True) -> str:
    with cli_progress(enabled, stream=stream) as progress:
        task = progress.add_task("de-identifying", total=4)
        for n in range(4):
            progress.update(task, advance=1, held=n // 2, failed=0)
        progress.refresh()
        text = stream.getvalue()
    return text


def test_on_a_terminal_it_shows_counts_rate_and_outcomes() -> None:
    text = _run(_Tty())
    words = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", " ", text).split()  # the bar may wrap at 80
    assert "de-identifying" in words and "4/4" in words
    assert "files/s" in words
    assert words[words.index("held") : words.index("held") + 2] == ["held", "1,"]
    assert "failed" in words


def test_not_a_terminal_or_disabled_prints_nothing() -> None:
    assert _run(io.StringIO()) == ""
    assert _run(_Tty(), enabled=False) == ""
