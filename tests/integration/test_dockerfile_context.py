"""Dockerfile.gpu builds and runs, checked without a Docker engine.

The test reads the Dockerfile, lays out in a temporary folder exactly the files its COPY/ADD
lines take from the build context (the repository, less ``.dockerignore``), installs that the
way the build stage does (its own ``pip install`` lines, in a fresh virtual environment; the
base package instead of the ``gpu`` extra, whose CUDA wheels this machine cannot install) and
runs ``dxai --help`` and ``dxai config check`` on the configs the final stage ships.  Static
checks: pinned base tags, two stages, a non-root user, a HEALTHCHECK, no build tools in the
final stage, the runtime packages (tesseract-ocr, dcmtk, dicom3tools) installed there.
"""

from __future__ import annotations

import fnmatch
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile.gpu"
INSTALL_TIMEOUT_S = 900
RUN_TIMEOUT_S = 120
BUILD_TOOLS = ("build-essential", "gcc", "g++", "python3-dev", "pkg-config", "make")


@dataclass
class Stage:
    """One ``FROM`` of the Dockerfile: its base, name, and the instructions after it."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        """The arguments of every ``keyword`` instruction of the stage, in order."""
        return [args for kw, args in self.instructions if kw == keyword]


def logical_lines(text: str) -> list[str]:
    """Instructions with their continuation lines joined; comments and blanks dropped."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def parse(text: str) -> list[Stage]:
    """The stages of a Dockerfile."""
    stages: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


@dataclass(frozen=True)
class Copy:
    """One COPY/ADD from the build context: sources (context paths) into ``dest`` (absolute)."""

    sources: tuple[str, ...]
    dest: str


def context_copies(stage: Stage) -> list[Copy]:
    """The stage's COPY/ADD lines that read the build context (not ``--from``), WORKDIR-resolved."""
    workdir = PurePosixPath("/")
    copies: list[Copy] = []
    for keyword, args in stage.instructions:
        if keyword == "WORKDIR":
            workdir = workdir / args
        if keyword not in ("COPY", "ADD"):
            continue
        words = [w for w in shlex.split(args) if not w.startswith("--chown") and w != "--link"]
        if any(w.startswith("--from") for w in words):
            continue
        *sources, dest = words
        resolved = PurePosixPath(dest) if dest.startswith("/") else workdir / dest
        copies.append(Copy(tuple(sources), str(resolved) + ("/" if dest.endswith("/") else "")))
    return copies


def workdir_of(stage: Stage) -> PurePosixPath:
    """The stage's last WORKDIR."""
    workdir = PurePosixPath("/")
    for args in stage.all("WORKDIR"):
        workdir = workdir / args
    return workdir


def ignored(rel: str, patterns: list[str]) -> bool:
    """Whether ``.dockerignore`` leaves ``rel`` (or a folder above it) out of the context."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        for prefix in prefixes:
            name = prefix.rsplit("/", 1)[-1]
            if fnmatch.fnmatchcase(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatchcase(name, bare)
            ):
                return True
    return False


def dockerignore() -> list[str]:
    path = REPO / ".dockerignore"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns), "exceptions are not modelled here"
    return patterns


def lay_out(copies: list[Copy], root: Path) -> None:
    """Copy what ``copies`` take from the repository into ``root`` (Docker's COPY rules)."""
    patterns = dockerignore()
    for copy in copies:
        multi = len(copy.sources) > 1 or copy.dest.endswith("/")
        for source in copy.sources:
            src = REPO / source
            assert src.exists(), f"COPY source {source} is not in the build context"
            assert not ignored(source, patterns), f"COPY source {source} is .dockerignored"
            target = root / copy.dest.lstrip("/")
            if src.is_dir():
                _copy_tree(src, target, source, patterns)
            else:
                dest = target / src.name if multi else target
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)


def _copy_tree(src: Path, target: Path, rel: str, patterns: list[str]) -> None:
    for path in sorted(src.rglob("*")):
        sub = f"{rel}/{path.relative_to(src).as_posix()}"
        if path.is_file() and not ignored(sub, patterns):
            dest = target / path.relative_to(src)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)


def pip_commands(stage: Stage) -> list[list[str]]:
    """Each ``pip install`` of the stage's RUN lines, as argument lists after ``install``."""
    found: list[list[str]] = []
    for run in stage.all("RUN"):
        for part in run.split("&&"):
            words = shlex.split(part)
            if len(words) > 2 and words[0] in ("pip", "pip3") and words[1] == "install":
                found.append(words[2:])
            elif words[:4] in (
                ["python", "-m", "pip", "install"],
                ["python3", "-m", "pip", "install"],
            ):
                found.append(words[4:])
    return found


def _clean_env() -> dict[str, str]:
    """This process's environment without DXAI_* (config overrides) and virtualenv markers."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DXAI_") and k not in ("VIRTUAL_ENV", "PYTHONPATH")
    }


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text(encoding="utf-8"))


def test_two_stages_on_one_pinned_base(stages: list[Stage]) -> None:
    assert len(stages) == 2 and stages[0].name == "build" and stages[1].name is None
    bases = {s.base for s in stages}
    assert len(bases) == 1, "build and final stage must share the base (the venv is copied)"
    image, _, tag = next(iter(bases)).rpartition(":")
    assert image and tag and tag != "latest" and not tag.startswith("$")


def test_final_stage_runs_as_non_root_with_a_healthcheck_and_no_build_tools(
    stages: list[Stage],
) -> None:
    final = stages[-1]
    assert final.all("USER") and final.all("USER")[-1].split(":")[0] not in ("root", "0")
    assert any("/healthz" in h for h in final.all("HEALTHCHECK"))
    installs = " ".join(final.all("RUN"))
    packages = set(installs.replace("\\", " ").split())
    assert {"tesseract-ocr", "dcmtk", "dicom3tools", "python3"} <= packages
    assert not packages & set(BUILD_TOOLS), packages & set(BUILD_TOOLS)
    assert "pip" not in packages and "pip3" not in packages
    assert all("--from=build" in c for c in final.all("COPY") if "/opt/venv" in c)


def test_context_layout_installs_and_runs(stages: list[Stage], tmp_path: Path) -> None:
    build, final = stages
    root = tmp_path / "image"
    lay_out(context_copies(build), root)
    lay_out(context_copies(final), root)
    for path in root.rglob("*"):
        assert "__pycache__" not in path.parts and path.suffix != ".pyc"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=RUN_TIMEOUT_S)
    python = venv / "bin" / "python"
    workdir = root / str(workdir_of(build)).lstrip("/")
    commands = pip_commands(build)
    assert commands and any(".[gpu]" in args for args in commands)
    env = _clean_env()
    for args in commands:
        base = ["." if a == ".[gpu]" else a for a in args]  # the gpu wheels need CUDA
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *base],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
        assert done.returncode == 0, done.stderr[-4000:]
    dxai = venv / "bin" / "dxai"
    helped = subprocess.run(
        [str(dxai), "--help"], env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    assert helped.returncode == 0 and "run" in helped.stdout, helped.stderr[-2000:]
    cmd = shlex.split(final.all("CMD")[-1].replace("[", "").replace("]", "").replace(",", " "))
    shipped = root / cmd[cmd.index("--config") + 1].lstrip("/")
    assert shipped.is_file(), "the CMD's config is not in the image"
    for config in sorted(shipped.parent.glob("*.yaml")):
        checked = subprocess.run(
            [str(dxai), "config", "check", str(config)],
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
        assert checked.returncode == 0, checked.stderr[-2000:]
        assert "valid" in checked.stdout
