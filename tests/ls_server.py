"""A real Label Studio server (``label-studio`` from PyPI, in .venv-ls), started once per test
session on localhost with its own data folder, plus our backend served by uvicorn."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.procs import kill_tree

USER, PASSWORD = "tests@autoannotate.local", "autoannotate-test-pass"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def label_studio_binary() -> str:
    repo = Path(__file__).resolve().parents[1]
    exe = os.environ.get("LABEL_STUDIO_BIN") or str(repo / ".venv-ls" / "bin" / "label-studio")
    if not Path(exe).exists():
        exe = shutil.which("label-studio") or ""
    if not exe:
        pytest.skip("the label-studio server is not installed (make test installs it into .venv-ls)")
    return exe


@dataclass
class LabelStudioServer:
    url: str
    token: str
    data_dir: Path

    def client(self):
        from label_studio_sdk import LabelStudio

        return LabelStudio(base_url=self.url, api_key=self.token, timeout=120)

    def http(self) -> httpx.Client:
        """Raw API calls with a fresh access token (for endpoints the SDK does not cover)."""
        access = httpx.post(f"{self.url}/api/token/refresh/", json={"refresh": self.token}, timeout=30).json()["access"]
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {access}"}, timeout=120)

    def project_with_images(self, title: str, config: str, images: dict, fmt: str = "PNG", **save: object):
        """A new project with one task per image (``{name: PIL image}``, uploaded as ``name.<fmt>``):
        ``(client, project, {name: task})``."""
        client = self.client()
        project = client.projects.create(title=title, label_config=config)
        ext, mime = {"PNG": ("png", "image/png"), "JPEG": ("jpg", "image/jpeg")}[fmt]
        files = []
        for name, im in images.items():
            buf = io.BytesIO()
            im.save(buf, fmt, **save)
            files.append((f"file_{name}", (f"{name}.{ext}", buf.getvalue(), mime)))
        with self.http() as http:
            r = http.post(f"/api/projects/{project.id}/import", files=files)
            assert r.status_code == 201, r.text
        # Label Studio stores an upload as "<prefix>-<name>.<ext>"
        tasks = {t.data["image"].rsplit("-", 1)[-1].rsplit(".", 1)[0]: t for t in client.tasks.list(project=project.id)}
        assert set(tasks) == set(images), sorted(tasks)
        return client, project, tasks

    def video_task(self, title: str, config: str, video: Path):
        """A new project with one task, the video file ``video``: ``(client, project, task)``."""
        client = self.client()
        project = client.projects.create(title=title, label_config=config)
        with self.http() as http:
            files = [("file_clip", (video.name, video.read_bytes(), "video/mp4"))]
            r = http.post(f"/api/projects/{project.id}/import", files=files)
            assert r.status_code == 201, r.text
        (task,) = list(client.tasks.list(project=project.id))
        return client, project, task

    def log_in(self, page) -> None:
        """Log the test user in on a Playwright ``page``, as a person does on the login form."""
        page.goto(f"{self.url}/user/login/")
        page.fill("input[name=email]", USER)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")

    def retrieve_predictions(self, project_id: int) -> None:
        """The Data Manager's "Retrieve predictions" action on every task of the project."""
        with self.http() as http:
            r = http.post(
                "/api/dm/actions",
                params={"id": "retrieve_tasks_predictions", "project": project_id},
                json={"selectedItems": {"all": True, "excluded": []}},
            )
            assert r.status_code == 200, r.text


def drawn_video_box(box, *, frame: int, size=(320, 240), label: str = "Cat") -> dict:
    """The region Label Studio's video editor sends for a box ``(x1, y1, x2, y2)`` in pixels of a
    ``size`` video drawn on 1-based ``frame`` (control ``box`` on ``video``)."""
    x1, y1, x2, y2 = box
    w, h = size
    keyframe = {"frame": frame, "enabled": True, "x": x1 * 100 / w, "y": y1 * 100 / h}
    keyframe.update(width=(x2 - x1) * 100 / w, height=(y2 - y1) * 100 / h)
    value = {"labels": [label], "sequence": [keyframe]}
    return {"id": "abc", "type": "videorectangle", "from_name": "box", "to_name": "video", "value": value}


def personal_access_token(url: str) -> str:
    """The supported way in Label Studio 1.23: log in with a form session, then POST /api/token/."""
    with httpx.Client(base_url=url, timeout=60) as c:
        c.get("/user/login/")
        c.post(
            "/user/login/",
            data={"email": USER, "password": PASSWORD, "csrfmiddlewaretoken": c.cookies.get("csrftoken")},
            headers={"Referer": f"{url}/user/login/"},
        )
        r = c.post("/api/token/", headers={"X-CSRFToken": c.cookies.get("csrftoken"), "Referer": f"{url}/"})
        assert r.status_code == 201, f"could not create an API token: {r.status_code} {r.text[:300]}"
        return r.json()["token"]


@pytest.fixture(scope="session")
def label_studio():
    exe = label_studio_binary()
    data_dir = Path(tempfile.mkdtemp(prefix="autoannotate-ls-"))
    port = free_port()
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "DJANGO_LOG_LEVEL": "WARNING",
        "LOG_LEVEL": "WARNING",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "false",
        # the backend under test listens on loopback, which Label Studio refuses by default
        "SSRF_PROTECTION_ENABLED": "false",
        "ML_BLOCK_LOCAL_IP": "false",
    }
    log = open(data_dir / "server.log", "w")
    proc = subprocess.Popen(
        [
            exe,
            "start",
            "--no-browser",
            "--internal-host",
            "127.0.0.1",
            "--port",
            str(port),
            "--username",
            USER,
            "--password",
            PASSWORD,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"label-studio exited: {(data_dir / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("label-studio did not answer /health within 300 s")
            time.sleep(1)
        yield LabelStudioServer(url, personal_access_token(url), data_dir)
    finally:
        kill_tree(proc)
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


@dataclass
class RunningBackend:
    url: str
    backend: object


def start_backend_server(backend, settings=None):
    """Serve ``backend`` with uvicorn on a free loopback port in this process; returns the
    :class:`RunningBackend` and a function that stops the server."""
    import uvicorn

    from autoannotate.label_studio.app import Settings, create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings or Settings(), backend=backend), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(400):
        if server.started:
            break
        time.sleep(0.05)

    def stop():
        server.should_exit = True
        thread.join(timeout=10)

    return RunningBackend(f"http://127.0.0.1:{port}", backend), stop


def _backend_servers():
    """Yields a ``start(backend, settings=None) -> RunningBackend``; stops every server after."""
    stops = []

    def start(backend, settings=None) -> RunningBackend:
        running, stop = start_backend_server(backend, settings)
        stops.append(stop)
        return running

    yield start
    for stop in stops:
        stop()


serve_backend = pytest.fixture(_backend_servers, name="serve_backend")
serve_backend_module = pytest.fixture(_backend_servers, scope="module", name="serve_backend_module")
