"""A small Python package index for the pip and uv tests (and the
benchmark): wheels and an sdist built in the test, and two origins on
loopback ports, as PyPI has them.

``PypiRepo`` holds the projects: each wheel is a real zip
(``NAME-VER.dist-info/{METADATA,WHEEL,RECORD}`` and one module), with its
core metadata beside it as ``<wheel>.metadata`` (PEP 658); the sdist is a
``.tar.gz`` with ``PKG-INFO``. Files live under ``files/packages/..`` as
on files.pythonhosted.org. Releases can be added while the origins run.

``IndexOrigin`` serves ``/simple/`` and ``/simple/<project>/`` as PEP 691
JSON or PEP 503 HTML by the request's ``Accept`` (``Vary: Accept``, an
``ETag`` per representation, ``If-None-Match`` answered with 304), built
from the repo at each request, with absolute file links to the files
origin (a ``StaticOrigin`` of ``repo.files``), ``#sha256=``,
``data-requires-python``, ``data-yanked``, ``data-dist-info-metadata`` and
``data-core-metadata``. A dist may instead be linked on the index host
itself, by an absolute or a relative link (the index then serves
``/packages/..`` too), and a project may carry a link to a host nobody
configured.

``pip`` and ``uv_pip`` run the real clients with scratch state only.

Typical use::

    repo = PypiRepo.tree(tmp_path / "pypi")  # alpha -> beta, gamma-pkg -> delta
    with serve(repo) as (index, files):
        pip(tmp_path / "client", "download", "-d", str(tmp_path / "out"),
            "--index-url", index.simple_url, "alpha")
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import tornado.web

from tests.loopback import LoopbackServer
from tests.static_origin import StaticOrigin, _CountingFiles

JSON = "application/vnd.pypi.simple.v1+json"
V1_HTML = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
#: What the index answers for each negotiated type.
CONTENT_TYPES = {
    JSON: JSON,
    V1_HTML: V1_HTML,
    TEXT_HTML: "text/html; charset=utf-8",
}
#: On equal quality the first wins, as on PyPI (no Accept: text/html).
PREFERENCE = (TEXT_HTML, V1_HTML, JSON)

#: Fixed timestamps, so the same build gives the same bytes (and hashes).
ZIP_TIME = (2020, 1, 1, 0, 0, 0)
UPLOAD_TIME = "2020-01-01T00:00:00.000000Z"

#: The dependency tree of ``PypiRepo.tree``: each project a 1.0 wheel.
#: ``Gamma_Pkg`` is asked for as ``gamma-pkg`` (PEP 503) by the clients.
TREE: dict[str, list[str]] = {
    "alpha": ["beta>=1.0", "Gamma_Pkg"],
    "beta": [],
    "Gamma_Pkg": ["delta; python_version >= '3'"],
    "delta": [],
}
#: Where the foreign link of ``PypiRepo.tree`` points: a host no test
#: configures (nothing listens there; nobody must try).
FOREIGN_URL = "http://127.0.0.2:9/alpha-0.1-py3-none-any.whl"


def normalize(name: str) -> str:
    """PEP 503: runs of ``-_.`` become one ``-``, lower case."""
    return re.sub(r"[-_.]+", "-", name).lower()


def escaped(name: str) -> str:
    """The name as it appears in wheel and sdist file names."""
    return re.sub(r"[-_.]+", "_", name).lower()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class Dist:
    """One file of a project, as the index lists it."""

    project: str  # as published, e.g. "Gamma_Pkg"
    version: str
    filename: str
    path: str  # on the files host: "packages/ab/cd/0123456789ab/<filename>"
    sha256: str
    size: int
    requires_python: str | None = None
    yanked: str | None = None  # None: not yanked; "": yanked, no reason given
    metadata_sha256: str | None = None  # wheels: of the ``.metadata`` file
    #: Where the page links it: "files" (the files origin), "index" (the
    #: index host, absolute) or "relative" (``../../packages/..``, the
    #: index host too, as devpi and static indexes write them).
    host: str = "files"

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


@dataclass(frozen=True)
class Link:
    """A file link to a host that is not part of the index."""

    filename: str
    url: str
    sha256: str = "0" * 64
    size: int = 1


@dataclass
class _Project:
    name: str
    dists: list[Dist] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)


class PypiRepo:
    """The projects of a test index and their files under ``root/files``."""

    __test__ = False  # not a pytest class, whatever the importing module's name

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = root / "files"
        self.files.mkdir(parents=True, exist_ok=True)
        self._projects: dict[str, _Project] = {}
        self._lock = threading.Lock()

    # Building ---------------------------------------------------------

    @classmethod
    def build(
        cls,
        root: Path,
        projects: Mapping[str, Iterable[str]] | None = None,
        n_wheels: int = 0,
        payload: int = 0,
    ) -> PypiRepo:
        """``projects`` (name -> Requires-Dist lines) each as a 1.0 wheel,
        plus ``n_wheels`` independent projects ``pkg-01``, ``pkg-02``, ...
        (a 1.0 wheel each, see ``wheel_names``); every wheel carries
        ``payload`` bytes of data besides its module."""
        repo = cls(root)
        for name, requires in (projects or {}).items():
            repo.add_wheel(name, "1.0", requires=requires, payload=payload)
        for i in range(1, n_wheels + 1):
            repo.add_wheel(f"pkg-{i:02d}", "1.0", payload=payload)
        return repo

    @classmethod
    def tree(cls, root: Path) -> PypiRepo:
        """``TREE`` as 1.0 wheels, and around it what a real index has:
        alpha 1.0 and beta 1.0 with Requires-Python, a yanked alpha 0.9,
        the sdist of alpha 1.0, delta linked on the index host itself and
        beta by a relative link, and a link on alpha's page to a host
        outside the index."""
        repo = cls(root)
        repo.add_wheel("alpha", "0.9", requires=["beta"], yanked="broken build")
        repo.add_wheel(
            "alpha", "1.0", requires=TREE["alpha"], requires_python=">=3.8,<4"
        )
        repo.add_sdist("alpha", "1.0", requires=TREE["alpha"], requires_python=">=3.8")
        repo.add_wheel("beta", "1.0", requires_python=">=3.8", host="relative")
        repo.add_wheel("Gamma_Pkg", "1.0", requires=TREE["Gamma_Pkg"])
        repo.add_wheel("delta", "1.0", host="index")
        repo.add_link("alpha", Link("alpha-0.1-py3-none-any.whl", FOREIGN_URL))
        return repo

    def add_wheel(
        self,
        project: str,
        version: str,
        requires: Iterable[str] = (),
        requires_python: str | None = None,
        yanked: str | None = None,
        payload: int = 0,
        host: str = "files",
        tag: str = "py3-none-any",
    ) -> Dist:
        """Build ``<name>-<version>-<tag>.whl`` (module ``<name>`` with
        ``VERSION``) and its ``.metadata``; list it on the project's page.
        Callable while the origins run (a new release)."""
        name = escaped(project)
        info = f"{name}-{version}.dist-info"
        metadata = self._metadata(project, version, requires, requires_python)
        members = {
            f"{name}/__init__.py": f'VERSION = "{version}"\n'.encode(),
            f"{info}/METADATA": metadata,
            f"{info}/WHEEL": (
                b"Wheel-Version: 1.0\nGenerator: pypirepo\n"
                b"Root-Is-Purelib: true\nTag: " + tag.encode() + b"\n"
            ),
        }
        if payload:
            members[f"{name}/data.bin"] = _payload(f"{name}-{version}", payload)
        record = "".join(
            f"{path},{record_hash(data)},{len(data)}\n"
            for path, data in members.items()
        )
        members[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
            for path, data in members.items():
                wheel.writestr(zipfile.ZipInfo(path, ZIP_TIME), data)
        filename = f"{name}-{version}-{tag}.whl"
        dist = self._store(
            project,
            version,
            filename,
            buffer.getvalue(),
            requires_python=requires_python,
            yanked=yanked,
            metadata=metadata,
            host=host,
        )
        return dist

    def add_sdist(
        self,
        project: str,
        version: str,
        requires: Iterable[str] = (),
        requires_python: str | None = None,
    ) -> Dist:
        """``<name>-<version>.tar.gz`` with ``PKG-INFO``, a pyproject.toml and
        the module (listed, downloadable; not meant to be built here)."""
        name = escaped(project)
        top = f"{name}-{version}"
        members = {
            f"{top}/PKG-INFO": self._metadata(
                project, version, requires, requires_python
            ),
            f"{top}/pyproject.toml": (
                b'[build-system]\nrequires = ["setuptools"]\n'
                b'build-backend = "setuptools.build_meta"\n'
            ),
            f"{top}/{name}/__init__.py": f'VERSION = "{version}"\n'.encode(),
        }
        raw = io.BytesIO()
        with (
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w") as tar,
        ):
            for path, data in members.items():
                member = tarfile.TarInfo(path)
                member.size = len(data)
                member.mtime = 1577836800
                tar.addfile(member, io.BytesIO(data))
        return self._store(
            project,
            version,
            f"{top}.tar.gz",
            raw.getvalue(),
            requires_python=requires_python,
        )

    def add_link(self, project: str, link: Link) -> None:
        """List ``link`` on the project's page as it is (no file here)."""
        with self._lock:
            self._project(project).links.append(link)

    @staticmethod
    def _metadata(
        project: str,
        version: str,
        requires: Iterable[str],
        requires_python: str | None,
    ) -> bytes:
        lines = ["Metadata-Version: 2.1", f"Name: {project}", f"Version: {version}"]
        lines.append(f"Summary: {project}, a test package")
        if requires_python:
            lines.append(f"Requires-Python: {requires_python}")
        lines += [f"Requires-Dist: {requirement}" for requirement in requires]
        return ("\n".join(lines) + "\n\n").encode()

    def _store(
        self,
        project: str,
        version: str,
        filename: str,
        data: bytes,
        *,
        requires_python: str | None = None,
        yanked: str | None = None,
        metadata: bytes | None = None,
        host: str = "files",
    ) -> Dist:
        digest = sha256(data)
        path = f"packages/{digest[:2]}/{digest[2:4]}/{digest[4:16]}/{filename}"
        target = self.files / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if metadata is not None:
            target.with_name(filename + ".metadata").write_bytes(metadata)
        target.write_bytes(data)
        dist = Dist(
            project=project,
            version=version,
            filename=filename,
            path=path,
            sha256=digest,
            size=len(data),
            requires_python=requires_python,
            yanked=yanked,
            metadata_sha256=None if metadata is None else sha256(metadata),
            host=host,
        )
        with self._lock:
            self._project(project).dists.append(dist)
        return dist

    def _project(self, name: str) -> _Project:
        return self._projects.setdefault(normalize(name), _Project(name))

    # Reading ----------------------------------------------------------

    def projects(self) -> list[str]:
        """Normalized names of every project."""
        with self._lock:
            return sorted(self._projects)

    def dists(self, project: str | None = None) -> list[Dist]:
        """The files of ``project`` (any spelling), or of every project."""
        with self._lock:
            chosen = (
                list(self._projects.values())
                if project is None
                else [self._projects[normalize(project)]]
            )
            return [dist for p in chosen for dist in p.dists]

    def dist(self, filename: str) -> Dist:
        return next(d for d in self.dists() if d.filename == filename)

    def wheel_names(self) -> list[str]:
        """Every ``pkg-NN`` project that ``build(n_wheels=...)`` made."""
        return [p for p in self.projects() if re.fullmatch(r"pkg-\d+", p)]

    def file(self, dist: Dist) -> Path:
        return self.files / dist.path

    def metadata_file(self, dist: Dist) -> Path:
        return self.files / (dist.path + ".metadata")

    # Pages ------------------------------------------------------------

    def root_page(self, media_type: str) -> bytes:
        """``/simple/``: every project."""
        with self._lock:
            names = sorted((n, p.name) for n, p in self._projects.items())
        if media_type == JSON:
            document = {
                "meta": {"api-version": "1.1"},
                "projects": [{"name": name} for _, name in names],
            }
            return json.dumps(document, indent=1).encode()
        anchors = "".join(
            f'    <a href="/simple/{n}/">{html.escape(name)}</a><br />\n'
            for n, name in names
        )
        return _html_page("Simple index", anchors)

    def project_page(
        self, project: str, media_type: str, files_url: str, index_url: str
    ) -> bytes | None:
        """``/simple/<project>/`` (normalized name), or None if unknown."""
        with self._lock:
            found = self._projects.get(project)
            if found is None:
                return None
            name, dists, links = found.name, list(found.dists), list(found.links)
        base = {"files": files_url, "index": index_url, "relative": "../.."}
        if media_type == JSON:
            entries = [_json_file(d, f"{base[d.host]}/{d.path}") for d in dists]
            entries += [
                {
                    "filename": link.filename,
                    "url": link.url,
                    "hashes": {"sha256": link.sha256},
                    "size": link.size,
                }
                for link in links
            ]
            document = {
                "meta": {"api-version": "1.1", "_last-serial": len(dists)},
                "name": normalize(name),
                "versions": sorted({d.version for d in dists}),
                "files": entries,
            }
            return json.dumps(document, indent=1).encode()
        anchors = "".join(_anchor(d, f"{base[d.host]}/{d.path}") for d in dists)
        anchors += "".join(
            f'    <a href="{html.escape(link.url)}#sha256={link.sha256}">'
            f"{html.escape(link.filename)}</a><br />\n"
            for link in links
        )
        return _html_page(f"Links for {html.escape(normalize(name))}", anchors)


