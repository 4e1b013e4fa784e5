"""Nothing outside the cache root is read or written, whatever the path."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.origin import content

HOSTILE_TARGETS = [
    "/../secret.txt",
    "/files/1/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/files/%2e%2e/%2e%2e/secret.txt",
    "/files%2f..%2f..%2fsecret.txt",
    "/..%5csecret.txt",
    "/files\\..\\..\\secret.txt",
    "/files/1/a%00.tar",
    "/.partial/x",
    "/files/1/.hidden",
    "/files/1/%2e%2e",
]


def raw_request(port: int, target: str) -> bytes:
    """Send the target bytes exactly as given (no client normalization)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"GET " + target.encode() + b" HTTP/1.1\r\nHost: x\r\n"
            b"Connection: close\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.mark.parametrize("target", HOSTILE_TARGETS)
def test_traversal_is_refused_and_touches_nothing(origin, make_proxy, tmp_path, target):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve me")
    proxy = make_proxy([origin.source("ok")])
    before = sorted(p.name for p in tmp_path.iterdir())
    answer = raw_request(proxy.port, target)
    status = int(answer.split()[1])
    assert status in (400, 404)
    assert b"do not serve me" not in answer
    assert origin.log == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert secret.read_text() == "do not serve me"


def test_symlink_out_of_the_cache_is_not_served(origin, make_proxy, tmp_path: Path):
    proxy = make_proxy([origin.source("ok")])
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve me")
    (proxy.cache / "files").mkdir()
    os.symlink(secret, proxy.cache / "files" / "link.tar")
    os.symlink(tmp_path, proxy.cache / "outside")
    for path in ("/files/link.tar", "/outside/secret.txt"):
        response = proxy.request(path)
        assert response.status == 404
        assert b"do not serve me" not in response.body
    before = secret.stat()
    assert before.st_atime == secret.stat().st_atime


def test_download_through_a_symlinked_folder_is_not_stored_outside(
    origin, make_proxy, tmp_path: Path
):
    proxy = make_proxy([origin.source("ok")])
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (proxy.cache / "files").mkdir()
    os.symlink(outside, proxy.cache / "files" / "9")
    response = proxy.request("/files/9/escape.tar")
    assert response.status == 404
    assert list(outside.iterdir()) == []


def test_file_where_a_folder_is_needed_gets_a_clean_error(proxy):
    assert proxy.request("/files/10/a").status == 200
    nested = proxy.request("/files/10/a/b.tar")
    assert nested.status == 409
    assert proxy.cached("/files/10/a").read_bytes() == content("a", 10)
    assert proxy.request("/files/10").status == 409
    assert proxy.request("/files/10/a").status == 200


@pytest.mark.parametrize("size", [100, 200_000])
def test_a_folder_swapped_for_a_symlink_after_it_was_served_is_not_followed(
    origin, make_proxy, tmp_path: Path, size
):
    """The cache doubles as a DISTDIR: another process may replace a folder
    that was already served by a symlink out of the cache."""
    proxy = make_proxy([origin.source("ok")])
    path = f"/files/{size}/swapped.tar"
    assert proxy.request(path).body == content("swapped.tar", size)
    assert proxy.request(path).headers["X-Package-Cache"] == "hit"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "swapped.tar").write_bytes(b"do not serve me".ljust(size, b"!"))
    folder = proxy.cache / "files" / str(size)
    os.rename(folder, tmp_path / "moved-away")
    os.symlink(outside, folder)
    for _ in range(2):  # the general path and the small-hit path
        response = proxy.request(path)
        assert b"do not serve me" not in response.body
        assert response.status == 404
