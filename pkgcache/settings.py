"""Settings: what the daemon is told, and the one holder everything reads.

``Settings`` is a frozen, validated value (``config.py`` builds it from the
TOML file and the flags). ``LiveSettings`` holds the current one; SIGHUP
swaps it whole, so a request reads one consistent set, and nothing keeps a
copy of its own. Settings that only a restart can change are listed once,
in ``RESTART_ONLY``. This module imports nothing of the project.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

MIB = 1024 * 1024

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
EVERYONE: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("0.0.0.0/0"),
    ipaddress.ip_network("::/0"),
)
LOOPBACK: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)

#: Settings a running daemon cannot change: its sockets, its cache folder,
#: its log target, the curl client's pool and the HTTP server's timeout
#: are made once at start-up.
RESTART_ONLY = (
    "cache",
    "host",
    "port",
    "syslog",
    "upstream_connections",
    "idle_timeout",
)


@dataclass(frozen=True)
class RepositorySettings:
    """One ``[[repository]]``: requests under ``prefix`` go to ``sources``
    (the prefix replaced by each source URL in turn), by the rules of
    ``kind`` after the repository's own ``rules`` (``(glob, policy)``,
    first match wins). Durations are seconds; ``stale_if_error`` 0 is no
    limit."""

    name: str
    prefix: str
    sources: tuple[str, ...]
    kind: str = "generic"
    fresh_for: float = 60.0
    stale_if_error: float = 0.0
    negative_for: float = 30.0
    offline: bool = False
    rules: tuple[tuple[str, str], ...] = ()
    #: pypi and npm: the hosts the index's file links (PyPI) or the
    #: documents' tarball URLs (npm) point at, besides the sources.
    file_sources: tuple[str, ...] = ()
    #: npm: the URL clients reach the cache at, for the tarball URLs of
    #: the documents it serves; None: from each request's Host.
    public_url: str | None = None
    #: go: a checksum database's base URL, proxied and checked against.
    sumdb: str | None = None
    #: Seconds between prefetch passes; None: the top-level ``prefetch``.
    prefetch: float | None = None
    #: oci: the registry hosts (containerd's ``?ns=``) this repository
    #: answers for without its name in the path.
    hosts: tuple[str, ...] = ()
    #: oci: answers ``/v2/<image>/...`` with no namespace (dockerd's
    #: ``registry-mirrors``); at most one repository.
    default: bool = False
    #: oci: credentials for the upstream's token service (or Basic
    #: challenge); never logged or shown.
    username: str | None = dataclasses.field(default=None, repr=False)
    password: str | None = dataclasses.field(default=None, repr=False)

    @property
    def prefix_segments(self) -> tuple[str, ...]:
        """The prefix as path segments (``/debian/`` -> ``("debian",)``)."""
        return split_prefix(self.prefix)


def split_prefix(prefix: str) -> tuple[str, ...]:
    """A URL path prefix as its non-empty segments."""
    return tuple(part for part in prefix.split("/") if part)


@dataclass(frozen=True)
class Settings:
    """Everything the daemon needs to know, validated.

    Durations are seconds, sizes are bytes. A ``max_file_size`` of 0 means
    no limit.
    """

    sources: tuple[str, ...] = ()
    cache: str = "/tmp/package-cache"
    #: Addresses to listen on; "::" or "*" is every address, IPv4 and IPv6.
    host: tuple[str, ...] = ("localhost",)
    port: int = 4000
    verbose: int = 0
    syslog: bool = False
    connect_timeout: float = 10.0
    stall_timeout: float = 60.0
    upstream_connections: int = 250
    max_file_size: int = 0
    client_buffer: int = 4 * MIB
    ca_file: str = ""
    user_agent: str = ""
    #: Client networks that may use the cache; others get 403.
    allow: tuple[IPNetwork, ...] = EVERYONE
    #: Seconds in-flight responses get to finish after SIGTERM.
    shutdown_grace: float = 10.0
    #: Eviction bounds (0: none): cache bytes, free bytes, seconds unused.
    max_size: int = 0
    min_free: int = 0
    max_age: float = 0.0
    #: Seconds between eviction passes (when a bound is set).
    cull_interval: float = 3600.0
    #: Client networks that may read /.pkgcache/metrics and /status.
    status_allow: tuple[IPNetwork, ...] = LOOPBACK
    #: Seconds a client connection may sit idle (or crawl through its
    #: request headers) before it is closed.
    idle_timeout: float = 60.0
    #: Proxies whose X-Forwarded-For names the real client (none: ignore it).
    trusted_proxies: tuple[IPNetwork, ...] = ()
    #: The ``[[repository]]`` sections, in file order.
    repositories: tuple[RepositorySettings, ...] = ()
    #: Seconds between prefetch passes of a repository that says nothing
    #: itself (0: off), the bytes one pass may fetch per repository, how
    #: long a package nobody asked for is still followed, and how many
    #: newer versions of a package one pass fetches.
    prefetch: float = 0.0
    prefetch_budget: int = 2 * 1024 * MIB
    prefetch_unused_after: float = 30 * 86400.0
    prefetch_versions: int = 1

    @property
    def all_repositories(self) -> tuple[RepositorySettings, ...]:
        """The configured repositories, plus the top-level ``sources`` as
        package-cache 0.2's one repository: prefix "/", every file kept
        forever, no negative caching."""
        if not self.sources:
            return self.repositories
        default = RepositorySettings(
            name="default", prefix="/", sources=self.sources, negative_for=0.0
        )
        return (*self.repositories, default)

    def prefetch_interval(self, repository: RepositorySettings) -> float:
        """Seconds between ``repository``'s prefetch passes (0: none)."""
        if repository.prefetch is not None:
            return repository.prefetch
        return self.prefetch

    @property
    def evicts(self) -> bool:
        """True when any eviction bound is set."""
        return bool(self.max_size or self.min_free or self.max_age)


#: Hears ``(old, new)`` after every swap.
SettingsListener = Callable[[Settings, Settings], None]


class LiveSettings:
    """The current settings, swapped whole on reload.

    Readers take ``live.current`` when they need a value, never a copy kept
    from start-up; parts that hold state derived from settings (a timer, a
    log level) subscribe with ``on_change``.
    """

    def __init__(self, settings: Settings) -> None:
        self.current = settings
        self._listeners: list[SettingsListener] = []

    def on_change(self, listener: SettingsListener) -> None:
        self._listeners.append(listener)

    def swap(self, new: Settings) -> list[str]:
        """Make ``new`` current, keeping the running values of restart-only
        settings; returns the names of those that ``new`` wanted changed."""
        old = self.current
        ignored = [
            key for key in RESTART_ONLY if getattr(new, key) != getattr(old, key)
        ]
        if ignored:
            new = dataclasses.replace(
                new, **{key: getattr(old, key) for key in ignored}
            )
        self.current = new
        for listener in self._listeners:
            listener(old, new)
        return ignored


def display_source(url: str) -> str:
    """``url`` as it may be shown (logs, status pages, metric labels): the
    password in it, or a lone user name (a token), is replaced by ``***``,
    so credentials for a mirror never leave the config file."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not sep or not at or "/" in userinfo:
        return url
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}://{user}:***@{host}" if colon else f"{scheme}://***@{host}"
