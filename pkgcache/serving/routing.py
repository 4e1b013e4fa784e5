"""Where a request goes: its path checked (``store/paths``), the
repository and policy that govern it (``repositories/``), and, for a
registry, what its front makes of it (``registries/``). Pure but for the
settings it reads: the handler acts on the answer."""

from __future__ import annotations

from dataclasses import dataclass

from tornado.httputil import HTTPServerRequest

from pkgcache.fetching.upstream import Route
from pkgcache.registries.targets import Redirect, Refusal, Reply, Target
from pkgcache.repositories.rules import PathRules
from pkgcache.serving.clients import public_base
from pkgcache.serving.context import ServingContext
from pkgcache.store.paths import PathRefused, request_path


@dataclass(frozen=True)
class Unrouted(Refusal):
    """A 404: no repository's prefix holds the path. The handler names the
    configured prefixes to clients in ``status_allow``."""


@dataclass(frozen=True)
class Routed:
    """The rules of the request's path (policy as its target says) and
    what to serve: a target, a redirect or a refusal."""

    rules: PathRules
    answer: Target | Redirect | Refusal | Reply


def route(context: ServingContext, request: HTTPServerRequest) -> Routed | Refusal:
    """A ``Refusal`` when no repository can serve the path at all."""
    uri = request.uri or "/"
    try:
        path = request_path(uri)
    except PathRefused as refused:
        return Refusal(refused.status, refused.reason)
    query = "?" + uri.split("?", 1)[1].split("#", 1)[0] if "?" in uri else ""
    path = context.fronts.namespaced(path, query, context.repositories.repositories)
    rules = context.repositories.rules_for(path.key)
    if rules is None:
        return Unrouted(404, f"no repository serves {path.key}")
    settings = rules.repository.settings
    trusted = context.live.current.trusted_proxies

    def base() -> str | None:
        return settings.public_url or public_base(request, trusted)

    answer = context.fronts.resolve(
        rules.repository, path, request.headers, query, base
    )
    if answer is None:
        if path.folder:
            return Routed(rules, Refusal(404, "directories are not served"))
        answer = Target(
            path.key, rules.policy, Route(rules.repository.sources, rules.upstream_path)
        )
    if isinstance(answer, Target):
        rules = PathRules(rules.repository, answer.policy, rules.below)
    return Routed(rules, answer)
