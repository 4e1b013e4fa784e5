"""Read package-cache.conf (TOML) and flags into validated ``Settings``.

The config file holds every setting; command-line flags (see ``cli.py``)
override it. Validation happens here, once, so the rest of the program can
trust a ``Settings`` it is given. Every problem is a ``ConfigError`` whose
message names the file and the key, fit to be printed as one line.
"""

from __future__ import annotations

import math
import os
import tomllib
from typing import Any

from pkgcache.configvalues import (
    DAY,
    HOUR,
    MAX_SIZE,
    ConfigError,
    checked,
    is_control,
    normalize_source,
    parse_duration,
    parse_hosts,
    parse_network,
    parse_size,
    plain_text,
)
from pkgcache.repositoryconfig import check_repositories, repository
from pkgcache.settings import MIB, Settings

__all__ = [
    "MAX_SIZE",
    "ConfigError",
    "build",
    "load_file",
    "parse_duration",
    "parse_size",
]


#: Config-file keys and the Python types they accept.
_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "sources": (list,),
    "cache": (str,),
    "host": (str, list),
    "port": (int,),
    "verbose": (int,),
    "syslog": (bool,),
    "connect_timeout": (int, float),
    "stall_timeout": (int, float),
    "upstream_connections": (int,),
    "max_file_size": (int, str),
    "client_buffer": (int, str),
    "ca_file": (str,),
    "user_agent": (str,),
    "allow": (list,),
    "shutdown_grace": (int, float),
    "max_size": (int, str),
    "min_free": (int, str),
    "max_age": (int, float, str),
    "cull_interval": (int, float, str),
    "status_allow": (list,),
    "trusted_proxies": (list,),
    "idle_timeout": (int, float, str),
    "repository": (list,),
    "prefetch": (int, float, str),
    "prefetch_budget": (int, str),
    "prefetch_unused_after": (int, float, str),
    "prefetch_versions": (int,),
}

#: Each duration setting's bounds in seconds: (low, low itself allowed,
#: high, the high bound in words). A bound keeps every duration finite and
#: within what libcurl (milliseconds in a C long) and the timers can take.
_DURATION_BOUNDS: dict[str, tuple[float, bool, float, str]] = {
    "connect_timeout": (0.0, False, DAY, "1 day"),
    "stall_timeout": (0.0, False, DAY, "1 day"),
    "idle_timeout": (0.0, False, DAY, "1 day"),
    "shutdown_grace": (0.0, True, HOUR, "1 hour"),
    "cull_interval": (1.0, True, 30 * DAY, "30 days"),
    "max_age": (0.0, True, 36500 * DAY, "36500 days, about 100 years"),
    "prefetch": (0.0, True, 30 * DAY, "30 days"),
    "prefetch_unused_after": (0.0, False, 36500 * DAY, "36500 days"),
}
#: Newer versions of one package a prefetch pass may fetch.
MAX_PREFETCH_VERSIONS = 20
#: Upstream transfers at once: each is a libcurl handle, made at start-up,
#: with a socket and a 1 MiB read buffer while it transfers.
MAX_UPSTREAM_CONNECTIONS = 2000
#: ``client_buffer`` bounds: below one libcurl read, clients never go live;
#: above 1 GiB, a few slow clients could take the machine's memory.
MIN_CLIENT_BUFFER = 64 * 1024
MAX_CLIENT_BUFFER = 1024 * MIB
#: Settings that are text handed to the OS or sent upstream as a header.
_TEXT_KEYS = ("cache", "ca_file", "user_agent")


