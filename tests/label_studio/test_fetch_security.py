"""Image fetching safety: SSRF, redirects, token leakage, path traversal, content and size limits.

Every server here listens on loopback; to play "another public host" the tests allow-list the
loopback address explicitly and check what the request carried.
"""

from __future__ import annotations

import base64
import http.server
import io
import socket
import threading
import time

import PIL.Image
import pytest

from autoannotate.label_studio import FetchError, FetchPolicy, ImageFetcher


def png_bytes() -> bytes:
    buf = io.BytesIO()
    PIL.Image.new("RGB", (4, 3), "red").save(buf, "PNG")
    return buf.getvalue()


class Server:
    """A tiny loopback HTTP server; ``routes`` map paths to handlers; requests are recorded."""

    def __init__(self, routes):
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.requests.append((self.path, dict(self.headers)))
                routes.get(self.path.split("?")[0], routes.get("*"))(self)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def send(status=200, body=b"", ctype="image/png", headers=None):
    def handler(h):
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    return handler


@pytest.fixture
def server():
    servers = []

    def make(routes):
        s = Server(routes)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def test_loopback_and_private_hosts_are_refused(server):
    s = server({"*": send(body=png_bytes())})
    f = ImageFetcher(FetchPolicy())
    for url in (
        f"{s.url}/a.png",
        f"http://localhost:{s.port}/a.png",
        "http://10.1.2.3/a.png",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:80/a.png",
        "http://0.0.0.0/a.png",
    ):
        with pytest.raises(FetchError, match="internal address|resolves"):
            f.fetch(url)
    assert s.requests == []  # nothing was even sent


def test_dns_names_resolving_inside_are_refused(monkeypatch):
    real = socket.getaddrinfo
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, *a, **k: real("127.0.0.1", *a, **k) if host == "innocent.example.com" else real(host, *a, **k),
    )
    with pytest.raises(FetchError, match="innocent.example.com.*internal address 127.0.0.1"):
        ImageFetcher(FetchPolicy()).fetch("http://innocent.example.com/cat.png")


def test_allow_listed_hosts_are_fetched(server):
    s = server({"*": send(body=png_bytes())})
    f = ImageFetcher(FetchPolicy(allow_hosts=("127.0.0.1",)))
    assert f.fetch(f"{s.url}/a.png") == png_bytes()
    f = ImageFetcher(FetchPolicy(allow_hosts=("127.0.0.0/8",)))
    assert f.fetch(f"{s.url}/a.png") == png_bytes()


def test_redirects_to_private_addresses_are_refused(server):
    inner = server({"*": send(body=png_bytes())})
    outer = server({"*": send(302, headers={"Location": f"http://10.0.0.7:{inner.port}/secret.png"})})
    f = ImageFetcher(FetchPolicy(allow_hosts=("127.0.0.1",)))
    with pytest.raises(FetchError, match="10.0.0.7"):
        f.fetch(f"{outer.url}/a.png")


def test_token_goes_only_to_label_studio(server):
    token = "legacy-token-123"
    other = server({"*": send(body=png_bytes())})
    ls = server(
        {
            "/data/upload/1/a.png": send(302, headers={"Location": f"http://localhost:{other.port}/a.png"}),
            "*": send(body=png_bytes()),
        }
    )
    f = ImageFetcher(FetchPolicy(allow_hosts=("localhost",)), label_studio_url=ls.url, api_key=token)
    assert f.fetch("/data/upload/1/b.png") == png_bytes()
    assert ls.requests[-1][1].get("Authorization") == f"Token {token}"
    assert f.fetch("/data/upload/1/a.png") == png_bytes()  # redirected to another origin
    assert other.requests and all("Authorization" not in h for _, h in other.requests)
    assert f.fetch(f"http://localhost:{other.port}/direct.png") == png_bytes()
    assert all(token not in str(h) for _, h in other.requests)


def test_html_is_not_an_image(server):
    s = server({"*": send(body=b"<html>login</html>", ctype="text/html")})
    with pytest.raises(FetchError, match="returned text/html, not an image"):
        ImageFetcher(FetchPolicy(allow_hosts=("127.0.0.1",))).fetch(f"{s.url}/a.png")


def test_size_limit_declared_and_streamed(server):
    def endless(h):
        h.send_response(200)
        h.send_header("Content-Type", "image/png")
        h.end_headers()
        try:
            for _ in range(10_000):
                h.wfile.write(b"\0" * 65536)
        except OSError:
            pass

    s = server({"/declared": send(body=b"\0" * 5000), "/streamed": endless})
    f = ImageFetcher(FetchPolicy(allow_hosts=("127.0.0.1",), max_bytes=4096))
    with pytest.raises(FetchError, match="larger than the limit"):
        f.fetch(f"{s.url}/declared")
    with pytest.raises(FetchError, match="larger than the limit"):
        ImageFetcher(FetchPolicy(allow_hosts=("127.0.0.1",), max_bytes=1 << 20)).fetch(f"{s.url}/streamed")


def test_hanging_urls_time_out(server):
    def hang(h):
        time.sleep(5)

    s = server({"*": hang})
    t = time.monotonic()
    with pytest.raises(FetchError, match="timed out|took longer"):
        ImageFetcher(FetchPolicy(allow_hosts=("127.0.0.1",), timeout=1.0)).fetch(f"{s.url}/slow.png")
    assert time.monotonic() - t < 4


def test_local_files_are_confined_to_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "imgs").mkdir(parents=True)
    (root / "imgs" / "ok.png").write_bytes(png_bytes())
    (tmp_path / "secret.txt").write_text("top secret")
    (root / "imgs" / "link.png").symlink_to(tmp_path / "secret.txt")
    f = ImageFetcher(FetchPolicy(local_root=root))
    assert f.fetch("/data/local-files/?d=imgs/ok.png") == png_bytes()
    for ref in (
        "/data/local-files/?d=../secret.txt",
        "/data/local-files/?d=imgs/../../secret.txt",
        "/data/local-files/?d=imgs/link.png",
        f"file://{tmp_path}/secret.txt",
        str(tmp_path / "secret.txt"),
    ):
        with pytest.raises(FetchError, match="outside the local files root"):
            f.fetch(ref)
    with pytest.raises(FetchError, match="local files are not served"):
        ImageFetcher(FetchPolicy()).fetch("/etc/passwd")


def test_odd_references():
    f = ImageFetcher(FetchPolicy())
    uri = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    assert f.fetch(uri) == png_bytes()
    for ref, msg in [
        ("", "no image reference"),
        ("data:text/html;base64,PGI+", "base64 image or video data"),
        ("s3://bucket/key.png", "cloud storage"),
        ("ftp://host/x.png", "unsupported"),
        ("/data/upload/1/x.png", "no Label Studio URL"),
    ]:
        with pytest.raises(FetchError, match=msg):
            f.fetch(ref)
