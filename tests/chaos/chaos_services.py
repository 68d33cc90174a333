"""Private Kafka and Orthanc instances for the chaos run, which it may stop and restart.

The shared services (Kafka on 9092, Orthancs on 8042/8043) are never touched: the service
scripts run with ``DXAI_SERVICES_DIR`` pointing into the run's temporary folder and with ports of
their own (those variables go to the scripts' environment only, never to the daemon).  The
scripts wipe their state at each ``start``; a chaos restart must keep it (topics, committed
offsets and transactions in the broker; stored studies in the archives), so a restart here
stops the process the script started and launches the very same command line again (read from
``/proc/<pid>/cmdline``), which keeps its data folder.  The pid files are updated, so the
scripts' ``stop`` still stops the relaunched processes at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts" / "services"
PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
START_TIMEOUT_S = 120.0


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout_s: float) -> None:
    """Poll until ``pid`` has exited; AssertionError after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() > end:
            raise AssertionError(f"pid {pid} still alive after {timeout_s}s")
        time.sleep(0.05)


@dataclass
class Relaunchable:
    """One service process started by a script, restartable with the same command line."""

    name: str
    pidfile: Path
    log: Path
    argv: list[str] = field(default_factory=list)
    cwd: str = ""
    env: dict[str, str] = field(default_factory=dict)
    child: subprocess.Popen[bytes] | None = None

    def capture(self) -> None:
        """Read the running process's command line, folder and environment."""
        pid = self.pid()
        self.argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        self.cwd = str(Path(f"/proc/{pid}/cwd").readlink())
        raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        self.env = dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)

    def pid(self) -> int:
        """The pid of the process (from its pid file)."""
        return int(self.pidfile.read_text(encoding="ascii").strip())

    def down(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 60.0) -> None:
        """Stop the process with ``sig`` (SIGKILL after ``timeout_s``) and wait until gone."""
        pid = self.pid()
        if not _alive(pid):
            return
        os.kill(pid, sig)
        try:
            self._wait(pid, timeout_s)
        except (AssertionError, subprocess.TimeoutExpired):
            os.kill(pid, signal.SIGKILL)
            self._wait(pid, 30.0)

    def _wait(self, pid: int, timeout_s: float) -> None:
        if self.child is not None and self.child.pid == pid:
            self.child.wait(timeout_s)
        else:
            wait_gone(pid, timeout_s)

    def up(self) -> None:
        """Launch the captured command line again (own session, log appended)."""
        with self.log.open("ab") as out:
            self.child = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pidfile.write_text(f"{self.child.pid}\n", encoding="ascii")

    def reap(self) -> None:
        """Kill and reap a process this harness launched, if it still runs (teardown)."""
        if self.child is not None and self.child.poll() is None:
            self.child.kill()
            self.child.wait(30)


class PrivateServices:
    """A private Kafka broker and two private Orthancs (``source``, ``dest``) under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = {
            "kafka": free_port(),
            "kafka_controller": free_port(),
            "source_http": free_port(),
            "source_dicom": free_port(),
            "dest_http": free_port(),
            "dest_dicom": free_port(),
        }
        self.kafka = Relaunchable(
            "kafka", root / "kafka" / "kafka.pid", root / "kafka" / "kafka.log"
        )
        self.orthancs = {
            name: Relaunchable(
                name,
                root / "orthanc" / name / "orthanc.pid",
                root / "orthanc" / name / "orthanc.log",
            )
            for name in ("source", "dest")
        }

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the private broker."""
        return f"127.0.0.1:{self.ports['kafka']}"

    def orthanc_url(self, name: str) -> str:
        """REST base URL of a private Orthanc."""
        return f"http://127.0.0.1:{self.ports[name + '_http']}"

    def _script_env(self, **extra: int) -> dict[str, str]:
        env = dict(os.environ)
        env["DXAI_SERVICES_DIR"] = str(self.root)
        env["DXAI_SERVICES_PYTHON"] = str(PYTHON)
        env.update({key: str(value) for key, value in extra.items()})
        return env

    def _script(self, *args: str, **ports: int) -> None:
        proc = subprocess.run(
            ["bash", str(SCRIPTS / args[0]), *args[1:]],
            env=self._script_env(**ports),
            capture_output=True,
            timeout=START_TIMEOUT_S + 60,
            check=False,
        )
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace")[-3000:]
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}): {tail}")

    def start(self) -> None:
        """Start the broker and both Orthancs through the service scripts."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._script(
            "kafka.sh",
            "start",
            KAFKA_PORT=self.ports["kafka"],
            KAFKA_CONTROLLER_PORT=self.ports["kafka_controller"],
        )
        for name in ("source", "dest"):
            self._script(
                "orthanc.sh",
                "start",
                name,
                ORTHANC_HTTP_PORT=self.ports[name + "_http"],
                ORTHANC_DICOM_PORT=self.ports[name + "_dicom"],
            )
        self.kafka.capture()
        for proc in self.orthancs.values():
            proc.capture()

    def stop(self) -> None:
        """Stop everything (the scripts' own stop, then any relaunched process left)."""
        errors = []
        for args in (("kafka.sh", "stop"), ("orthanc.sh", "stop-all")):
            try:
                self._script(*args)
            except (AssertionError, subprocess.TimeoutExpired) as exc:
                errors.append(str(exc))
        for proc in (self.kafka, *self.orthancs.values()):
            proc.reap()
        if errors:
            raise AssertionError("; ".join(errors))

    def restart_kafka(self, sig: signal.Signals, down_s: float) -> None:
        """Stop the broker with ``sig``, keep it down ``down_s`` seconds, start it again."""
        self.kafka.down(sig)
        time.sleep(down_s)  # the outage itself (chaos), not a synchronisation
        self.kafka.up()
        self.wait_kafka()

    def wait_kafka(self) -> None:
        """Poll the broker with a real metadata request until it answers (deadline)."""
        end = time.monotonic() + START_TIMEOUT_S
        probe = [str(PYTHON), str(SCRIPTS / "kafka_probe.py"), self.bootstrap, "5"]
        while subprocess.run(probe, capture_output=True, check=False).returncode != 0:
            if self.kafka.child is not None and self.kafka.child.poll() is not None:
                raise AssertionError(f"private kafka exited ({self.kafka.child.returncode})")
            if time.monotonic() > end:
                raise AssertionError("private kafka did not answer after its restart")
            time.sleep(0.5)

    def orthanc_down(self, name: str) -> None:
        """Stop one Orthanc (its storage is kept)."""
        self.orthancs[name].down(signal.SIGTERM)

    def orthanc_up(self, name: str) -> None:
        """Start one Orthanc again with its storage, and poll until it answers."""
        self.orthancs[name].up()
        end = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                httpx.get(f"{self.orthanc_url(name)}/system", timeout=2).raise_for_status()
                return
            except httpx.HTTPError:
                if time.monotonic() > end:
                    raise AssertionError(f"private orthanc {name} did not come back") from None
                time.sleep(0.1)
