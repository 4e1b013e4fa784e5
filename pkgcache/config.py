"""Read package-cache.conf (TOML) and flags into validated ``Settings``.

The config file holds every setting; command-line flags (see ``cli.py``)
override it. Validation happens here, once, so the rest of the program can
trust a ``Settings`` it is given. Every problem is a ``ConfigError`` whose
message names the file and the key, fit to be printed as one line.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
import urllib.parse
from typing import Any

from pkgcache.settings import MIB, IPNetwork, Settings


class ConfigError(Exception):
    """A setting is missing, unknown, of the wrong type or out of range."""


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
}

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "M": MIB, "G": 1024 * MIB, "T": MIB * MIB}


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | int | float) -> float:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"3600"`` (seconds) -> seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _DURATION_RE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration such as 30d, 12h or 3600")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def parse_size(value: int | str) -> int:
    """Parse ``4194304``, ``"4MiB"``, ``"4M"`` or ``"4 MB"`` (all binary units)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a size such as 4194304 or '4MiB'")
    unit = (match.group(2) or "").upper()[:1]
    return int(match.group(1)) * _SIZE_UNITS[unit]


def normalize_source(url: str) -> str:
    """Check that ``url`` is an http(s) URL and strip its trailing ``/``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r} must not have a query or fragment")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"{url!r} has a bad port") from None
    return url.rstrip("/")


def parse_hosts(value: str | list[str]) -> tuple[str, ...]:
    """``"a,b"``, ``"a b"`` or ``["a", "b"]`` -> ``("a", "b")``."""
    items = value if isinstance(value, list) else re.split(r"[,\s]+", value)
    hosts = tuple(item.strip() for item in items if item.strip())
    if not hosts:
        raise ValueError("give at least one address")
    return hosts


def parse_network(value: str) -> IPNetwork:
    """``"192.168.0.0/16"``, ``"10.1.2.3"`` or ``"fd00::/8"``."""
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP network such as 10.0.0.0/8") from None


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
        for key in ("max_file_size", "client_buffer", "max_size", "min_free"):
            if key in values:
                values[key] = _checked(key, parse_size, values[key])
        for key in ("max_age", "cull_interval", "idle_timeout"):
            if key in values:
                values[key] = _checked(key, parse_duration, values[key])
        if "host" in values:
            values["host"] = _checked("host", parse_hosts, values["host"])
        for key in ("allow", "status_allow", "trusted_proxies"):
            if key in values:
                values[key] = tuple(
                    _checked(f"{key}[{i}]", parse_network, network)
                    for i, network in enumerate(values[key])
                )
        if "sources" in values:
            values["sources"] = tuple(
                _checked(f"sources[{i}]", normalize_source, url)
                for i, url in enumerate(values["sources"])
            )
        return validate(Settings(**values))
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def validate(settings: Settings) -> Settings:
    """Check ranges and relations that single values cannot show."""
    if not settings.sources:
        raise ConfigError("no source: give at least one --source URL")
    if not 0 <= settings.port <= 65535:
        raise ConfigError(f"port {settings.port} is not between 0 and 65535")
    if not settings.cache:
        raise ConfigError("cache must be a folder path")
    for key in ("connect_timeout", "stall_timeout"):
        if getattr(settings, key) <= 0:
            raise ConfigError(f"{key} must be more than 0 seconds")
    if settings.upstream_connections < 1:
        raise ConfigError("upstream_connections must be at least 1")
    if settings.client_buffer < 64 * 1024:
        raise ConfigError("client_buffer must be at least 64KiB")
    if settings.ca_file and not os.path.isfile(settings.ca_file):
        raise ConfigError(f"ca_file {settings.ca_file!r} is not a file")
    if not settings.allow:
        raise ConfigError("allow is empty: no client could use the cache")
    if settings.idle_timeout <= 0:
        raise ConfigError("idle_timeout must be more than 0 seconds")
    if settings.cull_interval < 1:
        raise ConfigError("cull_interval must be at least 1 second")
    if settings.max_age < 0:
        raise ConfigError("max_age must not be negative")
    if settings.shutdown_grace < 0:
        raise ConfigError("shutdown_grace must not be negative")
    if settings.verbose < 0:
        raise ConfigError("verbose must not be negative")
    return settings


def _checked(key: str, parse: Any, value: Any) -> Any:
    try:
        return parse(value)
    except ValueError as error:
        raise ConfigError(f"{key}: {error}") from None
