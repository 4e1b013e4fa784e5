"""Read package-cache.conf (TOML) and flags into validated ``Settings``.

The config file holds every setting; command-line flags (see ``cli.py``)
override it. Validation happens here, once, so the rest of the program can
trust a ``Settings`` it is given. Every problem is a ``ConfigError`` whose
message names the file and the key, fit to be printed as one line.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
import unicodedata
import urllib.parse
from typing import Any

from pkgcache.repositories.globs import BadGlob, compile_glob
from pkgcache.repositories.presets import POLICIES, PRESETS
from pkgcache.settings import MIB, IPNetwork, RepositorySettings, Settings
from pkgcache.store.paths import PathRefused, cache_key


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
    "repository": (list,),
}

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "M": MIB, "G": 1024 * MIB, "T": MIB * MIB}
#: The largest size: the largest file offset (off_t), 8 EiB less one byte.
MAX_SIZE = 2**63 - 1

HOUR = 3600.0
DAY = 24 * HOUR
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
}
#: Upstream transfers at once: each is a libcurl handle, made at start-up,
#: with a socket and a 1 MiB read buffer while it transfers.
MAX_UPSTREAM_CONNECTIONS = 2000
#: ``client_buffer`` bounds: below one libcurl read, clients never go live;
#: above 1 GiB, a few slow clients could take the machine's memory.
MIN_CLIENT_BUFFER = 64 * 1024
MAX_CLIENT_BUFFER = 1024 * MIB
#: Settings that are text handed to the OS or sent upstream as a header.
_TEXT_KEYS = ("cache", "ca_file", "user_agent")


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | int | float) -> float:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"3600"`` (seconds) -> seconds.

    The result is always finite (``inf``, ``nan`` and a string of digits
    too long for a float are refused); its range is the caller's check.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration such as 30d, 12h or 3600")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a finite duration")
    return seconds


def parse_size(value: int | str) -> int:
    """Parse ``4194304``, ``"4MiB"``, ``"4M"`` or ``"4 MB"`` (all binary units).

    The result is between 0 and ``MAX_SIZE`` (8 EiB): no file or file
    system is larger, and a bigger number is a typo.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _SIZE_RE.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a size such as 4194304 or '4MiB'")
        digits = match.group(1).lstrip("0") or "0"
        if len(digits) > 19:  # more than 8 EiB has: never parse a huge number
            raise ValueError(f"{value!r} is larger than 8EiB")
        size = int(digits) * _SIZE_UNITS[(match.group(2) or "").upper()[:1]]
    if size < 0:
        raise ValueError("must not be negative")
    if size > MAX_SIZE:
        raise ValueError(f"{value!r} is larger than 8EiB")
    return size


def normalize_source(url: str) -> str:
    """Check that ``url`` is an http(s) URL and strip its trailing ``/``.

    Refused: any ``?`` or ``#`` (even a query or fragment left empty, such
    as ``http://mirror/x?``: a cache key appended after it would not be part
    of the path, so every file would be fetched from one URL; write ``%3F``
    or ``%23`` inside a user name or password), and spaces and control
    characters, which ``urlsplit`` silently strips or ignores but libcurl
    would be given.
    """
    if any(char.isspace() or _is_control(char) for char in url):
        raise ValueError(f"{url!r} must not contain spaces or control characters")
    if "?" in url or "#" in url:
        raise ValueError(f"{url!r} must not have a query or fragment ('?' or '#')")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
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
        for key in _DURATION_BOUNDS:
            if key in values:
                values[key] = _checked(key, parse_duration, values[key])
        for key in _TEXT_KEYS:
            if key in values:
                _checked(key, _plain_text, values[key])
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
        if "repository" in values:
            values["repositories"] = tuple(
                _repository(i, table)
                for i, table in enumerate(values.pop("repository"))
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
    _check_repositories(settings.all_repositories)
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
    if any(_is_control(char) for host in settings.host for char in host):
        raise ConfigError("host must not contain control characters")
    if settings.verbose < 0:
        raise ConfigError("verbose must not be negative")
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


def _is_control(char: str) -> bool:
    """A control character (Unicode category Cc: C0, DEL, C1)?"""
    return unicodedata.category(char) == "Cc"


def _plain_text(text: str) -> str:
    """``text`` if it has no control character: a NUL in a path is an
    error from the OS, and a CR or LF in ``user_agent`` would start a new
    header line in every upstream request."""
    if any(_is_control(char) for char in text):
        raise ValueError(f"{text!r} must not contain control characters")
    return text


def _checked(key: str, parse: Any, value: Any) -> Any:
    try:
        return parse(value)
    except ValueError as error:
        raise ConfigError(f"{key}: {error}") from None


#: The keys of a ``[[repository]]`` table.
_REPOSITORY_KEYS = (
    "name",
    "prefix",
    "kind",
    "sources",
    "fresh_for",
    "stale_if_error",
    "negative_for",
    "offline",
    "rules",
    "file_sources",
    "public_url",
)
#: Kinds whose paths are a registry's API, not files (``registries/``):
#: their own rules decide, and ``rules`` are refused.
_REGISTRY_KINDS = ("pypi", "npm")
_REPOSITORY_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
#: A repository's durations may be 0 (fresh_for 0: revalidate every time).
_REPOSITORY_DURATION_MAX = 36500 * DAY


def _repository(index: int, table: Any) -> RepositorySettings:
    """One ``[[repository]]`` table, checked."""
    where = f"repository[{index}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table ([[repository]])")
    for key in table:
        if key not in _REPOSITORY_KEYS:
            raise ConfigError(f"{where}: unknown setting {key!r}")
    name = table.get("name")
    if not isinstance(name, str) or not _REPOSITORY_NAME.fullmatch(name):
        raise ConfigError(f"{where}: name must match [a-z0-9][a-z0-9_-]*, not {name!r}")
    where = f"repository {name!r}"
    prefix = table.get("prefix")
    if not isinstance(prefix, str) or not _is_prefix(prefix):
        raise ConfigError(
            f"{where}: prefix must start and end with '/' and hold plain path "
            f"segments, not {prefix!r}"
        )
    refused = _never_matched(prefix)
    if refused:
        raise ConfigError(
            f"{where}: prefix {prefix!r} can never match a request: {refused}"
        )
    kind = table.get("kind", "generic")
    if kind not in PRESETS:
        raise ConfigError(
            f"{where}: kind must be one of {', '.join(PRESETS)}, not {kind!r}"
        )
    sources = _url_list(where, "sources", table.get("sources"), required=True)
    file_sources = _url_list(where, "file_sources", table.get("file_sources", []))
    if file_sources and kind not in _REGISTRY_KINDS:
        raise ConfigError(f"{where}: file_sources is for kind pypi or npm only")
    if "rules" in table and kind in _REGISTRY_KINDS:
        raise ConfigError(f"{where}: kind {kind} has fixed rules; remove 'rules'")
    public_url = table.get("public_url")
    if public_url is not None:
        if kind != "npm":
            raise ConfigError(f"{where}: public_url is for kind npm only")
        if not isinstance(public_url, str):
            raise ConfigError(f"{where}: public_url must be a URL")
        public_url = _checked(f"{where}: public_url", normalize_source, public_url)
    durations = {}
    for key in ("fresh_for", "stale_if_error", "negative_for"):
        if key in table:
            seconds = _checked(f"{where}: {key}", parse_duration, table[key])
            if not 0 <= seconds <= _REPOSITORY_DURATION_MAX:
                raise ConfigError(f"{where}: {key} must be between 0 and 36500 days")
            durations[key] = seconds
    offline = table.get("offline", False)
    if not isinstance(offline, bool):
        raise ConfigError(f"{where}: offline must be true or false")
    return RepositorySettings(
        name=name,
        prefix=prefix,
        kind=kind,
        sources=sources,
        file_sources=file_sources,
        public_url=public_url,
        offline=offline,
        rules=_rules(where, table.get("rules", [])),
        **durations,
    )


