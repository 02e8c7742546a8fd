"""A private MongoDB for the test session, so FiftyOne never joins another process's database.

FiftyOne's database service is multi-client: a new process registers with any FiftyOne database
service already running on the machine, whatever ``FIFTYONE_DATABASE_DIR`` says. The only way to
be isolated is to run ``mongod`` ourselves (the binary FiftyOne ships) on a free loopback port
with a temporary data folder, and point FiftyOne at it with ``FIFTYONE_DATABASE_URI``. Every
child process (the App, delegated workers, CLI runs) inherits the variable.
"""

from __future__ import annotations

import atexit
import importlib.util
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_mongod() -> Path | None:
    """The ``mongod`` shipped with FiftyOne (``fiftyone/db/bin``), without importing FiftyOne."""
    spec = importlib.util.find_spec("fiftyone")
    if spec is None or not spec.submodule_search_locations:
        return None
    exe = Path(next(iter(spec.submodule_search_locations))) / "db" / "bin" / "mongod"
    return exe if exe.is_file() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mongod:
    """One ``mongod`` on 127.0.0.1 with its own data folder; ``stop()`` removes both."""

    def __init__(self, exe: Path, *, prefix: str = "autoannotate-mongo-", timeout: float = 60.0):
        self.folder = Path(tempfile.mkdtemp(prefix=prefix))
        self.port = free_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}"
        (self.folder / "db").mkdir()
        self.log = self.folder / "mongod.log"
        cmd = [str(exe), "--dbpath", str(self.folder / "db"), "--port", str(self.port)]
        cmd += ["--bind_ip", "127.0.0.1", "--nounixsocket", "--logpath", str(self.log)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
                raise RuntimeError(f"mongod exited with {self.proc.returncode} before listening:\n{tail}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"mongod did not listen on port {self.port} within {timeout:.0f} s") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_session_mongod() -> Mongod | None:
    """Start the session's private database, stopped when the test process exits; None without FiftyOne."""
    exe = find_mongod()
    if exe is None:
        return None
    mongod = Mongod(exe)
    atexit.register(mongod.stop)
    return mongod
