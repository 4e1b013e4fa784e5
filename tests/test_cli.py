"""The command line and config file: 0.2's flags, clear one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pkgcache import __version__
from pkgcache.cli import settings_from_args
from tests.conftest import ROOT


def run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pkgcache", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_version_prints_name_and_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"package-cache {__version__}"


def test_flags_of_0_2_are_accepted_and_sources_keep_their_order():
    settings = settings_from_args(
        [
            "--source",
            "http://b.example/",
            "--source",
            "https://a.example/x",
            "--cache",
            "/srv/c",
            "--host",
            "::",
            "--port",
            "4001",
            "-vv",
            "--syslog",
        ]
    )
    assert settings.sources == ("http://b.example", "https://a.example/x")
    assert (settings.cache, settings.host, settings.port) == ("/srv/c", ("::",), 4001)
    assert settings.verbose == 2
    assert settings.syslog is True


def test_defaults_match_0_2():
    settings = settings_from_args(["--source", "http://a.example"])
    assert (settings.host, settings.port, settings.cache) == (
        ("localhost",),
        4000,
        "/tmp/package-cache",
    )


def test_flags_override_the_config_file(tmp_path: Path):
    conf = tmp_path / "pc.conf"
    conf.write_text(
        'sources = ["http://file.example"]\nport = 5000\nstall_timeout = 7\n'
        'client_buffer = "8MiB"\n'
    )
    settings = settings_from_args(["--config", str(conf), "--port", "5001"])
    assert settings.port == 5001
    assert settings.sources == ("http://file.example",)
    assert settings.stall_timeout == 7
    assert settings.client_buffer == 8 * 1024 * 1024
    settings = settings_from_args(
        ["--config", str(conf), "--source", "http://flag.example"]
    )
    assert settings.sources == ("http://flag.example",)


def test_example_config_is_valid():
    settings = settings_from_args(["--config", str(ROOT / "package-cache.conf")])
    assert settings.sources


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('sources = ["http://a"]\ncolour = "blue"\n', "unknown setting 'colour'"),
        ('sources = ["http://a"]\nport = "4000"\n', "port must be int"),
        ('sources = ["ftp://a"]\n', "sources[0]: 'ftp://a' is not an http"),
        ("port = 4000\n", "no source"),
        ('sources = ["http://a"]\nport = 70000\n', "port 70000"),
        ('sources = ["http://a"]\nclient_buffer = "lots"\n', "client_buffer"),
        ("sources = [\n", "not valid TOML"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path: Path, content, expected):
    conf = tmp_path / "bad.conf"
    conf.write_text(content)
    result = run_cli("--config", str(conf))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(conf) in lines[0]
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--port", "http"],
        ["--bogus"],
        ["--source", "not a url"],
        [],
        ["--config", "/nonexistent/pc.conf"],
    ],
)
def test_bad_flags_exit_2_with_one_line(args):
    result = run_cli(*args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("package-cache: error:")


def test_unusable_cache_folder_is_a_clear_start_up_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli(
        "--source",
        "http://127.0.0.1:9",
        "--cache",
        str(blocker / "c"),
        "--port",
        "0",
        "--host",
        "127.0.0.1",
    )
    assert result.returncode == 1
    assert "cache folder" in result.stderr and "not usable" in result.stderr
    assert "Traceback" not in result.stderr


def test_port_taken_is_a_clear_start_up_error(tmp_path: Path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "--source",
            "http://127.0.0.1:9",
            "--cache",
            str(tmp_path / "c"),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        )
    assert result.returncode == 1
    assert "cannot listen" in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "--cache"),
        (("--cache", "/nonexistent/cache"), "is not a folder"),
        (("--cache", "{tmp}", "--config", "{tmp}/missing.toml"), "cannot read"),
        (("--cache", "{tmp}", "--bogus"), "unrecognized"),
    ],
)
def test_verify_bad_usage_exits_2_with_one_line(tmp_path: Path, args, expected):
    given = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    result = run_cli("verify", *given)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_verify_of_an_empty_cache_passes(tmp_path: Path):
    result = run_cli("verify", "--cache", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "0 files checked, 0 wrong" in result.stdout
