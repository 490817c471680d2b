"""llmcourse.data: offline lookup, and downloads tested against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import threading
from pathlib import Path

import pytest

from llmcourse import data

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No LLMCOURSE_DATA_DIR, and an empty cache folder of our own."""
    monkeypatch.delenv("LLMCOURSE_DATA_DIR", raising=False)
    monkeypatch.setenv("LLMCOURSE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


class _Server:
    """A tiny HTTP server on 127.0.0.1 that serves fixed bodies or errors, and counts requests."""

    def __init__(self):
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the http.server API)
                outer.requests.append(self.path)
                status, body = outer.routes.get(self.path, (404, b"not found"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _point_at(monkeypatch, name: str, url: str, body: bytes | None = None, sha: str | None = None):
    ds = data.DATASETS[name]
    fields = dict(ds.__dict__, url=url)
    if body is not None:
        fields.update(size=len(body), sha256=sha or hashlib.sha256(body).hexdigest())
    monkeypatch.setitem(data.DATASETS, name, data.Dataset(**fields))


def test_registry_matches_shared_readme():
    readme = (SHARED / "README.md").read_text()
    for ds in data.DATASETS.values():
        assert ds.sha256 in readme and ds.url in readme and str(ds.size) in readme


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside the checkout")
def test_data_dir_is_used_and_files_verify(monkeypatch):
    monkeypatch.setenv("LLMCOURSE_DATA_DIR", str(SHARED))
    for name, ds in data.DATASETS.items():
        path = data.data_path(name)
        assert path == SHARED / ds.filename
        assert path.stat().st_size == ds.size
        assert hashlib.sha256(path.read_bytes()).hexdigest() == ds.sha256
    text = data.load_text("tinyshakespeare")
    assert text.startswith("First Citizen:")
    assert len(data.load_text("names").split()) == 32033  # (the data README says 32,032)


def test_unknown_name_lists_known_ones():
    with pytest.raises(KeyError, match="unknown data set 'shakespeare'.*'names', 'tinyshakespeare'"):
        data.data_path("shakespeare")
    with pytest.raises(TypeError, match="must be a string"):
        data.data_path(3)


def test_data_dir_without_the_file_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_DATA_DIR", str(tmp_path))
    with pytest.raises(data.DataError, match="LLMCOURSE_DATA_DIR.*no file 'names.txt'"):
        data.data_path("names")


def test_download_good_file_is_checked_and_cached(isolated, server, monkeypatch):
    body = b"emma\nolivia\nava\n"
    server.routes["/names.txt"] = (200, body)
    _point_at(monkeypatch, "names", server.url + "/names.txt", body)
    path = data.data_path("names", progress=False)
    assert path == isolated / "names.txt"
    assert path.read_bytes() == body
    assert data.load_text("names") == body.decode()  # second call: from the cache
    assert server.requests == ["/names.txt"]
    assert sorted(p.name for p in isolated.iterdir()) == ["names.txt"]  # no temporary files left


def test_download_shows_a_progress_bar(isolated, server, monkeypatch, capsys):
    body = b"x" * 5000
    server.routes["/t.txt"] = (200, body)
    _point_at(monkeypatch, "tinyshakespeare", server.url + "/t.txt", body)
    data.data_path("tinyshakespeare", progress=True)
    assert "downloading tinyshakespeare.txt" in capsys.readouterr().err


def test_wrong_checksum_is_kept_aside_and_not_used(isolated, server, monkeypatch):
    body = b"this is not the file you are looking for"
    server.routes["/names.txt"] = (200, body)
    _point_at(monkeypatch, "names", server.url + "/names.txt", body, sha="0" * 64)
    with pytest.raises(data.DataError, match=r"SHA-256 .* expected 0{64}.*kept aside"):
        data.data_path("names", progress=False)
    assert not (isolated / "names.txt").exists()
    assert (isolated / "names.txt.corrupt").read_bytes() == body
    # the corrupt file is never picked up later
    with pytest.raises(data.DataError):
        data.data_path("names", progress=False)


def test_server_error_names_the_address_and_the_fix(isolated, server, monkeypatch):
    server.routes["/names.txt"] = (500, b"oops")
    _point_at(monkeypatch, "names", server.url + "/names.txt")
    with pytest.raises(data.DataError) as err:
        data.data_path("names", progress=False)
    assert "HTTP 500" in str(err.value) and server.url in str(err.value)
    assert "LLMCOURSE_DATA_DIR" in str(err.value)
    assert list(isolated.iterdir()) == []  # nothing partial in the cache


def test_connection_refused_says_offline(isolated, monkeypatch):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/names.txt"
    _point_at(monkeypatch, "names", url)
    with pytest.raises(data.DataError, match="are you offline.*LLMCOURSE_DATA_DIR") as err:
        data.data_path("names", progress=False)
    assert url in str(err.value)
    assert not any(isolated.glob("*")) if isolated.exists() else True


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("LLMCOURSE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data.cache_dir() == tmp_path / "llmcourse"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.cache_dir() == Path(os.path.expanduser("~")) / ".cache" / "llmcourse"
