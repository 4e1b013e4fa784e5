"""Which repository a path belongs to, and the rules that govern it.

The handler (and the small-hit path) ask ``Repositories.rules_for(key)``
once per request, before looking in the cache: the repository with the
longest prefix that the path lies under, and the policy of the path
within it (the repository's own ``rules`` first, then its kind's preset,
else immutable). No repository: None, and the request is answered 404.

- ``immutable``: kept forever once complete; a hit never asks upstream.
- ``volatile``: kept, and revalidated with a conditional request once
  older than the repository's ``fresh_for``.
- ``pass``: streamed from upstream and never stored.

Pure: the same key always gets the same rules until the next reload,
which builds a new ``Repositories`` from the new settings.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pkgcache.repositories.freshness import Freshness
from pkgcache.repositories.globs import compile_glob
from pkgcache.repositories.network import NetworkMode
from pkgcache.repositories.presets import PRESETS
from pkgcache.settings import RepositorySettings
from pkgcache.store.paths import CacheKey

#: Paths whose policy is remembered; forgotten all at once past this.
POLICIES_REMEMBERED = 100_000


class Policy(enum.Enum):
    IMMUTABLE = "immutable"
    VOLATILE = "volatile"
    PASS = "pass"


@dataclass(frozen=True)
class Repository:
    """One repository's settings with its prefix as path segments."""

    settings: RepositorySettings
    prefix: tuple[str, ...]
    #: Its policies, made once per (re)load rather than per request.
    freshness: Freshness
    mode: NetworkMode

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def sources(self) -> tuple[str, ...]:
        return self.settings.sources

    @classmethod
    def of(cls, settings: RepositorySettings) -> Repository:
        return cls(
            settings,
            settings.prefix_segments,
            Freshness.of(settings),
            NetworkMode.of(settings),
        )


@dataclass(frozen=True, slots=True)
class PathRules:
    """What governs one path: its repository, its policy, and its path
    below the prefix."""

    repository: Repository
    policy: Policy
    below: CacheKey

    @property
    def upstream_path(self) -> str:
        """The path to append to each source URL, percent-encoded again."""
        return self.below.url_path


class Repositories:
    """Routes a path to its repository and policy."""

    def __init__(self, repositories: tuple[RepositorySettings, ...] = ()) -> None:
        self.update(repositories)

    def update(self, repositories: tuple[RepositorySettings, ...]) -> None:
        """Use these repositories from the next request on (a reload)."""
        built = [Repository.of(settings) for settings in repositories]
        self._policies: dict[tuple[str, CacheKey], Policy] = {}
        #: Longest prefix first: the first that fits is the longest.
        self.repositories = sorted(built, key=lambda repo: -len(repo.prefix))
        self._rules = {
            repo.name: [
                (compile_glob(glob), Policy(policy))
                for glob, policy in (*repo.settings.rules, *PRESETS[repo.settings.kind])
            ]
            for repo in built
        }

    def rules_for(self, key: CacheKey) -> PathRules | None:
        """The rules for ``key``, or None when no repository serves it."""
        segments = key.segments
        for repo in self.repositories:
            depth = len(repo.prefix)
            if len(segments) > depth and segments[:depth] == repo.prefix:
                below = CacheKey(segments[depth:]) if depth else key
                return PathRules(repo, self._policy(repo, below), below)
        return None

    def _policy(self, repo: Repository, below: CacheKey) -> Policy:
        """First matching rule; remembered per path, since every request
        asks and a preset has a few dozen globs."""
        rules = self._rules[repo.name]
        if not rules:
            return Policy.IMMUTABLE
        remembered = self._policies.get((repo.name, below))
        if remembered is not None:
            return remembered
        path = below.relative
        found = next(
            (policy for pattern, policy in rules if pattern.fullmatch(path)),
            Policy.IMMUTABLE,
        )
        if len(self._policies) >= POLICIES_REMEMBERED:
            self._policies.clear()
        self._policies[(repo.name, below)] = found
        return found
