"""The ``[[repository]]`` tables of the configuration, checked into
``RepositorySettings``: names, prefixes (refused when no request path
could lie under them), kinds, sources and rules."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from pkgcache.configvalues import (
    DAY,
    ConfigError,
    checked,
    is_control,
    normalize_source,
    parse_duration,
)
from pkgcache.repositories.globs import BadGlob, compile_glob
from pkgcache.repositories.presets import POLICIES, PRESETS
from pkgcache.settings import RepositorySettings, split_prefix
from pkgcache.store.paths import PathRefused, cache_key

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
    "sumdb",
    "prefetch",
    "hosts",
    "default",
    "username",
    "password",
)
#: Keys only an ``oci`` repository takes.
_OCI_KEYS = ("hosts", "default", "username", "password")
#: Kinds whose indexes name newer versions of what clients downloaded
#: (``prefetch/``): the others have nothing to prefetch from.
PREFETCH_KINDS = (
    "debian",
    "arch",
    "rpm",
    "alpine",
    "pypi",
    "npm",
    "go",
    "cargo",
    "maven",
    "oci",
)
#: Kinds whose paths are a registry's API, not files (``registries/``):
#: their own rules decide, and ``rules`` are refused.
_REGISTRY_KINDS = ("pypi", "npm", "go", "cargo", "oci")
_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?")
_REPOSITORY_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
#: A repository's durations may be 0 (fresh_for 0: revalidate every time).
_REPOSITORY_DURATION_MAX = 36500 * DAY


def repository(index: int, table: Any) -> RepositorySettings:
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
    kind = table.get("kind", "generic")
    if kind == "oci":
        if "prefix" in table:
            raise ConfigError(
                f"{where}: kind oci has no prefix: its clients ask /v2/{name}/"
            )
        table = {**table, "prefix": f"/v2/{name}/"}
    else:
        for key in _OCI_KEYS:
            if key in table:
                raise ConfigError(f"{where}: {key} is for kind oci only")
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
    if kind not in PRESETS:
        raise ConfigError(
            f"{where}: kind must be one of {', '.join(PRESETS)}, not {kind!r}"
        )
    sources = _url_list(where, "sources", table.get("sources"), required=True)
    file_sources = _url_list(where, "file_sources", table.get("file_sources", []))
    if file_sources and kind not in ("pypi", "npm", "cargo"):
        raise ConfigError(f"{where}: file_sources is for kind pypi, npm or cargo only")
    if kind == "cargo" and not file_sources:
        raise ConfigError(
            f"{where}: kind cargo needs file_sources: the upstream config.json's dl"
        )
    if "rules" in table and kind in _REGISTRY_KINDS:
        raise ConfigError(f"{where}: kind {kind} has fixed rules; remove 'rules'")
    public_url = table.get("public_url")
    if public_url is not None:
        if kind not in ("npm", "cargo"):
            raise ConfigError(f"{where}: public_url is for kind npm or cargo only")
        if not isinstance(public_url, str):
            raise ConfigError(f"{where}: public_url must be a URL")
        public_url = checked(f"{where}: public_url", normalize_source, public_url)
    sumdb = table.get("sumdb")
    if sumdb is not None:
        if kind != "go":
            raise ConfigError(f"{where}: sumdb is for kind go only")
        if not isinstance(sumdb, str):
            raise ConfigError(f"{where}: sumdb must be a URL")
        sumdb = checked(f"{where}: sumdb", normalize_source, sumdb)
    durations = {}
    for key in ("fresh_for", "stale_if_error", "negative_for"):
        if key in table:
            seconds = checked(f"{where}: {key}", parse_duration, table[key])
            if not 0 <= seconds <= _REPOSITORY_DURATION_MAX:
                raise ConfigError(f"{where}: {key} must be between 0 and 36500 days")
            durations[key] = seconds
    offline = table.get("offline", False)
    if not isinstance(offline, bool):
        raise ConfigError(f"{where}: offline must be true or false")
    prefetch = None
    if "prefetch" in table:
        prefetch = checked(f"{where}: prefetch", parse_duration, table["prefetch"])
        if not (prefetch == 0 or 1 <= prefetch <= 30 * DAY):
            raise ConfigError(f"{where}: prefetch must be 0 (off) or 1s to 30 days")
        if prefetch and kind not in PREFETCH_KINDS:
            raise ConfigError(
                f"{where}: kind {kind} has no indexes to prefetch from; prefetch "
                f"is for kinds {', '.join(PREFETCH_KINDS)}"
            )
    oci = _oci_settings(where, table) if kind == "oci" else {}
    return RepositorySettings(
        name=name,
        prefix=prefix,
        kind=kind,
        sources=sources,
        file_sources=file_sources,
        public_url=public_url,
        sumdb=sumdb,
        offline=offline,
        prefetch=prefetch,
        rules=_rules(where, table.get("rules", [])),
        **durations,
        **oci,
    )


def _oci_settings(where: str, table: dict[str, Any]) -> dict[str, Any]:
    """An oci repository's own keys: ``hosts`` (registry host names, as
    containerd's ``ns=`` gives them), ``default``, ``username`` and
    ``password`` (both or neither)."""
    hosts = table.get("hosts", [])
    if not isinstance(hosts, list) or not all(
        isinstance(host, str) and _HOST_NAME.fullmatch(host) for host in hosts
    ):
        raise ConfigError(f"{where}: hosts must be a list of host names (host[:port])")
    default = table.get("default", False)
    if not isinstance(default, bool):
        raise ConfigError(f"{where}: default must be true or false")
    username, password = table.get("username"), table.get("password")
    for key, value in (("username", username), ("password", password)):
        if value is not None and (
            not isinstance(value, str)
            or not value
            or any(is_control(char) for char in value)
        ):
            raise ConfigError(f"{where}: {key} must be a non-empty string")
    if (username is None) != (password is None):
        raise ConfigError(f"{where}: give both username and password, or neither")
    return {
        "hosts": tuple(host.lower() for host in hosts),
        "default": default,
        "username": username,
        "password": password,
    }


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
        checked(f"{where}: {key}[{i}]", normalize_source, url)
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
    segments = split_prefix(prefix)
    if "//" in prefix:
        return False
    return all(
        not part.startswith(".")
        and "\\" not in part
        and not any(is_control(char) or char.isspace() for char in part)
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


def check_repositories(repositories: tuple[RepositorySettings, ...]) -> None:
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
    defaults = [repo.name for repo in repositories if repo.default]
    if len(defaults) > 1:
        raise ConfigError(
            f"repositories {' and '.join(map(repr, defaults))} are both default:"
            " at most one oci repository may be"
        )
    hosts: dict[str, str] = {}
    for repo in repositories:
        for host in repo.hosts:
            if host in hosts:
                raise ConfigError(
                    f"repositories {hosts[host]!r} and {repo.name!r} both answer"
                    f" for host {host!r}"
                )
            hosts[host] = repo.name