TestIndex = PypiRepo  # the name the benchmark's brief used


def _payload(seed: str, size: int) -> bytes:
    """``size`` bytes that do not compress away, the same for each seed."""
    out = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def _json_file(dist: Dist, url: str) -> dict:
    entry: dict = {
        "filename": dist.filename,
        "url": url,
        "hashes": {"sha256": dist.sha256},
    }
    if dist.requires_python is not None:
        entry["requires-python"] = dist.requires_python
    if dist.metadata_sha256 is not None:
        entry["core-metadata"] = {"sha256": dist.metadata_sha256}
        entry["dist-info-metadata"] = {"sha256": dist.metadata_sha256}
    entry["yanked"] = False if dist.yanked is None else (dist.yanked or True)
    entry["size"] = dist.size
    entry["upload-time"] = UPLOAD_TIME
    return entry


def _anchor(dist: Dist, url: str) -> str:
    attributes = [f'href="{html.escape(url)}#sha256={dist.sha256}"']
    if dist.requires_python is not None:
        attributes.append(f'data-requires-python="{html.escape(dist.requires_python)}"')
    if dist.yanked is not None:
        attributes.append(f'data-yanked="{html.escape(dist.yanked)}"')
    if dist.metadata_sha256 is not None:
        value = f"sha256={dist.metadata_sha256}"
        attributes.append(f'data-dist-info-metadata="{value}"')
        attributes.append(f'data-core-metadata="{value}"')
    return f"    <a {' '.join(attributes)}>{html.escape(dist.filename)}</a><br />\n"


