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

Memory: an HTML page is rewritten as it is parsed, each anchor written
out when found, so a page costs a few times its size whatever it holds
(a page of newlines, of a million anchors). A JSON page is parsed whole,
which can cost many times its size; no page larger than
``MAX_PAGE_SIZE`` is rewritten at all.
"""

from __future__ import annotations

import html
import html.parser
import io
import json
import re
import urllib.parse
from collections.abc import Callable

from pkgcache.digests.values import Digest, from_hex
from pkgcache.registries.links import Bases
from pkgcache.store.paths import CacheKey, PathRefused, request_path

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
LEGACY_HTML_TYPE = "text/html"

#: The largest page rewritten, in bytes: a larger one is refused (its
#: download fails: 502, or the stale copy while ``stale_if_error`` allows).
#: The largest project pages of pypi.org are tens of megabytes.
MAX_PAGE_SIZE = 64 * 1024 * 1024

#: The href attribute inside one start tag's text, however quoted.
_HREF = re.compile(r"""(\shref\s*=\s*)("[^"]*"|'[^']*'|[^\s"'=<>`]+)""", re.IGNORECASE)


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in (JSON_TYPE, "application/json")


def rewrite_page(
    body: bytes, content_type: str | None, page_url: str, bases: Bases
) -> bytes:
    """The page with its file links made cache paths; ValueError when it
    is not a page of the format its Content-Type names, or is larger than
    ``MAX_PAGE_SIZE``."""
    if len(body) > MAX_PAGE_SIZE:
        raise ValueError(
            f"the page has {len(body)} bytes, more than the {MAX_PAGE_SIZE}"
            " a page may have (MAX_PAGE_SIZE)"
        )
    if is_json(content_type):
        return rewrite_json(body, page_url, bases)
    return rewrite_html(body, page_url, bases)


def rewrite_json(body: bytes, page_url: str, bases: Bases) -> bytes:
    try:
        page = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not JSON: {error}") from None
    except RecursionError:
        raise ValueError("JSON nested too deep") from None
    if not isinstance(page, dict) or not isinstance(page.get("files", []), list):
        raise ValueError("not a PEP 691 project page")
    for file in page.get("files", []):
        if isinstance(file, dict) and isinstance(file.get("url"), str):
            absolute = urllib.parse.urljoin(page_url, file["url"])
            rewritten = bases.rewrite(absolute)
            if rewritten is not None:
                file["url"] = rewritten
    try:
        return json.dumps(page, separators=(",", ":")).encode()
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


def rewrite_html(body: bytes, page_url: str, bases: Bases) -> bytes:
    # surrogateescape: bytes that are not UTF-8 come back out unchanged.
    text = body.decode("utf-8", "surrogateescape")
    lines = _LineStarts(text)
    out = io.BytesIO()
    at = 0

    def anchor(
        position: tuple[int, int], tag_text: str, href: str, _attributes: object
    ) -> None:
        nonlocal at
        line_start = lines.start_of(position[0])
        if line_start is None:
            return
        start = line_start + position[1]
        if start < at or text[start : start + len(tag_text)] != tag_text:
            return  # the parser's position is not the tag: leave it
        rewritten = bases.rewrite(urllib.parse.urljoin(finder.base, href))
        if rewritten is None:
            return
        quoted = '"' + html.escape(rewritten) + '"'
        new_tag = _HREF.sub(
            lambda match: str(match.group(1)) + quoted, tag_text, count=1
        )
        out.write(text[at:start].encode("utf-8", "surrogateescape"))
        out.write(new_tag.encode("utf-8", "surrogateescape"))
        at = start + len(tag_text)

    finder = _AnchorFinder(page_url, anchor)
    try:
        finder.feed(text)
        finder.close()
    except (AssertionError, ValueError) as error:
        raise ValueError(f"not an HTML page: {error}") from None
    out.write(text[at:].encode("utf-8", "surrogateescape"))
    return out.getvalue()


