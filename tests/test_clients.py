"""Real client binaries (curl, wget) fetch through the proxy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.origin import content

pytestmark = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("wget")), reason="needs curl and wget"
)


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, capture_output=True, timeout=60)


def test_curl_fetches_a_miss_and_a_hit(proxy, tmp_path: Path):
    url = proxy.url + "/files/300000/curl-1.0.tar.bz2"
    for name in ("miss", "hit"):
        result = run("curl", "-fsS", "-o", str(tmp_path / name), url)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / name).read_bytes() == content("curl-1.0.tar.bz2", 300000)


def test_wget_fetches_and_resumes(proxy, tmp_path: Path):
    url = proxy.url + "/files/300000/wget-1.0.tar.xz"
    target = tmp_path / "wget-1.0.tar.xz"
    result = run("wget", "-q", "-O", str(target), url)
    assert result.returncode == 0, result.stderr
    expected = content("wget-1.0.tar.xz", 300000)
    assert target.read_bytes() == expected
    target.write_bytes(expected[:1000])
    result = run("wget", "-q", "-c", "-P", str(tmp_path), url)
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == expected


def test_client_with_http_proxy_set_is_served(proxy, origin, tmp_path: Path):
    result = run(
        "curl",
        "-fsS",
        "-x",
        proxy.url,
        "-o",
        str(tmp_path / "f"),
        "http://mirror.invalid/files/2000/via-proxy.tar",
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "f").read_bytes() == content("via-proxy.tar", 2000)
    assert origin.count("ok", 2000, "via-proxy.tar") == 1


def test_curl_and_wget_see_an_error_when_the_upstream_breaks(
    origin, make_proxy, tmp_path: Path
):
    proxy = make_proxy([origin.source("stall")], stall_timeout=1)
    curl = run(
        "curl",
        "-fsS",
        "-o",
        str(tmp_path / "c"),
        proxy.url + "/files/400000/broken-c.tar",
    )
    assert curl.returncode != 0
    wget = run(
        "wget",
        "-q",
        "--tries=1",
        "-O",
        str(tmp_path / "w"),
        proxy.url + "/files/400000/broken-w.tar",
    )
    assert wget.returncode != 0
    assert not proxy.cached("/files/400000/broken-c.tar").exists()
