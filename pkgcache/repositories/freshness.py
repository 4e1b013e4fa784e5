"""When a volatile copy may be answered without asking upstream, and when
a stale one may still be (pure).

A copy is fresh for ``fresh_for`` seconds after the upstream last gave or
confirmed it. A stale copy may still be served when every source fails,
for ``stale_if_error`` seconds past its freshness (0: no limit). A copy
with no record of its validators is stale: it is revalidated by a plain
request, never served as fresh on a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

from pkgcache.settings import RepositorySettings
from pkgcache.store.meta import Validators


@dataclass(frozen=True)
class Freshness:
    """A repository's freshness policy; ``now`` is the caller's clock."""

    fresh_for: float
    stale_if_error: float

    @classmethod
    def of(cls, repository: RepositorySettings) -> Freshness:
        return cls(repository.fresh_for, repository.stale_if_error)

    def is_fresh(self, validators: Validators | None, now: float) -> bool:
        return validators is not None and now - validators.confirmed < self.fresh_for

    def may_serve_stale(self, validators: Validators | None, now: float) -> bool:
        """May this stale copy be served because no source answered?"""
        if not self.stale_if_error:
            return True
        if validators is None:
            return False
        stale_for = now - validators.confirmed - self.fresh_for
        return stale_for <= self.stale_if_error
