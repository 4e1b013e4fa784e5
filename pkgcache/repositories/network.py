"""Whether a repository may ask its sources at all: its network mode."""

from __future__ import annotations

import enum

from pkgcache.settings import RepositorySettings


class NetworkMode(enum.Enum):
    """``ONLINE``: misses are fetched and stale copies revalidated.
    ``OFFLINE`` (``offline = true``): no source is ever asked, for a file,
    a page, a revalidation or a pass-through; what is stored is answered
    as it is, anything else is a 504."""

    ONLINE = "online"
    OFFLINE = "offline"

    @classmethod
    def of(cls, repository: RepositorySettings) -> NetworkMode:
        return cls.OFFLINE if repository.offline else cls.ONLINE