def load_file(path: str) -> dict[str, Any]:
    """Read a config file into a dict of raw values, checking keys and types."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    for key, value in data.items():
        if key not in _KEY_TYPES:
            raise ConfigError(f"{path}: unknown setting {key!r}")
        types = _KEY_TYPES[key]
        if isinstance(value, bool) and bool not in types:
            types = ()
        if not isinstance(value, types):
            expected = " or ".join(t.__name__ for t in _KEY_TYPES[key])
            raise ConfigError(
                f"{path}: {key} must be {expected}, not {type(value).__name__}"
            )
    for key in ("sources", "host", "allow", "status_allow", "trusted_proxies"):
        value = data.get(key)
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{path}: {key} must be a list of strings")
    return data


def build(values: dict[str, Any], where: str = "settings") -> Settings:
    """Make validated ``Settings`` from raw values (file merged with flags).

    ``where`` names the origin of the values in error messages.
    """
    values = dict(values)
    try:
        sizes = ("max_file_size", "client_buffer", "max_size", "min_free")
        for key in (*sizes, "prefetch_budget"):
            if key in values:
                values[key] = checked(key, parse_size, values[key])
        for key in _DURATION_BOUNDS:
            if key in values:
                values[key] = checked(key, parse_duration, values[key])
        for key in _TEXT_KEYS:
            if key in values:
                checked(key, plain_text, values[key])
        if "host" in values:
            values["host"] = checked("host", parse_hosts, values["host"])
        for key in ("allow", "status_allow", "trusted_proxies"):
            if key in values:
                values[key] = tuple(
                    checked(f"{key}[{i}]", parse_network, network)
                    for i, network in enumerate(values[key])
                )
        if "sources" in values:
            values["sources"] = tuple(
                checked(f"sources[{i}]", normalize_source, url)
                for i, url in enumerate(values["sources"])
            )
        if "repository" in values:
            values["repositories"] = tuple(
                repository(i, table) for i, table in enumerate(values.pop("repository"))
            )
        return validate(Settings(**values))
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def validate(settings: Settings) -> Settings:
    """Check ranges and relations that single values cannot show."""
    if not settings.sources and not settings.repositories:
        raise ConfigError(
            "no source: give at least one --source URL or a [[repository]]"
        )
    check_repositories(settings.all_repositories)
    if not 0 <= settings.port <= 65535:
        raise ConfigError(f"port {settings.port} is not between 0 and 65535")
    if not settings.cache:
        raise ConfigError("cache must be a folder path")
    for key in _DURATION_BOUNDS:
        _check_duration(key, getattr(settings, key))
    if not 1 <= settings.upstream_connections <= MAX_UPSTREAM_CONNECTIONS:
        raise ConfigError(
            f"upstream_connections must be between 1 and "
            f"{MAX_UPSTREAM_CONNECTIONS}, not {settings.upstream_connections}"
        )
    if not MIN_CLIENT_BUFFER <= settings.client_buffer <= MAX_CLIENT_BUFFER:
        raise ConfigError("client_buffer must be at least 64KiB and at most 1GiB")
    if settings.ca_file and not os.path.isfile(settings.ca_file):
        raise ConfigError(f"ca_file {settings.ca_file!r} is not a file")
    if not settings.allow:
        raise ConfigError("allow is empty: no client could use the cache")
    if any(is_control(char) for host in settings.host for char in host):
        raise ConfigError("host must not contain control characters")
    if settings.verbose < 0:
        raise ConfigError("verbose must not be negative")
    if not 1 <= settings.prefetch_versions <= MAX_PREFETCH_VERSIONS:
        raise ConfigError(
            f"prefetch_versions must be between 1 and {MAX_PREFETCH_VERSIONS}, "
            f"not {settings.prefetch_versions}"
        )
    if 0 < settings.prefetch < 1:
        raise ConfigError("prefetch must be 0 (off) or at least 1 second")
    if settings.prefetch and not settings.prefetch_budget:
        raise ConfigError("prefetch_budget is 0: a prefetch pass could fetch nothing")
    return settings


def _check_duration(key: str, seconds: float) -> None:
    """Raise ``ConfigError`` unless ``seconds`` is finite and within the
    bounds ``_DURATION_BOUNDS`` gives ``key``."""
    low, low_allowed, high, words = _DURATION_BOUNDS[key]
    above_low = seconds >= low if low_allowed else seconds > low
    if not (math.isfinite(seconds) and above_low and seconds <= high):
        first = "at least" if low_allowed else "more than"
        raise ConfigError(
            f"{key} must be {first} {low:g} and at most {high:.0f} seconds "
            f"({words}), not {seconds:g}"
        )