class _LineStarts:
    """Where each line of a text starts, for lines asked for in order
    (an HTML parser's positions only move on): newlines are counted in
    spans that grow, and shrink near the line, so the memory is constant
    and the time a few passes over the text, however many lines it has."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.line = 1
        self.start = 0

    def start_of(self, line: int) -> int | None:
        """The offset where ``line`` (1-based) starts; None for a line
        before the last one asked for, or past the end."""
        text = self.text
        left = line - self.line
        position = self.start
        if left < 0:
            return None
        step = 4096
        while left > 0:
            end = min(position + step, len(text))
            count = text.count("\n", position, end)
            if count < left:
                if end == len(text):
                    return None
                left -= count
                position = end
                step *= 2
            elif count == left:
                position = text.rindex("\n", position, end) + 1
                left = 0
            else:
                step = max(1, (end - position) // 2)
        self.line, self.start = line, position
        return position


#: Told of each ``<a href>``: its position (line, column), its raw start
#: tag, its href and its attributes (decoded).
OnAnchor = Callable[[tuple[int, int], str, str, dict[str, str]], None]


class _AnchorFinder(html.parser.HTMLParser):
    """Tells ``on_anchor`` of each ``<a href>`` as it is parsed (nothing
    is collected), and keeps the page's ``<base href>`` (links resolve
    against it)."""

    def __init__(self, page_url: str, on_anchor: OnAnchor) -> None:
        super().__init__(convert_charrefs=True)
        self.base = page_url
        self.on_anchor = on_anchor

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if href is None:
            return
        if tag == "base":
            self.base = urllib.parse.urljoin(self.base, href)
        elif tag == "a":
            raw = self.get_starttag_text()
            if raw is not None:
                self.on_anchor(
                    self.getpos(),
                    raw,
                    href,
                    {name: value for name, value in attrs if value is not None},
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
    found: list[tuple[CacheKey, tuple[Digest, ...]]] = []

    def entry(url: str, hashes: dict[str, object], metadata: dict[str, object]) -> None:
        url = url.split("#", 1)[0]
        if not url.startswith(prefix):
            return
        try:
            key = request_path(url).key
        except PathRefused:
            return
        for target, listed in ((key, hashes), (_metadata_key(key), metadata)):
            digests = tuple(
                digest
                for algorithm, value in listed.items()
                if isinstance(value, str)
                and (digest := from_hex(algorithm, value)) is not None
            )
            if digests:
                found.append((target, digests))

    if is_json(content_type):
        try:
            parsed = json.loads(page)
        except (ValueError, RecursionError):
            return []
        files = parsed.get("files") if isinstance(parsed, dict) else None
        for file in files if isinstance(files, list) else []:
            if not isinstance(file, dict) or not isinstance(file.get("url"), str):
                continue
            hashes = file.get("hashes")
            metadata = file.get("core-metadata", file.get("dist-info-metadata"))
            entry(
                file["url"],
                hashes if isinstance(hashes, dict) else {},
                metadata if isinstance(metadata, dict) else {},
            )
        return found

    def anchor(
        _position: tuple[int, int], _raw: str, href: str, attributes: dict[str, str]
    ) -> None:
        _url, _, fragment = href.partition("#")
        hashes = dict([fragment.split("=", 1)]) if "=" in fragment else {}
        metadata_value = attributes.get(
            "data-core-metadata", attributes.get("data-dist-info-metadata")
        )
        metadata = (
            dict([metadata_value.split("=", 1)])
            if metadata_value and "=" in metadata_value
            else {}
        )
        entry(href, dict(hashes), dict(metadata))

    finder = _AnchorFinder("", anchor)
    try:
        finder.feed(page.decode("utf-8", "surrogateescape"))
        finder.close()
    except (AssertionError, ValueError):
        return []
    return found


def _metadata_key(key: CacheKey) -> CacheKey:
    return CacheKey((*key.segments[:-1], key.segments[-1] + ".metadata"))
