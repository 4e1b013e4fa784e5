"""When a volatile copy may be served without asking upstream (pure).

A copy is fresh for ``fresh_for`` seconds after the upstream last gave or
confirmed it. A stale copy may still be served when every source fails,
for ``stale_if_error`` seconds past its freshness (0: no limit). A copy
with no record of its validators is stale: it is revalidated by a plain
request, never served as fresh on a guess.
"""

from __future__ import annotations

from pkgcache.settings import RepositorySettings
from pkgcache.store.meta import Validators


def is_fresh(
    validators: Validators | None, repository: RepositorySettings, now: float
) -> bool:
    return validators is not None and now - validators.confirmed < repository.fresh_for


def serve_without_asking(
    validators: Validators | None, repository: RepositorySettings, now: float
) -> bool:
    """May a cached volatile copy be answered without asking upstream?
    While fresh, or always in an ``offline`` repository."""
    return repository.offline or is_fresh(validators, repository, now)


def may_serve_stale(
    validators: Validators | None, repository: RepositorySettings, now: float
) -> bool:
    """May this stale copy be served because no source answered?"""
    if not repository.stale_if_error:
        return True
    if validators is None:
        return False
    stale_for = now - validators.confirmed - repository.fresh_for
    return stale_for <= repository.stale_if_error
