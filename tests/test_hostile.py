"""Hostile input (hypothesis) and load against the running server."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import wait_until
from tests.origin import content

SEGMENTS = [
    "..",
    ".",
    "a",
    "b.tar.gz",
    "%2e%2e",
    "%2E.",
    "%2f",
    "%5c",
    "%00",
    "%0a",
    "\\",
    "%",
    "%zz",
    "~",
    "+",
    ".hidden",
    ".partial",
    "%c3%a9",
    "%ff",
    "",
    "a%2f..%2f..",
    "secret.txt",
    "%252e%252e",
]
RANGES = [
    "",
    "bytes=0-0",
    "bytes=-5",
    "bytes=5-1",
    "bytes=abc",
    "bytes=0-1,3-4",
    "bytes=99999999999-",
    "items=0-1",
]
STATUS_LINE = re.compile(rb"^HTTP/1\.1 (\d{3}) ")
ANSWERS = {200, 206, 304, 400, 403, 404, 405, 409, 414, 416, 502, 504}

targets = st.builds(
    lambda prefix, parts, query: prefix + "/".join(parts) + query,
    st.sampled_from(["/", "//", "http://evil.example/", "/a/", "/../"]),
    st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=6),
    st.sampled_from(["", "?x=1", "?../../etc", "#frag"]),
)


def raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.fixture
def hostile_proxy(origin, make_proxy, tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("do not serve me")
    (tmp_path / "secret.txt").write_text("do not serve me")
    proxy = make_proxy([origin.source("e404")], cache=str(tmp_path / "c" / "cache"))
    return proxy, tmp_path / "outside", snapshot(tmp_path / "outside")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@example(target="/../../secret.txt", method="GET", range_header="")
@example(target="/%2e%2e/%2e%2e/outside/secret.txt", method="GET", range_header="")
@example(target="/a/..%2f..%2f..%2fsecret.txt", method="HEAD", range_header="bytes=0-0")
@given(
    target=targets,
    method=st.sampled_from(["GET", "HEAD", "POST", "GET"]),
    range_header=st.sampled_from(RANGES),
)
def test_fuzzed_paths_and_headers_get_a_status_and_touch_nothing_outside(
    hostile_proxy, target, method, range_header
):
    proxy, outside, before = hostile_proxy
    headers = "Host: x\r\nConnection: close\r\n"
    if range_header:
        headers += f'Range: {range_header}\r\nIf-None-Match: "{range_header}"\r\n'
    answer = raw(proxy.port, f"{method} {target} HTTP/1.1\r\n{headers}\r\n".encode())
    match = STATUS_LINE.match(answer)
    assert match, answer[:200]
    assert int(match.group(1)) in ANSWERS, answer[:200]
    assert b"do not serve me" not in answer
    assert b"Traceback" not in answer
    assert snapshot(outside) == before


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }


@pytest.mark.serial
def test_a_thousand_concurrent_connections(origin, make_proxy):
    """Load: 1000 connections at once, hits, joins and distinct misses."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    origin.rate = 2_000_000
    proxy = make_proxy([origin.source("ok")])
    hits = [f"/files/8000/hit-{i}.tar" for i in range(20)]
    for path in hits:
        assert proxy.request(path).status == 200
    paths = (
        [hits[i % 20] for i in range(400)]
        + [f"/files/300000/joined-{i % 5}.tar" for i in range(300)]
        + [f"/files/5000/miss-{i}.tar" for i in range(300)]
    )

    async def one(path: str) -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
        writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        size, name = path.split("/")[2:4]
        return head.startswith(b"HTTP/1.1 200") and body == content(name, int(size))

    async def everyone() -> list[bool]:
        return await asyncio.wait_for(
            asyncio.gather(*(one(path) for path in paths)), timeout=120
        )

    results = asyncio.run(everyone())
    assert results.count(True) == len(paths)
    for i in range(5):
        assert origin.count("ok", 300000, f"joined-{i}.tar") == 1
    assert os.path.exists(proxy.cached("/files/5000/miss-299.tar"))


def access_lines(proxy, marker: bytes) -> list[bytes]:
    """The proxy's access lines (as bytes, whatever their encoding) for a
    request whose target holds ``marker``."""
    log = proxy.log_path.read_bytes()
    return [line for line in log.split(b"\n") if b' "GET /' in line and marker in line]


def printable_ascii(line: bytes) -> bool:
    return all(0x20 <= byte <= 0x7E for byte in line)


@pytest.mark.parametrize(
    ("target", "status", "escaped"),
    [
        # NEL as a raw byte: tornado passes it on (obs-text), paths refuses it.
        (b"/files/10/nel-\x85.tar", 400, b"/files/10/nel-\\x85.tar"),
        # CSI in the query: the path is a file, the log must still escape it.
        (b"/files/10/csi.tar?\x9b31m", 200, b"/files/10/csi.tar?\\x9b31m"),
        (b'/files/10/quote.tar?"\\', 200, b"/files/10/quote.tar?\\x22\\x5c"),
    ],
)
def test_raw_control_bytes_never_reach_the_log_raw(
    origin, make_proxy, target, status, escaped
):
    proxy = make_proxy([origin.source("ok")])
    answer = raw(
        proxy.port,
        b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert int(answer.split()[1]) == status, answer[:200]
    marker = target.split(b"/")[-1][:4]
    assert wait_until(lambda: access_lines(proxy, marker))
    (line,) = access_lines(proxy, marker)
    assert printable_ascii(line), line
    assert b'"GET ' + escaped + b'" ' + str(status).encode() in line


def test_a_raw_escape_byte_is_tornados_400_and_never_logged(origin, make_proxy):
    proxy = make_proxy([origin.source("ok")])
    request = b"GET /files/10/esc-\x1b[31m.tar HTTP/1.1\r\nHost: x\r\n\r\n"
    assert raw(proxy.port, request).startswith(b"HTTP/1.1 400 ")
    assert wait_until(lambda: b"Malformed HTTP" in proxy.log_path.read_bytes())
    assert b"\x1b" not in proxy.log_path.read_bytes()


def test_a_raw_utf8_name_is_the_same_file_as_its_percent_encoded_form(
    origin, make_proxy
):
    proxy = make_proxy([origin.source("ok")])
    request = b"GET /files/10/caf\xc3\xa9.tar HTTP/1.1\r\nHost: x\r\n"
    request += b"Connection: close\r\n\r\n"
    assert raw(proxy.port, request).startswith(b"HTTP/1.1 200 ")
    assert proxy.cached("/files/10/café.tar").read_bytes() == content("café.tar", 10)
    assert origin.count("ok", 10, "caf%C3%A9.tar") == 1
    response = proxy.request("/files/10/caf%C3%A9.tar")
    assert response.headers["X-Package-Cache"] == "hit"
