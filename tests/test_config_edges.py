"""Config edges: every value the daemon cannot run with is one line and exit 2.

Each bad file is otherwise valid and would start a server on a free port,
so code that accepts the value fails by running past the timeout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pkgcache import config
from tests.test_cli import run_cli

DIGITS_400 = "9" * 400  # a float of it is inf
DIGITS_5000 = "9" * 5000  # past int()'s 4300-digit limit


def repository_at(prefix: str) -> str:
    """A config line: one repository at ``prefix`` (TOML escapes as given)."""
    return (
        f'repository = [{{ name = "r", prefix = "{prefix}", sources = ["http://m"] }}]'
    )


BAD = [
    # Durations: finite and within bounds.
    ("connect_timeout = inf", "connect_timeout"),
    ("connect_timeout = -inf", "connect_timeout"),
    ("connect_timeout = nan", "connect_timeout"),
    ("connect_timeout = 1e300", "connect_timeout must be more than 0"),
    ("connect_timeout = 86401", "at most 86400 seconds (1 day)"),
    ("stall_timeout = inf", "stall_timeout"),
    ("stall_timeout = nan", "stall_timeout"),
    ("stall_timeout = 1e300", "stall_timeout must be"),
    ("shutdown_grace = inf", "shutdown_grace"),
    ("shutdown_grace = nan", "shutdown_grace"),
    ("shutdown_grace = 3601", "at most 3600 seconds (1 hour)"),
    ("idle_timeout = inf", "idle_timeout"),
    ("idle_timeout = nan", "idle_timeout"),
    (f'idle_timeout = "{DIGITS_400}"', "idle_timeout: '999"),
    ('idle_timeout = "2d"', "idle_timeout must be"),
    ("max_age = inf", "max_age"),
    ("max_age = nan", "max_age"),
    ("max_age = 1e300", "max_age must be at least 0"),
    ('max_age = "36501d"', "max_age must be"),
    ("cull_interval = nan", "cull_interval"),
    ("cull_interval = inf", "cull_interval"),
    ('cull_interval = "31d"', "at most 2592000 seconds (30 days)"),
    # Sources: no query or fragment, even an empty one; nothing urlsplit hides.
    ('sources = ["http://mirror.example/x?"]', "must not have a query or fragment"),
    ('sources = ["http://mirror.example/x#"]', "must not have a query or fragment"),
    ('sources = ["http://mirror.example/?/x"]', "must not have a query or fragment"),
    ('sources = ["http://mirror.example/x\\n"]', "control characters"),
    ('sources = [" http://mirror.example/x"]', "must not contain spaces"),
    ('sources = ["http://mirror.example/a\\tb"]', "must not contain spaces"),
    # Counts and sizes.
    ("upstream_connections = 1000000", "upstream_connections must be between 1"),
    ("upstream_connections = 2001", "and 2000, not 2001"),
    ('client_buffer = "2GiB"', "client_buffer must be at least 64KiB and at most"),
    ("client_buffer = 1073741825", "at most 1GiB"),
    ('max_file_size = "99999999999TiB"', "max_file_size: '99999999999TiB' is larger"),
    (f'max_size = "{DIGITS_5000}"', "max_size: '999"),
    ('min_free = "8388608TiB"', "larger than 8EiB"),
    ("port = true", "port must be int, not bool"),
    # Text handed to the OS or sent upstream as a header.
    ('cache = "/tmp/a\\u0000b"', "cache: "),
    ('user_agent = "x\\r\\nX-Evil: 1"', "user_agent: "),
    ('host = "127.0.0.1\\u0000"', "host must not contain control characters"),
    # A repository prefix no request path could ever lie under.
    (repository_at("/a\\u202eb/"), "never match a request: control character"),
    (repository_at("/a\\u2066/"), "never match a request: control character"),
    (repository_at(f"/{'x' * 256}/"), "never match a request: path segment too long"),
    (repository_at(f"/{'é' * 128}/"), "never match a request: path segment too long"),
    (repository_at("/" + "y/" * 1024), "never match a request: path too long"),
    # Prefetch.
    ('prefetch = "0.5"', "prefetch must be 0 (off) or at least 1 second"),
    ('prefetch = "31d"', "prefetch must be at least 0 and at most"),
    ("prefetch_versions = 0", "prefetch_versions must be between 1 and 20"),
    ("prefetch_versions = 21", "prefetch_versions must be between 1 and 20"),
    ('prefetch_unused_after = "0"', "prefetch_unused_after must be more than 0"),
    ('prefetch_budget = "lots"', "prefetch_budget: 'lots'"),
    (
        '[[repository]]\nname = "g"\nprefix = "/g/"\nsources = ["http://a"]\n'
        'prefetch = "1h"',
        "kind generic has no indexes to prefetch from",
    ),
    (
        '[[repository]]\nname = "d"\nprefix = "/d/"\nkind = "debian"\n'
        'sources = ["http://a"]\nprefetch = "0.2"',
        "prefetch must be 0 (off) or 1s to 30 days",
    ),
]


def write_config(tmp_path: Path, line: str) -> Path:
    """An otherwise valid config (free port, own cache) with ``line`` last,
    overriding what comes before it (TOML refuses a key twice, so the base
    leaves out the key ``line`` sets)."""
    base = {
        "sources": '["http://127.0.0.1:9"]',
        "cache": f'"{tmp_path / "cache"}"',
        "host": '"127.0.0.1"',
        "port": "0",
    }
    key = line.split("=", 1)[0].strip()
    lines = [f"{k} = {v}" for k, v in base.items() if k != key]
    conf = tmp_path / "edge.conf"
    conf.write_text("\n".join([*lines, line]) + "\n")
    return conf


@pytest.mark.parametrize(("line", "expected"), BAD)
def test_bad_value_exits_2_with_one_line(tmp_path: Path, line, expected):
    conf = write_config(tmp_path, line)
    result = run_cli("--config", str(conf), timeout=8)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"package-cache: error: {conf}: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "values",
    [
        {"connect_timeout": 86400, "stall_timeout": 0.001, "idle_timeout": "1d"},
        {"shutdown_grace": 0, "cull_interval": 1, "max_age": "36500d"},
        {"shutdown_grace": 3600, "cull_interval": "30d", "max_age": 0},
        {"upstream_connections": 1, "client_buffer": "64KiB"},
        {"upstream_connections": 2000, "client_buffer": "1GiB"},
        {"max_file_size": "8388607TiB", "min_free": 2**63 - 1, "max_size": 0},
        {"sources": ["http://user:p%23ss@mirror.example:8080/a%3Fb/"]},
        {"verbose": 2**63 - 1},  # more than 3 counts as 3
    ],
)
def test_values_at_the_bounds_are_accepted(values):
    settings = config.build({"sources": ["http://a"], **values})
    for key, value in values.items():
        if key == "sources":
            assert settings.sources == (value[0].rstrip("/"),)
        elif isinstance(value, (int, float)):
            assert getattr(settings, key) == value


def test_durations_are_finite_for_the_cull_command_too():
    for value in (DIGITS_400, "inf", "nan"):
        with pytest.raises(ValueError):
            config.parse_duration(value)
    assert config.parse_duration("30d") == 30 * 86400