def _html_page(title: str, anchors: str) -> bytes:
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        '    <meta name="pypi:repository-version" content="1.1">\n'
        f"    <title>{title}</title>\n  </head>\n  <body>\n"
        f"    <h1>{title}</h1>\n{anchors}  </body>\n</html>\n"
    ).encode()


def negotiate(accept: str | None) -> str | None:
    """The media type to answer for ``accept``, or None (406). Each type's
    quality is that of the most specific range that matches it."""
    if not accept or not accept.strip():
        return TEXT_HTML
    ranges: list[tuple[str, float]] = []
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media:
            ranges.append((media.lower(), quality))

    def quality(media_type: str) -> float:
        kind = media_type.split("/")[0] + "/*"
        for pattern in (media_type, kind, "*/*"):
            matches = [q for media, q in ranges if media == pattern]
            if matches:
                return max(matches)
        return 0.0

    best = max(PREFERENCE, key=lambda t: (quality(t), -PREFERENCE.index(t)))
    return best if quality(best) > 0 else None


class _Simple(tornado.web.RequestHandler):
    """``/simple/`` and ``/simple/<project>/`` of an ``IndexOrigin``."""

    def prepare(self) -> None:
        origin: IndexOrigin = self.settings["index"]
        origin.requests[self.request.path] += 1

    def on_finish(self) -> None:
        origin: IndexOrigin = self.settings["index"]
        accept = self.request.headers.get("Accept", "")
        origin.log.append(
            (self.request.method or "", self.request.path, accept, self.get_status())
        )

    def head(self, project: str | None = None) -> None:
        self.get(project, body=False)

    def get(self, project: str | None = None, body: bool = True) -> None:
        origin: IndexOrigin = self.settings["index"]
        if project is not None and normalize(project) != project:
            self.redirect(f"/simple/{normalize(project)}/", permanent=True)
            return
        if origin.html_only:  # an old index: one format, whatever was asked
            media_type: str | None = TEXT_HTML
        else:
            self.set_header("Vary", "Accept")
            media_type = negotiate(self.request.headers.get("Accept"))
        if media_type is None:
            self.set_status(406)
            self.set_header("Content-Type", "text/plain")
            self.finish(b"406 Not Acceptable\n")
            return
        if project is None:
            page = origin.repo.root_page(media_type)
        else:
            page = origin.repo.project_page(
                project, media_type, origin.files_url, origin.url
            )
        if page is None:
            self.set_status(404)
            self.finish(b"404 Not Found\n")
            return
        content_type = CONTENT_TYPES[media_type]
        self.set_header("Content-Type", content_type)
        # One ETag per representation: the HTML types differ in name only.
        etag = '"' + sha256(content_type.encode() + b"\0" + page)[:20] + '"'
        self.set_header("ETag", etag)
        if self.check_etag_header():
            self.set_status(304)
            self.finish()
            return
        if body:
            self.write(page)
        else:
            self.set_header("Content-Length", str(len(page)))
        self.finish()


