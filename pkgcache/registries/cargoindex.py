"""Pure: what the paths and files of a cargo sparse registry are.

- An index file names one crate: ``1/a``, ``2/ab``, ``3/a/abc``,
  ``ab/cd/abcd...`` (the name lower-cased), one JSON line per version
  with its ``cksum``, the SHA-256 of its ``.crate``.
- ``config.json`` says where the ``.crate`` files are (``dl``, a URL or
  a template with ``{crate}``, ``{version}``, ``{prefix}``,
  ``{lowerprefix}``, ``{sha256-checksum}`` markers; with none, cargo
  appends ``/{crate}/{version}/download``) and where the web API is
  (``api``).
- The cache's own ``dl`` is ``<base><prefix>files/{crate}/{crate}-{version}.crate``:
  a request for a ``.crate`` is its readable storage path. ``files`` is
  no index folder (those are ``1``, ``2``, ``3`` or two characters).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

#: The folder of the ``.crate`` files below the prefix.
FILES = "files"
#: What clients are told to ask for (``dl`` of the cache's config.json).
DL_TEMPLATE = FILES + "/{crate}/{crate}-{version}.crate"
#: Largest index file stored: crates.io's largest are a few megabytes.
MAX_INDEX_FILE = 32 * 1024 * 1024
#: Largest ``config.json`` stored (a few hundred bytes in practice).
MAX_CONFIG = 64 * 1024
#: Longest crate name cargo accepts.
MAX_NAME = 64

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_VERSION = re.compile(r"[0-9][0-9A-Za-z.+-]*")
_MARKERS = ("{crate}", "{version}", "{prefix}", "{lowerprefix}", "{sha256-checksum}")
_CKSUM = re.compile(r"[0-9a-f]{64}")


def is_name(name: str) -> bool:
    return len(name) <= MAX_NAME and _NAME.fullmatch(name) is not None


def name_prefix(name: str) -> str:
    """The index folders of ``name`` as cargo's ``{prefix}`` spells them."""
    if len(name) <= 2:
        return str(len(name))
    if len(name) == 3:
        return f"3/{name[0]}"
    return f"{name[:2]}/{name[2:4]}"


def index_path(name: str) -> tuple[str, ...]:
    """The index file of crate ``name`` below the prefix (lower case)."""
    lower = name.lower()
    return (*name_prefix(lower).split("/"), lower)


def index_name(below: tuple[str, ...]) -> str | None:
    """The crate whose index file is at ``below`` (segments below the
    prefix), or None when that is no index file's path."""
    name = below[-1] if below else ""
    if not is_name(name) or name != name.lower() or index_path(name) != below:
        return None
    return name


def crate_file(name: str, version: str) -> str:
    return f"{name}-{version}.crate"


def crate_of_file(below: tuple[str, ...]) -> tuple[str, str] | None:
    """``files/<name>/<name>-<version>.crate`` -> (name, version)."""
    if len(below) != 3 or below[0] != FILES or not is_name(below[1]):
        return None
    name, file = below[1], below[2]
    start = name + "-"
    if not (file.startswith(start) and file.endswith(".crate")):
        return None
    version = file[len(start) : -len(".crate")]
    if not _VERSION.fullmatch(version):
        return None
    return name, version


def download_url(
    template: str, name: str, version: str, cksum: str | None
) -> str | None:
    """Where a ``dl`` template puts ``name`` ``version``; None when it
    needs the checksum and none is known."""
    if not any(marker in template for marker in _MARKERS):
        return f"{template.rstrip('/')}/{name}/{version}/download"
    if "{sha256-checksum}" in template and cksum is None:
        return None
    prefix = name_prefix(name)
    return (
        template.replace("{crate}", name)
        .replace("{version}", version)
        .replace("{prefix}", prefix)
        .replace("{lowerprefix}", prefix.lower())
        .replace("{sha256-checksum}", cksum or "")
    )


def split_url(url: str) -> tuple[str, str]:
    """A URL as (source, path): the scheme and host, and the path from its
    first ``/`` (what a ``Route`` asks a source for)."""
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host}", slash + path


def index_entries(data: bytes, name: str) -> Iterator[tuple[str, str, str]]:
    """(name, version, cksum) of each version of crate ``name`` (lower
    case) its index file lists; lines of another crate, or that are not
    a version's JSON object, are skipped. Raises ``ValueError`` when the
    file is past ``MAX_INDEX_FILE`` or not one version's line parses (a
    maintenance page, a truncated file)."""
    if len(data) > MAX_INDEX_FILE:
        raise ValueError(f"index file over {MAX_INDEX_FILE} bytes")
    found = False
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if not isinstance(entry, dict):
            continue
        crate, version, cksum = entry.get("name"), entry.get("vers"), entry.get("cksum")
        if not (isinstance(crate, str) and isinstance(version, str)):
            continue
        found = True
        if crate.lower() != name or not is_name(crate):
            continue
        valid = isinstance(cksum, str) and _CKSUM.fullmatch(cksum) is not None
        if valid and _VERSION.fullmatch(version):
            yield crate, version, str(cksum)
    if data.strip() and not found:
        raise ValueError("no line is a version of a crate")


def check_index(data: bytes, name: str) -> bytes:
    """``data`` itself when it is an index file of ``name``
    (``index_entries``); ValueError otherwise."""
    for _entry in index_entries(data, name):
        pass
    return data


def check_config(data: bytes) -> bytes:
    """``data`` itself when it is a registry's ``config.json`` (a JSON
    object with a string ``dl``, at most ``MAX_CONFIG`` bytes)."""
    if len(data) > MAX_CONFIG:
        raise ValueError(f"config.json over {MAX_CONFIG} bytes")
    try:
        config = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise ValueError(f"config.json is not JSON: {error}") from None
    if not isinstance(config, dict) or not isinstance(config.get("dl"), str):
        raise ValueError("config.json has no dl")
    return data


def config_for(data: bytes, files_url: str) -> bytes:
    """A stored ``config.json`` as a client of the cache gets it: ``dl``
    at the cache (``files_url``: the ``.crate`` template), ``api`` (the
    web API: publish, yank, owners) removed, since the cache is
    read-only; every other key as the upstream gave it."""
    config = json.loads(check_config(data))
    config["dl"] = files_url
    config.pop("api", None)
    return json.dumps(config, indent=2).encode() + b"\n"
