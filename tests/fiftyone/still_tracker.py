"""The deterministic test tracker as a function file, for runs in child processes."""

from tests.fakes import StillTracker


def create() -> StillTracker:
    return StillTracker()
