"""A container registry's authorization, as its 401s ask for it: the
Bearer token flow of Docker Hub and the distribution registry's token
server, and Basic challenges.

``RegistryTokens`` is the ``fetching.auth.Authorizer`` of one ``oci``
repository. A 401 with ``WWW-Authenticate: Bearer realm=..., service=...,
scope=...`` is answered by asking the realm for a token (anonymously, or
with the repository's credentials as Basic), which is then kept per
(realm, service, scope) until it expires and sent with every later request
for that image, so a pull asks for one token, not one per blob. Requests
that meet the same challenge while its token is being fetched wait for
that one request. A ``Basic`` challenge is answered with the credentials,
once per host: a second 401 means they were refused.

Tokens and credentials are never logged: they go only into request
headers, which ``observe/redact.py`` hides in debug output.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from pkgcache.fetching.auth import SmallResponse
from pkgcache.settings import display_source

log = logging.getLogger("pkgcache.upstream")

#: Seconds a token lives when its response does not say (the token
#: specification's default).
DEFAULT_EXPIRY = 60.0
#: A token is renewed this many seconds before it expires, so a request
#: does not leave with one that lapses on the way.
EXPIRY_MARGIN = 5.0
#: A token fetched this recently is reused for a 401 that raced it (the
#: request left before the token arrived) instead of asking again.
FRESH_TOKEN = 2.0
#: Tokens kept at most (one per image pulled); the oldest go first.
MAX_TOKENS = 4096

TokenFetch = Callable[[str, Mapping[str, str]], Awaitable[SmallResponse]]

_PARAMETER = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"([^"]*)"|([^\s,]*))')
_IMAGE = re.compile(r"/v2/(.+?)/(?:manifests|blobs|tags)/")


@dataclass(frozen=True)
class _Token:
    header: str
    expires: float
    fetched: float


def parse_challenge(challenge: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="x",scope="y"`` -> ``("bearer", {"realm": "x", ...})``."""
    scheme, _, rest = challenge.strip().partition(" ")
    parameters = {
        match.group(1).lower(): match.group(2)
        if match.group(2) is not None
        else match.group(3)
        for match in _PARAMETER.finditer(rest)
    }
    return scheme.lower(), parameters


def image_of(url: str) -> str | None:
    """The image a registry API URL is about (``library/alpine``)."""
    match = _IMAGE.search(urllib.parse.urlsplit(url).path)
    return match.group(1) if match else None


class RegistryTokens:
    """Tokens and Basic credentials for one repository's sources."""

    def __init__(
        self,
        fetch: TokenFetch,
        username: str | None = None,
        password: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``fetch(url, headers)``: a small GET (``fetching.auth.fetch_small``)."""
        self._fetch = fetch
        self._basic = (
            "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
            if username is not None and password is not None
            else None
        )
        self._monotonic = monotonic
        self._tokens: dict[tuple[str, str, str], _Token] = {}
        #: (origin, image) -> the token key its last challenge named.
        self._images: dict[tuple[str, str], tuple[str, str, str]] = {}
        self._basic_origins: set[str] = set()
        self._pending: dict[tuple[str, str, str], asyncio.Future[bool]] = {}
        #: Token requests made (for the logs and tests).
        self.requests = 0

    def headers(self, url: str) -> dict[str, str]:
        origin = _origin(url)
        image = image_of(url)
        key = self._images.get((origin, image)) if image else None
        token = self._tokens.get(key) if key else None
        if token is not None and token.expires > self._monotonic():
            return {"Authorization": token.header}
        if self._basic is not None and origin in self._basic_origins:
            return {"Authorization": self._basic}
        return {}

    async def challenged(self, url: str, challenge: str) -> bool:
        scheme, parameters = parse_challenge(challenge)
        if scheme == "basic":
            origin = _origin(url)
            if self._basic is None or origin in self._basic_origins:
                return False
            self._basic_origins.add(origin)
            return True
        if scheme != "bearer":
            return False
        realm = parameters.get("realm", "")
        if urllib.parse.urlsplit(realm).scheme not in ("http", "https"):
            log.warning("%s: a Bearer challenge without a usable realm", url)
            return False
        image = image_of(url)
        scope = parameters.get("scope") or (f"repository:{image}:pull" if image else "")
        key = (realm, parameters.get("service", ""), scope)
        if image:
            if len(self._images) >= MAX_TOKENS:
                self._images.clear()  # only a token sent ahead is lost
            self._images[(_origin(url), image)] = key
        token = self._tokens.get(key)
        now = self._monotonic()
        if token is not None and now - token.fetched < FRESH_TOKEN:
            return True
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._get_token(key))
            self._pending[key] = pending
            pending.add_done_callback(lambda _done: self._pending.pop(key, None))
        return await asyncio.shield(pending)

    async def _get_token(self, key: tuple[str, str, str]) -> bool:
        realm, service, scope = key
        query = urllib.parse.urlencode(
            [
                (name, value)
                for name, value in (("service", service), ("scope", scope))
                if value
            ]
        )
        url = realm + ("&" if "?" in realm else "?") + query if query else realm
        headers = {"Accept": "application/json"}
        if self._basic is not None:
            headers["Authorization"] = self._basic
        self.requests += 1
        response = await self._fetch(url, headers)
        where = display_source(realm)
        if response.error or response.status != 200:
            log.warning(
                "token for %s from %s: %s",
                scope or "-",
                where,
                response.error or f"HTTP {response.status}",
            )
            return False
        try:
            document = json.loads(response.body)
            value = document.get("token") or document.get("access_token")
            expires_in = float(document.get("expires_in") or DEFAULT_EXPIRY)
        except (ValueError, TypeError, AttributeError):
            value, expires_in = None, 0.0
        if not isinstance(value, str) or not value or not value.isprintable():
            log.warning("token for %s from %s: no token in the answer", scope, where)
            return False
        now = self._monotonic()
        lifetime = max(expires_in - EXPIRY_MARGIN, 1.0)
        if len(self._tokens) >= MAX_TOKENS:
            del self._tokens[next(iter(self._tokens))]
        self._tokens[key] = _Token(f"Bearer {value}", now + lifetime, now)
        log.info("token for %s from %s: for %.0f s", scope or "-", where, lifetime)
        return True


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
