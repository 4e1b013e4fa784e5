"""How a target is fetched and kept (its ``FetchPlan``): the same for a
client's miss and for a prefetch, so a prefetched file is checked and
stored exactly as a client's would be."""

from __future__ import annotations

from pkgcache.digests.book import DigestBook
from pkgcache.digests.values import Digest
from pkgcache.fetching.finishing import Rewrite, Verify
from pkgcache.fetching.plan import FetchPlan
from pkgcache.registries.targets import Target
from pkgcache.repositories.rules import PathRules, Policy
from pkgcache.store.meta import Validators


def plan_for(
    rules: PathRules,
    target: Target,
    digests: DigestBook,
    revalidating: Validators | None,
    learnt: tuple[Digest, ...] = (),
) -> FetchPlan:
    """The plan of a download of ``target`` under ``rules``. Digests an
    index named apply to immutable files only: a volatile file (an index
    itself) changes, and a digest learnt for it would pin it. ``learnt``:
    digests learnt for it before the download (a Maven sidecar's)."""
    document = target.document
    immutable = rules.policy is Policy.IMMUTABLE
    expected = (*(digests.get(target.key) if immutable else ()), *learnt)
    rewrite = document.rewrite if document else None
    return FetchPlan(
        route=target.route,
        request_headers=document.request_headers if document else (),
        finishing=(
            Verify(expected),
            *([Rewrite(rewrite)] if rewrite else []),
            *target.checks,
        ),
        revalidating=revalidating,
        record_validators=rules.policy is Policy.VOLATILE,
        keep=rules.policy is not Policy.PASS and not target.private,
        repository=rules.repository.name,
        negative_for=rules.repository.settings.negative_for,
        revalidate_by_head=document.revalidate_by_head if document else False,
        digest_folder=document.digest_folder if document else (),
    )
