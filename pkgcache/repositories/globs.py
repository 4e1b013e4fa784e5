"""Globs on the path below a repository's prefix (pure).

``*`` matches within one path segment, ``**`` across segments (a whole
segment of its own: ``**/Packages`` matches ``Packages`` and
``a/b/Packages``), ``?`` one character of a segment. Everything else
matches itself. A glob matches the whole path.
"""

from __future__ import annotations

import functools
import re


class BadGlob(ValueError):
    """A glob that cannot be read; the message says why."""


@functools.lru_cache(maxsize=512)
def compile_glob(glob: str) -> re.Pattern[str]:
    """The regular expression of ``glob``; raises ``BadGlob``."""
    if not glob or glob.startswith("/"):
        raise BadGlob(
            f"{glob!r}: a glob is a path below the prefix, without a leading /"
        )
    segments = glob.split("/")
    if any(segment == "" for segment in segments):
        raise BadGlob(f"{glob!r} has an empty segment")
    parts: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            parts.append(".*" if last else "(?:[^/]+/)*")
            continue
        if "**" in segment:
            raise BadGlob(f"{glob!r}: ** must be a whole segment")
        pattern = "".join(
            "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char)
            for char in segment
        )
        parts.append(pattern if last else pattern + "/")
    return re.compile("".join(parts))


def matches(glob: str, path: str) -> bool:
    """Does ``glob`` match the whole of ``path`` (below the prefix)?"""
    return compile_glob(glob).fullmatch(path) is not None