class _AddSlash(tornado.web.RequestHandler):
    def prepare(self) -> None:
        origin: IndexOrigin = self.settings["index"]
        origin.requests[self.request.path] += 1

    def get(self, project: str) -> None:
        self.redirect(f"/simple/{normalize(project)}/", permanent=True)


class _IndexFiles(_CountingFiles):
    """``/packages/..`` on the index host (for dists linked there)."""

    def prepare(self) -> None:
        origin: IndexOrigin = self.settings["index"]
        origin.requests[self.request.path] += 1

    def on_finish(self) -> None:
        origin: IndexOrigin = self.settings["index"]
        method, path = self.request.method or "", self.request.path
        origin.log.append((method, path, "", self.get_status()))


class IndexOrigin(LoopbackServer):
    """The index host: ``/simple/..`` pages made from ``repo`` at each
    request, their links at ``files_url``; ``requests[path]`` counts what
    was asked and ``log`` holds (method, path, Accept, status).

    ``html_only``: answer every page as ``text/html`` whatever the Accept
    (no ``Vary``), as static and older private indexes do."""

    what = "index origin"

    def __init__(self, repo: PypiRepo, files_url: str, html_only: bool = False) -> None:
        super().__init__()
        self.repo = repo
        self.files_url = files_url
        self.html_only = html_only
        self.requests: Counter[str] = Counter()
        self.log: list[tuple[str, str, str, int]] = []

    @property
    def simple_url(self) -> str:
        """The ``--index-url`` for pip and uv."""
        return f"{self.url}/simple/"

    def count(self, suffix: str) -> int:
        """Requests for paths ending in ``suffix``."""
        return sum(n for path, n in self.requests.items() if path.endswith(suffix))

    def answered(self, path: str, accept_prefix: str = "") -> list[int]:
        """Statuses of the GETs of ``path`` whose Accept started so."""
        return [
            status
            for method, p, accept, status in list(self.log)
            if method == "GET" and p == path and accept.startswith(accept_prefix)
        ]

    def make_app(self) -> tornado.web.Application:
        return tornado.web.Application(
            [
                (r"/simple/", _Simple),
                (r"/simple/([^/]+)/", _Simple),
                (r"/simple/([^/]+)", _AddSlash),
                (r"/(packages/.*)", _IndexFiles, {"path": str(self.repo.files)}),
            ],
            index=self,
        )


