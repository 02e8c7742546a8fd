"""A Label Studio project split across workers, against the real server: three
``autoannotate label-studio annotate --shard I/3`` processes run at once and leave exactly one
prediction per task; a shard re-run adds nothing; ``--workers 3`` does the same in one command
with one combined report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from autoannotate.errors import BadParameterError
from autoannotate.sharding import parse_shard, select_shard, shard_of
from tests.procs import kill_tree

REPO = Path(__file__).resolve().parents[2]
SLOW_FAKE = str(REPO / "tests" / "fiftyone" / "slow_fake.py")
CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="cat"/>
  </RectangleLabels>
</View>"""
N_TASKS = 15


def make_project(ls, title):
    rng = np.random.default_rng(3)
    images = {f"img{i}": PIL.Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)) for i in range(N_TASKS)}
    client, project, tasks = ls.project_with_images(title, CONFIG, images)
    return client, project, list(tasks.values())


def annotate_cmd(ls, project_id, *extra):
    return [
        sys.executable,
        "-m",
        "autoannotate.cli",
        "label-studio",
        "annotate",
        "--url",
        ls.url,
        "--api-key",
        ls.token,
        "--project",
        str(project_id),
        "-f",
        SLOW_FAKE,
        "-p",
        "delay=float:0.05",
        "--write-every",
        "2",
        "--no-progress",
        *extra,
    ]


def predictions_per_task(client, tasks):
    return {t.id: len(list(client.predictions.list(task=t.id))) for t in tasks}


def test_parse_shard():
    assert parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "-1/3", "1", "a/b", "0/0"):
        with pytest.raises(BadParameterError):
            parse_shard(bad)


def test_annotate_project_checks_its_shard_like_parse_shard():
    """One range check (autoannotate.sharding.check_shard) for --shard and shard=."""
    from autoannotate.label_studio.project import annotate_project
    from autoannotate.sharding import check_shard

    assert check_shard(0, 1) == (0, 1)
    for index, count in ((3, 3), (-1, 3), (True, 3), (0, 0), (1.0, 3)):
        with pytest.raises(BadParameterError):
            check_shard(index, count)
        with pytest.raises(BadParameterError):  # refused before any request to Label Studio
            annotate_project("http://127.0.0.1:9", "token", 1, lambda images: [], shard=(index, count))


def test_workers_check_label_studio_once_before_starting_processes(capsys):
    """An unreachable URL: one line, exit status 2, as for --shard; no worker is started."""
    from autoannotate.cli import main

    args = ["label-studio", "annotate", "--url", "http://127.0.0.1:9", "--api-key", "x", "--project", "3"]
    assert main([*args, "--function", "yolox", "--workers", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "unreachable" in err and "worker" not in err


def test_three_shard_processes_predict_every_task_once(label_studio):
    client, project, tasks = make_project(label_studio, "three shards")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "shared")]))
    procs = [
        subprocess.Popen(
            annotate_cmd(label_studio, project.id, "--shard", f"{i}/3"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(3)
    ]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            kill_tree(p)
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert predictions_per_task(client, tasks) == {t.id: 1 for t in tasks}
    # each process labelled its own shard (the split is the same hash as everywhere)
    for i, (out, _) in enumerate(outs):
        mine = len(select_shard([(t.id,) for t in tasks], i, 3))
        assert f"tasks processed:    {mine}\n" in out and f"shard: {i}/3" in out, out
    # a shard run again has nothing to do and adds nothing
    again = subprocess.run(
        annotate_cmd(label_studio, project.id, "--shard", "1/3"), capture_output=True, text=True, env=env, timeout=300
    )
    assert again.returncode == 0, again.stderr
    assert predictions_per_task(client, tasks) == {t.id: 1 for t in tasks}
    assert {shard_of(t.id, 3) for t in tasks} == {0, 1, 2}


def test_workers_option_runs_local_processes_with_one_report(label_studio):
    from autoannotate.label_studio.project import annotate_project_workers

    client, project, tasks = make_project(label_studio, "three workers")
    report = annotate_project_workers(
        label_studio.url,
        label_studio.token,
        project.id,
        SLOW_FAKE,
        {"delay": 0.05},
        workers=3,
        write_every=2,
    )
    assert report.images_processed == N_TASKS and report.success
    assert report.extra["predictions_uploaded"] == N_TASKS
    # each worker's own counts: the tasks its shard holds, all processed, one prediction each
    counts = report.extra["shard_counts"]
    assert sorted(counts) == ["0/3", "1/3", "2/3"]
    for i in range(3):
        mine = len(select_shard([(t.id,) for t in tasks], i, 3))
        assert counts[f"{i}/3"] == {"tasks_processed": mine, "tasks_skipped": 0, "predictions_uploaded": mine}
    assert predictions_per_task(client, tasks) == {t.id: 1 for t in tasks}
    # the command line: the same, one combined report; nothing left to do
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "shared")]))
    cli = subprocess.run(
        annotate_cmd(label_studio, project.id, "--workers", "3"), capture_output=True, text=True, env=env, timeout=300
    )
    assert cli.returncode == 0, cli.stderr
    assert f"tasks skipped:      {N_TASKS}\n" in cli.stdout and "workers: 3" in cli.stdout, cli.stdout
    assert predictions_per_task(client, tasks) == {t.id: 1 for t in tasks}
