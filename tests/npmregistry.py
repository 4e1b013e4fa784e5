"""A test npm registry and a scratch npm client, for the tests that run npm
through package-cache.

``pack(specs, folder)`` makes real tarballs with ``npm pack``.
``NpmRegistry(root)`` serves their package documents (the full one, and the
abbreviated one npm asks for with ``Accept: application/vnd.npm.install-v1+json``),
their tarballs, dist-tags and a search on a loopback port, with ETags (304 to
If-None-Match) and a count of requests per path. A package published with
``on_cdn=True`` has its tarball on a second origin, ``registry.cdn``, at a
path of its own (``/tarballs/<sha1>/<file>.tgz``), as registries that keep
tarballs on another host do: only the document's ``dist.tarball`` says where.
``NpmClient(folder, registry_url)`` is an npm with its home, cache and
project in ``folder``: never the machine's own npm config or cache.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import tornado.web

from tests.loopback import LoopbackServer
from tests.static_origin import StaticOrigin

ABBREVIATED = "application/vnd.npm.install-v1+json"
# Every subprocess is bounded: an npm that hangs fails the test instead.
TIMEOUT = 60


def missing_tools() -> list[str]:
    return [tool for tool in ("npm", "node") if shutil.which(tool) is None]


class CommandFailed(RuntimeError):
    pass


def npm_env(home: Path, cache: Path) -> dict[str, str]:
    """Only what npm needs: no user or global npmrc (the global one is a
    missing file), no proxy variables, no update check, and no retries (a
    failed fetch fails the test at once instead of after npm's back-off)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "npm_config_userconfig": "/dev/null",
        "npm_config_globalconfig": str(home / "global-npmrc"),
        "npm_config_cache": str(cache),
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        "npm_config_progress": "false",
        "npm_config_fetch_retries": "0",
        "npm_config_fetch_timeout": "20000",
        "NO_COLOR": "1",
    }


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run ``args``; return stdout, or raise with all of stdout and stderr."""
    try:
        result = subprocess.run(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as error:
        raise CommandFailed(
            f"{' '.join(args)} timed out after {TIMEOUT}s\n"
            f"stdout:\n{error.stdout}\nstderr:\n{error.stderr}"
        ) from error
    if result.returncode != 0:
        raise CommandFailed(
            f"{' '.join(args)} (in {cwd}) exited with {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result.stdout


@dataclass(frozen=True)
class Tarball:
    """A package version packed by ``npm pack``."""

    name: str  # "pkg" or "@scope/pkg"
    version: str
    dependencies: dict[str, str]
    description: str
    path: Path
    shasum: str  # sha1, hex
    integrity: str  # "sha512-" + base64

    @property
    def filename(self) -> str:
        """The registry's name for the file: ``util-1.0.0.tgz`` for
        ``@scope/util`` (npm pack names it ``scope-util-1.0.0.tgz``)."""
        return f"{self.name.rsplit('/', 1)[-1]}-{self.version}.tgz"

    @property
    def registry_path(self) -> str:
        """Where a registry serves it: ``/<name>/-/<filename>``."""
        return f"/{self.name}/-/{self.filename}"


def pack(specs: list[tuple[str, str, dict[str, str]]], folder: Path) -> list[Tarball]:
    """Pack each (name, version, dependencies) with one ``npm pack``; the
    tarballs land in ``folder``."""
    sources = folder / "src"
    dirs = []
    for i, (name, version, dependencies) in enumerate(specs):
        source = sources / str(i)
        source.mkdir(parents=True)
        manifest = {
            "name": name,
            "version": version,
            "description": f"{name} {version}, a package-cache test package",
            "main": "index.js",
            "license": "MIT",
            "dependencies": dependencies,
        }
        (source / "package.json").write_text(json.dumps(manifest, indent=2))
        (source / "index.js").write_text(
            f"module.exports = {json.dumps(f'{name}@{version}')};\n"
        )
        dirs.append(f"./src/{i}")
    out = json.loads(
        run(
            ["npm", "pack", "--json", "--pack-destination", str(folder), *dirs],
            cwd=folder,
            env=npm_env(folder / "home", folder / "npm-cache"),
        )
    )
    tarballs = []
    for (name, version, dependencies), packed in zip(specs, out, strict=True):
        path = folder / packed["filename"]
        data = path.read_bytes()
        sha512 = base64.b64encode(hashlib.sha512(data).digest()).decode()
        tarball = Tarball(
            name=name,
            version=version,
            dependencies=dependencies,
            description=f"{name} {version}, a package-cache test package",
            path=path,
            shasum=hashlib.sha1(data).hexdigest(),
            integrity=f"sha512-{sha512}",
        )
        # npm's own numbers for the same bytes.
        assert (packed["shasum"], packed["integrity"]) == (
            tarball.shasum,
            tarball.integrity,
        ), packed
        tarballs.append(tarball)
    return tarballs


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + (
        f".{int(time.time() * 1000) % 1000:03d}Z"
    )


@dataclass
class _Package:
    name: str
    on_cdn: bool
    versions: dict[str, Tarball] = field(default_factory=dict)
    tarball_urls: dict[str, str] = field(default_factory=dict)
    dist_tags: dict[str, str] = field(default_factory=dict)
    times: dict[str, str] = field(default_factory=dict)


class Request(NamedTuple):
    method: str
    path: str  # as sent, still percent-encoded
    accept: str
    status: int


class _Handler(tornado.web.RequestHandler):
    registry: NpmRegistry

    def initialize(self, registry: NpmRegistry) -> None:
        self.registry = registry

    def prepare(self) -> None:
        self.registry.requests[self.request.path] += 1

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.registry.log.append(
            Request(
                self.request.method or "",
                self.request.path,
                self.request.headers.get("Accept", ""),
                status,
            )
        )
        self.set_status(status)
        if status == 304:
            return
        self.set_header("Content-Type", content_type)
        self.write(body)

    def _json(self, value: Any, content_type: str = "application/json") -> None:
        body = json.dumps(value, indent=2).encode()
        etag = '"' + hashlib.sha1(body).hexdigest() + '"'
        self.set_header("ETag", etag)
        self.set_header("Vary", "Accept")
        asked = self.request.headers.get("If-None-Match", "")
        if etag in (tag.strip() for tag in asked.split(",")):
            self._answer(304, b"", content_type)
        else:
            self._answer(200, body, content_type)

    def _not_found(self) -> None:
        self._answer(404, b'{"error":"Not found"}', "application/json")

    def get(self) -> None:
        path = urllib.parse.unquote(self.request.path)
        parts = path.strip("/").split("/")
        registry = self.registry
        if parts[0] == "-":
            if parts[1:3] == ["v1", "search"]:
                text = self.get_query_argument("text", "")
                return self._json(registry.search(text))
            if parts[1:2] == ["package"] and parts[-1] == "dist-tags":
                package = registry.package("/".join(parts[2:-1]))
                return self._json(package.dist_tags) if package else self._not_found()
            return self._not_found()
        split = 2 if parts[0].startswith("@") else 1
        package = registry.package("/".join(parts[:split]))
        rest = parts[split:]
        if package is None:
            return self._not_found()
        if not rest:
            abbreviated = ABBREVIATED in self.request.headers.get("Accept", "")
            if abbreviated:
                return self._json(registry.abbreviated(package), ABBREVIATED)
            return self._json(registry.document(package))
        if len(rest) == 1:
            version = package.dist_tags.get(rest[0], rest[0])
            if version not in package.versions:
                return self._not_found()
            return self._json(registry.manifest(package, version))
        if len(rest) == 2 and rest[0] == "-" and not package.on_cdn:
            for tarball in package.versions.values():
                if tarball.filename == rest[1]:
                    self.set_header("ETag", f'"{tarball.shasum}"')
                    return self._answer(
                        200, tarball.path.read_bytes(), "application/octet-stream"
                    )
        self._not_found()

    def head(self) -> None:
        self.get()

    def _write_request(self) -> None:
        """Whatever writes (publish, login, audit) is only recorded: the
        proxy must answer those itself, so a test checks the log stays free
        of them."""
        self._answer(200, b"{}", "application/json")

    put = post = delete = _write_request


class NpmRegistry(LoopbackServer):
    """A registry at ``url``; tarballs of on_cdn packages at ``cdn.url``."""

    what = "npm registry"

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        (root / "cdn").mkdir(parents=True, exist_ok=True)
        self.cdn = StaticOrigin(root / "cdn")
        self.requests: Counter[str] = Counter()
        self.log: list[Request] = []
        self._packages: dict[str, _Package] = {}
        self._lock = threading.Lock()

    def start(self) -> NpmRegistry:
        self.cdn.start()
        return super().start()

    def stop(self) -> None:
        """Both origins stop: later connections are refused."""
        self.cdn.stop()
        super().stop()

    def count(self, suffix: str) -> int:
        """Requests to the registry for paths ending in ``suffix``."""
        return sum(n for path, n in self.requests.items() if path.endswith(suffix))

    def publish(self, tarball: Tarball, on_cdn: bool = False) -> str:
        """Add a version (it becomes ``latest``) and return its tarball URL.
        A package's first publication decides whether its tarballs live on
        the cdn."""
        with self._lock:
            package = self._packages.setdefault(
                tarball.name, _Package(tarball.name, on_cdn)
            )
            if package.on_cdn:
                where = Path("tarballs") / tarball.shasum / tarball.filename
                (self.cdn.root / where).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(tarball.path, self.cdn.root / where)
                url = f"{self.cdn.url}/{where}"
            else:
                url = self.url + tarball.registry_path
            now = _now()
            package.versions[tarball.version] = tarball
            package.tarball_urls[tarball.version] = url
            package.dist_tags["latest"] = tarball.version
            package.times.setdefault("created", now)
            package.times["modified"] = now
            package.times[tarball.version] = now
            return url

    def tarball_url(self, name: str, version: str) -> str:
        with self._lock:
            return self._packages[name].tarball_urls[version]

    def package(self, name: str) -> _Package | None:
        return self._packages.get(name)

    def _dist(self, package: _Package, version: str) -> dict[str, str]:
        tarball = package.versions[version]
        return {
            "tarball": package.tarball_urls[version],
            "shasum": tarball.shasum,
            "integrity": tarball.integrity,
        }

    def manifest(self, package: _Package, version: str) -> dict[str, Any]:
        """A version as the full document has it."""
        with self._lock:
            tarball = package.versions[version]
            return {
                "name": package.name,
                "version": version,
                "description": tarball.description,
                "main": "index.js",
                "license": "MIT",
                "dependencies": tarball.dependencies,
                "_id": f"{package.name}@{version}",
                "_npmVersion": "11.0.0",
                "dist": {**self._dist(package, version), "fileCount": 2},
            }

    def document(self, package: _Package) -> dict[str, Any]:
        with self._lock:
            versions = list(package.versions)
            latest = package.versions[package.dist_tags["latest"]]
            tags, times = dict(package.dist_tags), dict(package.times)
        return {
            "_id": package.name,
            "name": package.name,
            "description": latest.description,
            "dist-tags": tags,
            "versions": {v: self.manifest(package, v) for v in versions},
            "time": times,
            "license": "MIT",
            "readme": f"# {package.name}\n",
            "readmeFilename": "README.md",
        }

    def abbreviated(self, package: _Package) -> dict[str, Any]:
        """What npm install asks for: only what resolving needs."""
        with self._lock:
            return {
                "name": package.name,
                "modified": package.times["modified"],
                "dist-tags": dict(package.dist_tags),
                "versions": {
                    version: {
                        "name": package.name,
                        "version": version,
                        "dependencies": tarball.dependencies,
                        "dist": self._dist(package, version),
                    }
                    for version, tarball in package.versions.items()
                },
            }

    def search(self, text: str) -> dict[str, Any]:
        with self._lock:
            found = [
                package.versions[package.dist_tags["latest"]]
                for name, package in sorted(self._packages.items())
                if text in name
            ]
        now = _now()
        objects = [
            {
                "package": {
                    "name": tarball.name,
                    "scope": tarball.name[1:].split("/")[0]
                    if tarball.name.startswith("@")
                    else "unscoped",
                    "version": tarball.version,
                    "description": tarball.description,
                    "keywords": [],
                    "date": now,
                    "links": {},
                    "publisher": {"username": "test", "email": "test@invalid"},
                    "maintainers": [{"username": "test", "email": "test@invalid"}],
                },
                "score": {
                    "final": 1.0,
                    "detail": {"quality": 1.0, "popularity": 1.0, "maintenance": 1.0},
                },
                "searchScore": 1.0,
            }
            for tarball in found
        ]
        return {"objects": objects, "total": len(objects), "time": now}

    def make_app(self) -> tornado.web.Application:
        return tornado.web.Application([(r"/.*", _Handler, {"registry": self})])


class NpmClient:
    """``npm`` with its home, cache and project folder under ``folder``."""

    def __init__(
        self, folder: Path, registry_url: str, dependencies: dict[str, str]
    ) -> None:
        self.registry_url = registry_url.rstrip("/") + "/"
        self.home = folder / "home"
        self.cache = folder / "npm-cache"
        self.project = folder / "project"
        for path in (self.home, self.project):
            path.mkdir(parents=True)
        manifest = {
            "name": "pkgcache-npm-test-app",
            "version": "1.0.0",
            "private": True,
            "dependencies": dependencies,
        }
        (self.project / "package.json").write_text(json.dumps(manifest, indent=2))

    def npm(self, *args: str) -> str:
        return run(
            [
                "npm",
                *args,
                "--registry",
                self.registry_url,
                "--cache",
                str(self.cache),
                "--no-fund",
            ],
            cwd=self.project,
            env=npm_env(self.home, self.cache),
        )

    def install(self, *specs: str, audit: bool = False) -> str:
        return self.npm("install", *specs, *([] if audit else ["--no-audit"]))

    def installed(self, name: str) -> str:
        """The version in node_modules (as its package.json says)."""
        manifest = self.project / "node_modules" / name / "package.json"
        return json.loads(manifest.read_text())["version"]

    def resolved(self) -> dict[str, str]:
        """node_modules path -> the tarball URL package-lock.json records."""
        lock = json.loads((self.project / "package-lock.json").read_text())
        return {
            path: entry["resolved"]
            for path, entry in lock["packages"].items()
            if path  # "" is the project itself
        }

    def view(self, spec: str, field: str) -> Any:
        return json.loads(self.npm("view", spec, field, "--json"))

    def search(self, text: str) -> list[str]:
        return [
            found["name"] for found in json.loads(self.npm("search", text, "--json"))
        ]
