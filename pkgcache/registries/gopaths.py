"""Pure: Go module paths and versions as the GOPROXY protocol writes them.

A module path travels case-encoded (``!x`` for ``X``, so that it can be
a file name on a case-insensitive disk) and must be a valid module path
(``golang.org/x/mod/module.CheckPath``: a dotted lower-case first
element, safe characters, no Windows device names, a well-formed major
version suffix). Versions travel case-encoded too; a canonical one
(``v1.2.3``, ``v1.2.3-pre.1``, a pseudo-version, ``+incompatible``)
names bytes that never change, anything else (``master``, ``v1``) is a
query whose answer moves. Checks return the decoded value or None: a
path that is not one is refused before any source is asked.
"""

from __future__ import annotations

import re

_WINDOWS_NAMES = frozenset(
    (
        "con",
        "prn",
        "aux",
        "nul",
        *(f"{device}{n}" for device in ("com", "lpt") for n in range(1, 10)),
    )
)
_MODULE_CHARS = re.compile(r"[A-Za-z0-9._~-]+")
_FIRST_ELEMENT_CHARS = re.compile(r"[a-z0-9.-]+")
_FILE_CHARS = re.compile(r"[A-Za-z0-9!#$%&()+,\-.=@\[\]^_{}~ ]+")
_NUMBER = r"(?:0|[1-9][0-9]*)"
_IDENTIFIER = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_CANONICAL = re.compile(
    rf"v{_NUMBER}\.{_NUMBER}\.{_NUMBER}"
    rf"(?:-{_IDENTIFIER}(?:\.{_IDENTIFIER})*)?(?:\+incompatible)?"
)
_TRAILING_TILDE_DIGITS = re.compile(r".*~[0-9]+")


def decode(escaped: str) -> str | None:
    """Go's case encoding undone: ``!a`` is ``A``; a bare upper-case
    letter, a ``!`` before anything but a lower-case letter, or a
    non-ASCII character is no encoding at all (None)."""
    out = []
    bang = False
    for char in escaped:
        if not char.isascii():
            return None
        if bang:
            bang = False
            if not "a" <= char <= "z":
                return None
            out.append(char.upper())
        elif char == "!":
            bang = True
        elif "A" <= char <= "Z":
            return None
        else:
            out.append(char)
    return None if bang else "".join(out)


def encode(text: str) -> str:
    """Go's case encoding: each upper-case letter as ``!`` and its lower case."""
    return "".join("!" + char.lower() if "A" <= char <= "Z" else char for char in text)


def module_path(escaped: str) -> str | None:
    """The module path ``escaped`` encodes, or None when it is not one."""
    path = decode(escaped)
    return path if path is not None and is_module_path(path) else None


def version(escaped: str) -> str | None:
    """The version (or version query) ``escaped`` encodes, or None."""
    text = decode(escaped)
    return text if text is not None and _element_ok(text, file=True) else None


def is_canonical(text: str) -> bool:
    """A canonical semantic version (pseudo-versions are): its files never
    change. Build metadata other than ``+incompatible`` is not canonical."""
    return _CANONICAL.fullmatch(text) is not None


def is_module_path(path: str) -> bool:
    """``golang.org/x/mod/module.CheckPath``."""
    if not path or path[0] in "-/" or "//" in path or path.endswith("/"):
        return False
    elements = path.split("/")
    if not all(_element_ok(element, file=False) for element in elements):
        return False
    first = elements[0]
    if "." not in first or not _FIRST_ELEMENT_CHARS.fullmatch(first):
        return False
    return _major_suffix_ok(path)


def _element_ok(element: str, file: bool) -> bool:
    """``checkElem``: of a module path, or (``file``) of a file name."""
    if not element or element.strip(".") == "" or element.endswith("."):
        return False
    if not file and element.startswith("."):
        return False
    chars = _FILE_CHARS if file else _MODULE_CHARS
    if not chars.fullmatch(element):
        return False
    short = element.split(".", 1)[0]
    if short.lower() in _WINDOWS_NAMES:
        return False
    return file or not _TRAILING_TILDE_DIGITS.fullmatch(short)


def _major_suffix_ok(path: str) -> bool:
    """``SplitPathVersion``: a ``/vN`` suffix has N >= 2 and no leading
    zero; ``gopkg.in/`` paths end in ``.vN`` (``-unstable`` allowed)."""
    if path.startswith("gopkg.in/"):
        match = re.search(r"\.v([0-9]+)(?:-unstable)?$", path)
        return match is not None and (match[1] == "0" or not match[1].startswith("0"))
    match = re.search(r"/v([0-9.]+)$", path)
    if match is None or len(path) == len(match[0]):
        return True
    digits = match[1]
    if not digits.isdigit():
        return "." not in digits
    return not digits.startswith("0") and digits != "1"