@contextmanager
def serve(
    repo: PypiRepo, html_only: bool = False
) -> Iterator[tuple[IndexOrigin, StaticOrigin]]:
    """The index origin and the files origin of ``repo``, stopped after."""
    files = StaticOrigin(repo.files).start()
    index = IndexOrigin(repo, files.url, html_only=html_only)
    try:
        index.start()
        yield index, files
    finally:
        index.stop()
        files.stop()


# Clients ---------------------------------------------------------------

#: Every client run here is bounded by this many seconds.
CLIENT_TIMEOUT = 60


def client_env(home: Path) -> dict[str, str]:
    """An environment for pip and uv with nothing of the machine's: no
    PIP_/UV_ settings or proxies, HOME and every cache in ``home``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("PIP_", "UV_", "XDG_"))
        and not key.lower().endswith("_proxy")
    }
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        PIP_CONFIG_FILE=os.devnull,
        UV_CACHE_DIR=str(home / "uv-cache"),
        UV_PYTHON_DOWNLOADS="never",
        NO_PROXY="*",
    )
    return env


def _run(command: list[str], home: Path) -> str:
    done = subprocess.run(
        command,
        cwd=home,
        env=client_env(home),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        check=False,
    )
    said = done.stdout + done.stderr
    if done.returncode != 0:
        raise AssertionError(f"{command!r} exited {done.returncode}:\n{said}")
    return said


def pip(home: Path, *args: str) -> str:
    """``pip ARGS`` with scratch state only (``--isolated``, no cache)."""
    command = [sys.executable, "-m", "pip", *args[:1], "--isolated"]
    command += ["--no-cache-dir", "--disable-pip-version-check", *args[1:]]
    return _run(command, home)


def uv_pip(home: Path, *args: str) -> str:
    """``uv pip ARGS`` for this interpreter, with a cache in ``home``."""
    from uv import find_uv_bin  # the uv wheel of the test extras

    command = [find_uv_bin(), "pip", *args[:1], "--no-config"]
    command += ["--python", sys.executable, *args[1:]]
    return _run(command, home)
