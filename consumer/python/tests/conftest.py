"""Fixtures: a real ``cairnd`` on a free loopback port and real ``celery worker`` processes.

``CAIRND_BIN`` names the server binary (default: the release build under ``target-celery``,
then ``target/release``, then ``target/debug``). Every wait is on an event (a line printed by a
process) or polls a condition against a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
VENV_BIN = Path(sys.executable).parent


def cairnd_bin() -> str:
    env = os.environ.get("CAIRND_BIN")
    if env:
        return env
    for sub in ("target-celery/release", "target/release", "target/debug"):
        p = REPO / sub / "cairnd"
        if p.exists():
            return str(p)
    pytest.skip("no cairnd binary: build it and set CAIRND_BIN")


class Proc:
    """A child process whose output lines are collected by a thread, so tests wait on lines."""

    def __init__(self, args, env=None, cwd=None, name="proc"):
        self.name = name
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.p = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.p.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    m = rx.search(line)
                    if m:
                        return m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"{self.name}: no line matching {pattern!r} within {timeout}s; output:\n" + self.output()
                    )
                self._cond.wait(min(left, 0.5))

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines[-80:])

    def kill(self, sig=signal.SIGKILL):
        """Signals the whole process group (a prefork worker and its pool children)."""
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass
        self.p.wait(timeout=60)

    def stop(self, timeout=30.0):
        """SIGTERM to the main process only (a Celery warm shutdown stops its own pool), then
        SIGKILL to whatever is left of the group."""
        if self.p.poll() is None:
            try:
                self.p.send_signal(signal.SIGTERM)
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.p.wait(timeout=60)


class Cairnd:
    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.port = 0
        self.proc: Proc | None = None

    def start(self):
        self.proc = Proc(
            [cairnd_bin(), "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir],
            name="cairnd",
        )
        m = self.proc.wait_for(r"cairnd listening on (\S+)", timeout=60)
        self.port = int(m.group(1).rsplit(":", 1)[1])
        return self

    @property
    def url(self) -> str:
        return f"cairn://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self):
        self.proc.kill(signal.SIGKILL)

    def stop(self):
        if self.proc:
            self.proc.stop()


@pytest.fixture(scope="session")
def cairnd(tmp_path_factory):
    server = Cairnd(str(tmp_path_factory.mktemp("cairn-data"))).start()
    yield server
    server.stop()


@pytest.fixture
def own_cairnd(tmp_path):
    """A server of the test's own (the test may kill and restart it)."""
    server = Cairnd(str(tmp_path / "data")).start()
    yield server
    server.stop()


class Workers:
    """Starts ``celery worker`` processes (prefork, -c 2) on the test app."""

    def __init__(self, broker_url: str, base: Path, **env):
        self.broker_url = broker_url
        self.base = base
        self.results = base / "results"
        self.marks = base / "marks"
        self.results.mkdir(parents=True, exist_ok=True)
        self.marks.mkdir(parents=True, exist_ok=True)
        self.extra_env = {k: str(v) for k, v in env.items()}
        self.procs: list[Proc] = []
        self._n = 0

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            CAIRN_BROKER_URL=self.broker_url,
            CAIRN_RESULTS_DIR=str(self.results),
            CAIRN_MARKS_DIR=str(self.marks),
            PYTHONPATH=str(HERE) + os.pathsep + env.get("PYTHONPATH", ""),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def start(self, concurrency: int = 2, ready: bool = True, queues: str | None = None) -> Proc:
        self._n += 1
        name = f"w{self._n}-{os.getpid()}@%h"
        args = [str(VENV_BIN / "celery"), "-A", "celery_app", "worker", "-P", "prefork",
                "-c", str(concurrency), "-n", name, "--loglevel=" + os.environ.get("CELERY_LOGLEVEL", "INFO") + ""]
        if queues:
            args += ["-Q", queues]
        proc = Proc(args, env=self.env(), cwd=str(HERE), name=f"worker{self._n}")
        self.procs.append(proc)
        if ready:
            proc.wait_for(r"ready\.", timeout=60)
        return proc

    def celery(self, *args, timeout=60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(VENV_BIN / "celery"), "-A", "celery_app", *args],
            env=self.env(), cwd=str(HERE), capture_output=True, text=True, timeout=timeout,
        )

    def stop_all(self):
        for p in self.procs:
            p.stop()


@pytest.fixture
def workdir():
    d = Path(tempfile.mkdtemp(prefix="cairn-celery-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def wait_until(cond, timeout: float, what: str, interval: float = 0.05):
    """Polls ``cond`` until it is truthy or the deadline passes (then fails with ``what``)."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
