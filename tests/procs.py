"""Start and stop helper processes of the tests without leaving anything behind."""

from __future__ import annotations

import subprocess

import psutil


def kill_tree(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Stop ``proc`` and every process it started (some servers detach into their own session)."""
    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for p in family:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(family, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_for_line(proc: subprocess.Popen, wanted: str, limit: int = 200) -> None:
    """Read ``proc``'s stdout until a line equal to ``wanted`` (other lines are logs)."""
    for _ in range(limit):
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"process exited before printing {wanted!r}")
        if line.strip() == wanted:
            return
    raise RuntimeError(f"{wanted!r} not printed")
