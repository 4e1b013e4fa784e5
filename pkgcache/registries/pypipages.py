"""Rewrite a PyPI simple project page so its file links point into the
cache (PEP 503 HTML and PEP 691 JSON).

Pure: bytes in, bytes out. Only the ``href`` of each ``<a>`` (HTML) or the
``url`` of each file (JSON) changes, and only where ``Bases`` takes the
link; everything else is kept byte for byte in HTML (fragments such as
``#sha256=``, ``data-requires-python``, ``data-yanked``,
``data-dist-info-metadata``/``data-core-metadata``) and value for value in
JSON (``hashes``, ``requires-python``, ``core-metadata``, ``yanked``,
``meta``). Relative links are resolved against the page's own URL first,
so they stay right whatever URL a client uses for the cache.
"""

from __future__ import annotations

import html
import html.parser
import json
import re
import urllib.parse

from pkgcache.digests.values import Digest, from_hex
from pkgcache.registries.links import Bases
from pkgcache.store.paths import CacheKey, PathRefused, request_path

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
LEGACY_HTML_TYPE = "text/html"

#: The href attribute inside one start tag's text, however quoted.
_HREF = re.compile(r"""(\shref\s*=\s*)("[^"]*"|'[^']*'|[^\s"'=<>`]+)""", re.IGNORECASE)


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in (JSON_TYPE, "application/json")


def rewrite_page(
    body: bytes, content_type: str | None, page_url: str, bases: Bases
) -> bytes:
    """The page with its file links made cache paths; ValueError when it
    is not a page of the format its Content-Type names."""
    if is_json(content_type):
        return rewrite_json(body, page_url, bases)
    return rewrite_html(body, page_url, bases)


def rewrite_json(body: bytes, page_url: str, bases: Bases) -> bytes:
    try:
        page = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(page, dict) or not isinstance(page.get("files", []), list):
        raise ValueError("not a PEP 691 project page")
    for file in page.get("files", []):
        if isinstance(file, dict) and isinstance(file.get("url"), str):
            absolute = urllib.parse.urljoin(page_url, file["url"])
            rewritten = bases.rewrite(absolute)
            if rewritten is not None:
                file["url"] = rewritten
    return json.dumps(page, separators=(",", ":")).encode()


def rewrite_html(body: bytes, page_url: str, bases: Bases) -> bytes:
    # surrogateescape: bytes that are not UTF-8 come back out unchanged.
    text = body.decode("utf-8", "surrogateescape")
    finder = _AnchorFinder(page_url)
    try:
        finder.feed(text)
        finder.close()
    except (AssertionError, ValueError) as error:
        raise ValueError(f"not an HTML page: {error}") from None
    line_starts = [0]
    for match in re.finditer("\n", text):
        line_starts.append(match.end())
    pieces = []
    at = 0
    for (line, column), tag_text, href in finder.anchors:
        start = line_starts[line - 1] + column
        if text[start : start + len(tag_text)] != tag_text:
            continue  # the parser's position is not the tag: leave it
        rewritten = bases.rewrite(urllib.parse.urljoin(finder.base, href))
        if rewritten is None:
            continue
        quoted = '"' + html.escape(rewritten) + '"'
        new_tag = _HREF.sub(
            lambda match, value=quoted: match.group(1) + value, tag_text, count=1
        )
        pieces.append(text[at:start])
        pieces.append(new_tag)
        at = start + len(tag_text)
    pieces.append(text[at:])
    return "".join(pieces).encode("utf-8", "surrogateescape")


class _AnchorFinder(html.parser.HTMLParser):
    """Collects each ``<a href>`` with its position and raw tag text, and
    the page's ``<base href>`` (links resolve against it)."""

    def __init__(self, page_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = page_url
        self.anchors: list[tuple[tuple[int, int], str, str]] = []
        #: Each anchor's attributes, decoded.
        self.attributes: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if href is None:
            return
        if tag == "base":
            self.base = urllib.parse.urljoin(self.base, href)
        elif tag == "a":
            raw = self.get_starttag_text()
            if raw is not None:
                self.anchors.append((self.getpos(), raw, href))
                self.attributes.append(
                    {name: value for name, value in attrs if value is not None}
                )

    handle_startendtag = handle_starttag


def page_digests(
    page: bytes, content_type: str | None, prefix: str
) -> list[tuple[CacheKey, tuple[Digest, ...]]]:
    """What a rewritten page says its files hash to: each link under
    ``prefix`` with its ``#<algorithm>=<hex>`` fragment (HTML) or
    ``hashes`` (JSON), and each file's ``.metadata`` with its
    ``data-core-metadata`` / ``core-metadata``. Malformed parts are
    skipped: a page that names no digest names none."""
    entries: list[tuple[str, dict[str, str], dict[str, str]]] = []
    if is_json(content_type):
        try:
            parsed = json.loads(page)
        except ValueError:
            return []
        files = parsed.get("files") if isinstance(parsed, dict) else None
        for file in files if isinstance(files, list) else []:
            if not isinstance(file, dict) or not isinstance(file.get("url"), str):
                continue
            hashes = file.get("hashes") if isinstance(file.get("hashes"), dict) else {}
            metadata = file.get("core-metadata", file.get("dist-info-metadata"))
            entries.append(
                (file["url"], hashes, metadata if isinstance(metadata, dict) else {})
            )
    else:
        finder = _AnchorFinder("")
        try:
            finder.feed(page.decode("utf-8", "surrogateescape"))
            finder.close()
        except (AssertionError, ValueError):
            return []
        for (_position, _raw, href), attributes in zip(
            finder.anchors, finder.attributes, strict=True
        ):
            url, _, fragment = href.partition("#")
            hashes = dict([fragment.split("=", 1)]) if "=" in fragment else {}
            metadata_value = attributes.get(
                "data-core-metadata", attributes.get("data-dist-info-metadata")
            )
            metadata = (
                dict([metadata_value.split("=", 1)])
                if metadata_value and "=" in metadata_value
                else {}
            )
            entries.append((url, hashes, metadata))
    found = []
    for url, hashes, metadata in entries:
        url = url.split("#", 1)[0]
        if not url.startswith(prefix):
            continue
        try:
            key = request_path(url).key
        except PathRefused:
            continue
        for target, listed in ((key, hashes), (_metadata_key(key), metadata)):
            digests = tuple(
                digest
                for algorithm, value in listed.items()
                if isinstance(value, str)
                and (digest := from_hex(algorithm, value)) is not None
            )
            if digests:
                found.append((target, digests))
    return found


def _metadata_key(key: CacheKey) -> CacheKey:
    return CacheKey((*key.segments[:-1], key.segments[-1] + ".metadata"))