def _url_list(
    where: str, key: str, urls: Any, required: bool = False
) -> tuple[str, ...]:
    """A list of source URLs, each checked (``normalize_source``)."""
    if (
        not isinstance(urls, list)
        or (required and not urls)
        or not all(isinstance(url, str) for url in urls)
    ):
        needed = "a non-empty" if required else "a"
        raise ConfigError(f"{where}: {key} must be {needed} list of URLs")
    return tuple(
        _checked(f"{where}: {key}[{i}]", normalize_source, url)
        for i, url in enumerate(urls)
    )


def _rules(where: str, rules: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(rules, list):
        raise ConfigError(f"{where}: rules must be a list of {{match, policy}} tables")
    checked = []
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict) or set(rule) != {"match", "policy"}:
            raise ConfigError(
                f'{where}: rules[{i}] must be {{ match = "GLOB", policy = "..." }}'
            )
        glob, policy = rule["match"], rule["policy"]
        if policy not in POLICIES:
            raise ConfigError(
                f"{where}: rules[{i}]: policy must be one of {', '.join(POLICIES)}, "
                f"not {policy!r}"
            )
        try:
            compile_glob(glob if isinstance(glob, str) else "")
        except BadGlob as error:
            raise ConfigError(f"{where}: rules[{i}]: bad glob {error}") from None
        checked.append((glob, policy))
    return tuple(checked)


def _is_prefix(prefix: str) -> bool:
    if not (prefix.startswith("/") and prefix.endswith("/")):
        return False
    segments = [part for part in prefix.split("/") if part]
    if "//" in prefix:
        return False
    return all(
        not part.startswith(".")
        and "\\" not in part
        and not any(_is_control(char) or char.isspace() for char in part)
        for part in segments
    )


def _never_matched(prefix: str) -> str:
    """Why no request path could ever lie under ``prefix``, or "".

    A file below it is put through the very check every request path goes
    through (``store/paths.cache_key``), so the two cannot drift: a bidi
    control, a segment longer than a file name may be, a prefix that
    leaves no room for a file... The prefix is percent-encoded first, as a
    client would send it; ``%`` in it is then a literal character, as it
    is when requests are matched against it (decoded segments).
    """
    try:
        cache_key(urllib.parse.quote(prefix, safe="/") + "f")
    except PathRefused as refusal:
        return refusal.reason
    except UnicodeError:
        return "not UTF-8"
    return ""


def _check_repositories(repositories: tuple[RepositorySettings, ...]) -> None:
    """Names and prefixes are unique (the top-level sources are the
    repository "default" at "/")."""
    names: set[str] = set()
    prefixes: dict[str, str] = {}
    for repo in repositories:
        if repo.name in names:
            raise ConfigError(f"two repositories are named {repo.name!r}")
        names.add(repo.name)
        if repo.prefix in prefixes:
            raise ConfigError(
                f"repositories {prefixes[repo.prefix]!r} and {repo.name!r} "
                f"have the same prefix {repo.prefix!r}"
            )
        prefixes[repo.prefix] = repo.name
