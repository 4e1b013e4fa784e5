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
#: The first element lower-case with a dot somewhere (checked apart);
#: no element empty, or starting or ending with a dot.
_MODULE_PATH = re.compile(
    r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9-])?(?:/[A-Za-z0-9_~-](?:[A-Za-z0-9._~-]*[A-Za-z0-9_~-])?)*"
)
#: An element whose part before its first dot is a Windows device name.
_DEVICE = re.compile(
    r"(?:^|/)(?:con|prn|aux|nul|com[1-9]|lpt[1-9])(?:[./]|$)", re.IGNORECASE
)
_GOPKG_SUFFIX = re.compile(r"\.v([0-9]+)(?:-unstable)?$")
_MAJOR_SUFFIX = re.compile(r"/v([0-9.]+)$")
_FILE_CHARS = re.compile(r"[A-Za-z0-9!#$%&()+,\-.=@\[\]^_{}~ ]+")
_NUMBER = r"(?:0|[1-9][0-9]*)"
_IDENTIFIER = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_CANONICAL = re.compile(
    rf"v{_NUMBER}\.{_NUMBER}\.{_NUMBER}"
    rf"(?:-{_IDENTIFIER}(?:\.{_IDENTIFIER})*)?(?:\+incompatible)?"
)
_TRAILING_TILDE_DIGITS = re.compile(r".*~[0-9]+")
#: ASCII with no upper-case letter, and ``!`` only before a lower-case one.
_ENCODED = re.compile(r"(?:[\x00-\x20\x22-\x40\x5b-\x7f]|![a-z])*")
_BANG = re.compile(r"!([a-z])")


def decode(escaped: str) -> str | None:
    """Go's case encoding undone: ``!a`` is ``A``; a bare upper-case
    letter, a ``!`` before anything but a lower-case letter, or a
    non-ASCII character is no encoding at all (None)."""
    if _ENCODED.fullmatch(escaped) is None:
        return None
    return _BANG.sub(_upper, escaped) if "!" in escaped else escaped


def _upper(match: re.Match[str]) -> str:
    return match[1].upper()


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
    return text if text is not None and _file_name_ok(text) else None


def is_canonical(text: str) -> bool:
    """A canonical semantic version (pseudo-versions are): its files never
    change. Build metadata other than ``+incompatible`` is not canonical."""
    return _CANONICAL.fullmatch(text) is not None


def is_module_path(path: str) -> bool:
    """``golang.org/x/mod/module.CheckPath``, in as few passes as it
    allows (a hit asks it): the characters and the dots of every element
    by one expression, then the Windows names, ``~`` and the suffix."""
    if _MODULE_PATH.fullmatch(path) is None or "." not in path.split("/", 1)[0]:
        return False
    if _DEVICE.search(path) is not None:
        return False
    if "~" in path and any(
        _TRAILING_TILDE_DIGITS.fullmatch(element.split(".", 1)[0])
        for element in path.split("/")
    ):
        return False
    return _major_suffix_ok(path)


def _file_name_ok(element: str) -> bool:
    """``checkElem`` of a file name (what a version must be)."""
    if element.strip(".") == "" or element.endswith("."):
        return False
    if not _FILE_CHARS.fullmatch(element):
        return False
    return element.split(".", 1)[0].lower() not in _WINDOWS_NAMES


def _major_suffix_ok(path: str) -> bool:
    """``SplitPathVersion``: a ``/vN`` suffix has N >= 2 and no leading
    zero; ``gopkg.in/`` paths end in ``.vN`` (``-unstable`` allowed)."""
    if path.startswith("gopkg.in/"):
        match = _GOPKG_SUFFIX.search(path)
        return match is not None and (match[1] == "0" or not match[1].startswith("0"))
    match = _MAJOR_SUFFIX.search(path)
    if match is None:
        return True
    digits = match[1]
    if not digits.isdigit():
        return "." not in digits
    return not digits.startswith("0") and digits != "1"
