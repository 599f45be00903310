"""Reliability of zoo downloads: every failure is a clear error and leaves no partial file.

A loopback ``http.server`` (127.0.0.1, ephemeral port, daemon thread, 20 s socket timeout)
serves a tiny entry; per test it answers one file with 404, 500, a truncated body, or a
dropped connection. After each failure the cache may only hold complete, verified files.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from retdm_keras import zoo
from retdm_keras.metrics import evaluate
from retdm_keras.model import RETDM

NAME = "tiny"
WEIGHTS = "model.weights.h5"


@pytest.fixture(scope="module")
def entry(tmp_path_factory) -> Path:
    model = RETDM(2, backbone="tiny_cnn", image_size=8, embed_dim=4, label_hidden_units=4)
    scores = model.predict(np.zeros((2, 8, 8, 3), "float32"), verbose=0)
    metrics = evaluate(np.eye(2, dtype="float32"), scores)
    return zoo.write_entry(
        model, tmp_path_factory.mktemp("entry") / NAME, metrics=metrics, name=NAME
    )


@pytest.fixture
def registry(entry: Path, tmp_path: Path) -> Path:
    """A registry whose entry is not on disk any more: every file must be downloaded."""
    path = tmp_path / "zoo" / "registry.json"
    staging = Path(shutil.copytree(entry, tmp_path / "staging" / NAME))
    zoo.publish(staging, registry=path)
    shutil.rmtree(staging)
    return path


class Server:
    """Serves ``root``; ``faults[path] = (status, body_bytes_or_None, claimed_length)``."""

    def __init__(self, root: Path):
        faults = self.faults = {}

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path not in faults:
                    return super().do_GET()
                status, body, length = faults[self.path]
                self.send_response(status)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

        handler = functools.partial(Handler, directory=os.fspath(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def server(entry: Path, tmp_path: Path, monkeypatch):
    root = tmp_path / "served"
    shutil.copytree(entry, root / NAME / "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("RETDM_ZOO_OFFLINE", raising=False)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)  # a stuck download fails the test instead of hanging it
    running = Server(root)
    monkeypatch.setenv("RETDM_ZOO_URL", running.url)
    try:
        yield running, root
    finally:
        running.stop()
        socket.setdefaulttimeout(previous)


def assert_cache_holds_only_verified_files(cache: Path, registry: Path) -> list[str]:
    """Every file left in the cache entry is complete and matches the registry."""
    folder = cache / NAME / "1"
    if not folder.exists():
        return []
    files = zoo.read_registry(registry)["models"][NAME]["versions"]["1"]["files"]
    left = sorted(p.name for p in folder.iterdir())
    assert all(name in files for name in left), left  # no staging folder, no temp file
    for name in left:
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == files[name]["sha256"]
    return left


@pytest.mark.parametrize(
    "status, reason", [(404, "HTTP 404 Not Found"), (500, "HTTP 500 Internal Server Error")]
)
def test_an_http_error_names_file_url_and_status(registry, server, tmp_path, status, reason):
    running, _ = server
    running.faults[f"/{NAME}/1/{WEIGHTS}"] = (status, b"", 0)
    cache = tmp_path / "cache"
    with pytest.raises(zoo.ZooError) as info:
        zoo.load(NAME, cache_dir=cache, registry=registry)
    message = str(info.value)
    assert f"download of {WEIGHTS} failed: {reason}" in message
    assert f"{running.url}/{NAME}/1/{WEIGHTS}" in message
    assert not isinstance(info.value, zoo.ZooHashError)
    assert WEIGHTS not in assert_cache_holds_only_verified_files(cache, registry)
    # the server is fixed: the next load fetches only what is missing and works
    del running.faults[f"/{NAME}/1/{WEIGHTS}"]
    assert isinstance(zoo.load(NAME, cache_dir=cache, registry=registry), RETDM)


def test_a_truncated_file_is_a_hash_error_and_not_kept(registry, server, tmp_path):
    _, root = server
    served = root / NAME / "1" / WEIGHTS
    size = served.stat().st_size
    served.write_bytes(served.read_bytes()[: size // 2])
    cache = tmp_path / "cache"
    pattern = rf"{WEIGHTS}: sha256 does not match.*{size // 2} bytes, expected {size}.*not kept"
    with pytest.raises(zoo.ZooHashError, match=pattern):
        zoo.load(NAME, cache_dir=cache, registry=registry)
    assert WEIGHTS not in assert_cache_holds_only_verified_files(cache, registry)


def test_a_dropped_connection_is_an_error_and_not_kept(registry, server, tmp_path):
    running, root = server
    body = (root / NAME / "1" / WEIGHTS).read_bytes()
    running.faults[f"/{NAME}/1/{WEIGHTS}"] = (200, body[:1000], len(body))
    cache = tmp_path / "cache"
    with pytest.raises(
        zoo.ZooError, match=rf"{WEIGHTS} failed: the connection closed early.*{NAME}/1/{WEIGHTS}"
    ):
        zoo.load(NAME, cache_dir=cache, registry=registry)
    assert WEIGHTS not in assert_cache_holds_only_verified_files(cache, registry)


def test_a_cache_path_that_is_a_file_is_a_clear_error(registry, server, tmp_path):
    running, _ = server
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    with pytest.raises(zoo.ZooError, match=rf"zoo cache folder {cache}.* is not writable"):
        zoo.load(NAME, cache_dir=cache, registry=registry)
    assert cache.read_text() == "not a folder"


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0,
    reason="running as root, which ignores file permissions (the file-as-cache test covers it)",
)
def test_a_read_only_cache_is_a_clear_error(registry, server, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o500)
    try:
        with pytest.raises(zoo.ZooError, match=r"is not writable.*cache_dir"):
            zoo.load(NAME, cache_dir=cache, registry=registry)
        assert list(cache.iterdir()) == []
    finally:
        cache.chmod(0o700)


def test_a_read_only_cache_with_every_file_present_still_loads(registry, server, tmp_path):
    cache = tmp_path / "cache"
    zoo.fetch(NAME, cache_dir=cache, registry=registry)
    folder = cache / NAME / "1"
    folder.chmod(0o500)
    try:
        assert isinstance(zoo.load(NAME, cache_dir=cache, registry=registry), RETDM)
    finally:
        folder.chmod(0o700)
