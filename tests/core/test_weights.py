"""Weights: local folder first, cache, download with sha256 check, clear offline errors."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest

from autoannotate import WeightsNotFoundError
from autoannotate import weights as w


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    local, cache = tmp_path / "models", tmp_path / "cache"
    local.mkdir()
    monkeypatch.setenv(w.MODELS_ENV, str(local))
    monkeypatch.setenv(w.CACHE_ENV, str(cache))
    monkeypatch.delenv(w.OFFLINE_ENV, raising=False)
    return local, cache


def test_local_folder_is_searched_first(dirs):
    local, _ = dirs
    (local / "yolox_nano.onnx").write_bytes(b"x")
    assert w.resolve("yolox_nano") == local / "yolox_nano.onnx"
    assert w.resolve("yolox_nano.onnx") == local / "yolox_nano.onnx"


def test_offline_error_names_file_url_and_remedy(dirs, monkeypatch):
    monkeypatch.setenv(w.OFFLINE_ENV, "1")
    with pytest.raises(WeightsNotFoundError) as e:
        w.resolve("sam_vit_b")
    text = str(e.value)
    assert "sam_vit_b_01ec64.pth" in text
    assert "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth" in text
    assert "AUTOANNOTATE_MODELS" in text and str(dirs[0]) in text


def test_unknown_names_and_missing_paths(dirs):
    with pytest.raises(WeightsNotFoundError, match="not a known model"):
        w.resolve("nonexistent_model")
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        w.resolve("/no/such/file.onnx")


class _Server:
    def __init__(self, payload: bytes):
        payload_ = payload

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload_)))
                self.end_headers()
                self.wfile.write(payload_)

            def log_message(self, *a):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/weights.bin"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def test_download_into_cache_checks_sha256(dirs):
    _, cache = dirs
    payload = b"weights" * 1000
    server = _Server(payload)
    try:
        good = w.WeightsEntry("dl.bin", server.url, hashlib.sha256(payload).hexdigest())
        path = w.resolve(good)
        assert path == cache / "dl.bin" and path.read_bytes() == payload
        assert w.resolve(good) == path  # second time from the cache
        bad = w.WeightsEntry("bad.bin", server.url, "0" * 64)
        with pytest.raises(WeightsNotFoundError, match="sha256"):
            w.resolve(bad)
        assert not (cache / "bad.bin").exists() and not list(cache.glob("*.part"))
    finally:
        server.close()


def test_failed_download_is_a_clear_error(dirs):
    entry = w.WeightsEntry("gone.bin", "http://127.0.0.1:9/gone.bin")
    with pytest.raises(WeightsNotFoundError, match="download failed.*gone.bin"):
        w.resolve(entry, timeout=2)
