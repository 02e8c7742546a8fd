"""Load: N concurrent interactive clients (1, 8, 32) against the backend on loopback, each with a
bounded number of clicks over several images. Records errors, p50/p95 latency and memory, and
checks the encoding cache stays within its byte budget. Figures go to
test-artifacts/load.json (docs/reliability.md quotes them); the long variant is marked slow."""

from __future__ import annotations

import json
import threading
import time

import httpx
import psutil
import pytest

from autoannotate.functions import grabcut
from autoannotate.label_studio import Backend, EncodingCache
from tests.conftest import ARTIFACTS
from tests.label_studio.test_protocol import CONFIG, data_uri

IMAGES = [data_uri(320, 240, color=(200, 40 + 20 * i, 40)) for i in range(6)]
ENCODING_BYTES = 320 * 240 * 3  # a GrabCut encoding is the BGR image
BUDGET = 4 * ENCODING_BYTES  # fewer slots than images: the cache must evict


def click(uri, k):
    ctx = {
        "result": [
            {
                "type": "keypointlabels",
                "is_positive": True,
                "value": {"x": 40 + k % 20, "y": 45 + k % 10, "keypointlabels": ["Cat"]},
            }
        ]
    }
    return {"tasks": [{"id": k, "data": {"image": uri}}], "label_config": CONFIG, "params": {"context": ctx}}


def run_load(url: str, clients: int, requests_each: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def user(i: int) -> None:
        with httpx.Client(timeout=120) as c:
            for k in range(requests_each):
                t = time.perf_counter()
                try:
                    r = c.post(f"{url}/predict", json=click(IMAGES[(i + k) % len(IMAGES)], i * 100 + k))
                    ok = r.status_code == 200 and r.json()["results"][0]["result"]
                    err = None if ok else f"{r.status_code}: {r.text[:100]}"
                except httpx.HTTPError as e:
                    err = f"{type(e).__name__}: {e}"
                with lock:
                    latencies.append(time.perf_counter() - t)
                    if err:
                        errors.append(err)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    lat = sorted(latencies)
    return {
        "clients": clients,
        "requests": len(lat),
        "errors": len(errors),
        "first_errors": errors[:3],
        "p50_s": round(lat[len(lat) // 2], 4),
        "p95_s": round(lat[int(0.95 * (len(lat) - 1))], 4),
        "requests_per_s": round(len(lat) / wall, 1),
    }


@pytest.fixture(scope="module")
def service(serve_backend_module):
    backend = Backend(interactive=grabcut.create(iterations=2), cache=EncodingCache(max_bytes=BUDGET, ttl=600))
    return serve_backend_module(backend), backend


def _measure(service, levels, requests_each):
    running, backend = service
    proc = psutil.Process()
    rows = []
    for n in levels:
        row = run_load(running.url, n, requests_each)
        row["rss_mb"] = round(proc.memory_info().rss / 2**20, 1)
        row["cache_bytes"] = backend.cache.nbytes
        row["cache_evictions"] = backend.cache.stats.evicted
        rows.append(row)
        print(row)
        assert row["errors"] == 0, row["first_errors"]
        assert backend.cache.nbytes <= BUDGET
    return rows


def _save(name, rows):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "load.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = rows
    path.write_text(json.dumps(data, indent=2))


def test_concurrent_interactive_clients(service):
    rows = _measure(service, (1, 8, 32), requests_each=4)
    _save("default", rows)
    assert rows[-1]["cache_evictions"] > 0  # six images through four slots


@pytest.mark.slow
def test_concurrent_interactive_clients_long(service):
    _save("long", _measure(service, (1, 8, 32), requests_each=40))
