"""The test session's FiftyOne database is its own: a user's running FiftyOne is left untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

fo = pytest.importorskip("fiftyone")

# A user's FiftyOne: its own database folder, no URI, so FiftyOne starts (or joins) its
# multi-client database service, exactly as `fiftyone app launch` does on a user's machine.
USER_PROCESS = textwrap.dedent(
    """
    import json, sys
    import fiftyone as fo
    name = sys.argv[1]
    ds = fo.Dataset(name)
    ds.persistent = True
    print("@@", json.dumps({"uri": fo.config.database_uri}), flush=True)
    try:
        for line in sys.stdin:  # each line: list the datasets this process sees
            print("@@", json.dumps(sorted(fo.list_datasets())), flush=True)
    finally:
        fo.delete_dataset(name)
    """
)


# Unique, and deleted again by the process: should a developer's own FiftyOne service be running,
# this process joins it (that is FiftyOne's behaviour this test is about) and must leave no trace;
# without FIFTYONE_DATABASE_ADMIN it never migrates that database either.
USERS_DATASET = f"aa-isolation-users-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def users_fiftyone(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("FIFTYONE_DATABASE_URI", "FIFTYONE_DATABASE_ADMIN")}
    env["FIFTYONE_DATABASE_DIR"] = str(tmp_path / "users-db")
    proc = subprocess.Popen(
        [sys.executable, "-c", USER_PROCESS, USERS_DATASET],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert _answer(proc) is not None, "the user's FiftyOne process did not start"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


def _answer(proc):
    """The process's next answer (lines starting with @@; FiftyOne prints its own lines too)."""
    for line in proc.stdout:
        if line.startswith("@@ "):
            return json.loads(line[3:])
    return None


def _list(proc) -> list[str]:
    proc.stdin.write("list\n")
    proc.stdin.flush()
    return _answer(proc)


def test_session_uses_its_private_database():
    uri = os.environ.get("FIFTYONE_DATABASE_URI", "")
    assert uri.startswith("mongodb://127.0.0.1:"), "tests/conftest.py did not start the session's mongod"
    assert fo.config.database_uri == uri


def test_a_running_user_database_is_left_untouched(users_fiftyone, dataset_name):
    assert USERS_DATASET in _list(users_fiftyone)
    assert USERS_DATASET not in fo.list_datasets()  # we do not see theirs

    ours = fo.Dataset(dataset_name)
    ours.persistent = True
    try:
        assert dataset_name in fo.list_datasets()
        theirs = _list(users_fiftyone)
        assert dataset_name not in theirs  # they do not see ours
        assert USERS_DATASET in theirs  # theirs is still there
    finally:
        fo.delete_dataset(dataset_name)
