"""The rules that govern a path, asked before hit or miss.

The handler (and the small-hit path) ask ``Repositories.rules_for(key)``
once per request, before looking in the cache, and act on the answer:
today every path has the same one, ``CACHED_FOREVER`` (package files are
immutable: the version is in the name). This is the seam for repositories
with their own rules (volatile index files revalidated after a while,
files passed through unstored): they return other ``PathRules`` here, and
the handler's hit, miss and join steps consult ``policy``.

Subclassing notes: override ``rules_for`` only; it must be pure (the same
key always gets the same rules until the next reload) and cheap, since it
runs on every request, small hits included.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pkgcache.store.paths import CacheKey


class Policy(enum.Enum):
    #: Kept forever once complete; a hit never asks upstream.
    IMMUTABLE = "immutable"


@dataclass(frozen=True, slots=True)
class PathRules:
    """What governs one path: the repository it belongs to and its policy."""

    repository: str
    policy: Policy


#: The one answer of a cache without repositories (package-cache 0.2's
#: behaviour): every file is kept forever.
CACHED_FOREVER = PathRules("generic", Policy.IMMUTABLE)


class Repositories:
    """Routes a path to the rules that govern it."""

    def rules_for(self, key: CacheKey) -> PathRules:
        """The rules for ``key``; see the subclassing notes above."""
        return CACHED_FOREVER
