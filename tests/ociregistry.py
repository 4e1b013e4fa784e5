"""Container registries for the OCI tests and the benchmark: Debian's
``docker-registry`` (the CNCF distribution registry) on a loopback port
with filesystem storage, images made in Python as OCI layouts and pushed
with ``skopeo``, and a gate written here that sits in front of a registry:
it counts every request, may ask for tokens as Docker Hub does (401 +
``WWW-Authenticate: Bearer realm=...``; tokens expire), and may answer
blobs with a redirect to a "CDN" path of its own, as Docker Hub does."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import secrets
import subprocess
import tarfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tornado.web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from tests.conftest import free_port, wait_until
from tests.loopback import LoopbackServer

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_PLAIN = "application/vnd.oci.image.layer.v1.tar"
#: What skopeo and containerd send: every manifest type.
ACCEPT_ALL = ", ".join(
    (
        OCI_INDEX,
        OCI_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(files: dict[str, bytes], compress: bool = True) -> bytes:
    """A layer: a tar of ``files`` (gzip'd unless ``compress`` is false),
    made the same way every time."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    if not compress:
        return raw.getvalue()
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)


@dataclass
class Image:
    """An image as pushed: its manifest (or index) bytes and every blob."""

    manifest: bytes
    media_type: str
    blobs: dict[str, bytes] = field(default_factory=dict)
    #: Platform -> that platform's manifest bytes (an index only).
    children: dict[str, bytes] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)

    def layer_digests(self) -> list[str]:
        return [d for d, data in self.blobs.items() if not data.startswith(b"{")]


def _gzipped(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b"


def _uncompressed(data: bytes) -> bytes:
    return gzip.decompress(data) if _gzipped(data) else data


class Layout:
    """An OCI image layout folder being written (``oci-layout``,
    ``index.json``, ``blobs/sha256/``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (folder / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.refs: list[dict[str, Any]] = []

    def blob(self, data: bytes) -> str:
        digest = digest_of(data)
        (self.folder / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
        return digest

    def manifest(self, layers: list[bytes], platform: str = "linux/amd64") -> Image:
        os_name, arch = platform.split("/")
        config = json.dumps(
            {
                "architecture": arch,
                "os": os_name,
                "rootfs": {
                    "type": "layers",
                    "diff_ids": [digest_of(_uncompressed(x)) for x in layers],
                },
                "config": {},
            },
            sort_keys=True,
        ).encode()
        image = Image(b"", OCI_MANIFEST)
        descriptors = []
        for data in layers:
            image.blobs[self.blob(data)] = data
            descriptors.append(
                {
                    "mediaType": OCI_LAYER if _gzipped(data) else OCI_LAYER_PLAIN,
                    "digest": digest_of(data),
                    "size": len(data),
                }
            )
        image.blobs[self.blob(config)] = config
        image.manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": OCI_CONFIG,
                    "digest": digest_of(config),
                    "size": len(config),
                },
                "layers": descriptors,
            },
            sort_keys=True,
        ).encode()
        self.blob(image.manifest)
        return image

    def index(self, platforms: dict[str, list[bytes]]) -> Image:
        image = Image(b"", OCI_INDEX)
        entries = []
        for platform, layers in platforms.items():
            child = self.manifest(layers, platform)
            image.blobs.update(child.blobs)
            image.children[platform] = child.manifest
            os_name, arch = platform.split("/")
            entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": child.digest,
                    "size": len(child.manifest),
                    "platform": {"os": os_name, "architecture": arch},
                }
            )
        image.manifest = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries},
            sort_keys=True,
        ).encode()
        self.blob(image.manifest)
        return image

    def tag(self, tag: str, image: Image) -> None:
        self.refs = [
            ref
            for ref in self.refs
            if ref["annotations"]["org.opencontainers.image.ref.name"] != tag
        ]
        self.refs.append(
            {
                "mediaType": image.media_type,
                "digest": image.digest,
                "size": len(image.manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        )
        (self.folder / "index.json").write_text(
            json.dumps({"schemaVersion": 2, "manifests": self.refs})
        )


class Skopeo:
    """skopeo with a scratch policy, runtime folder and auth file."""

    def __init__(self, scratch: Path) -> None:
        scratch.mkdir(parents=True, exist_ok=True)
        self.policy = scratch / "policy.json"
        self.policy.write_text('{"default":[{"type":"insecureAcceptAnything"}]}')
        self.env = {
            **os.environ,
            "XDG_RUNTIME_DIR": str(scratch),
            "REGISTRY_AUTH_FILE": str(scratch / "auth.json"),
            "HOME": str(scratch),
        }

    def run(
        self, *arguments: str, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["skopeo", "--policy", str(self.policy), *arguments],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def push(
        self, layout: Path, tag: str, destination: str, all_images: bool = False
    ) -> None:
        done = self.run(
            "copy",
            *(["--all"] if all_images else []),
            "--dest-tls-verify=false",
            "--dest-no-creds",
            f"oci:{layout}:{tag}",
            f"docker://{destination}",
        )
        assert done.returncode == 0, done.stderr

    def pull(
        self, source: str, destination: str, *extra: str
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "copy",
            "--src-tls-verify=false",
            "--src-no-creds",
            *extra,
            f"docker://{source}",
            destination,
        )


class DistributionRegistry:
    """Debian's docker-registry serving ``root`` on a loopback port;
    ``proxy``: a pull-through cache of that URL instead; ``access_log``:
    a line per request in ``registry.log`` (``requests``)."""

    def __init__(
        self, root: Path, proxy: str | None = None, access_log: bool = False
    ) -> None:
        self.root = root
        self.port = free_port()
        root.mkdir(parents=True, exist_ok=True)
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": not access_log}},
            "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
            "http": {"addr": f"127.0.0.1:{self.port}", "secret": secrets.token_hex(8)},
        }
        if proxy:
            config["proxy"] = {"remoteurl": proxy}
        self.config = root / "config.yml"
        self.config.write_text(json.dumps(config))  # YAML is a superset of JSON
        self.log_path = root / "registry.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> DistributionRegistry:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                ["docker-registry", "serve", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        import urllib.request

        def up() -> bool:
            try:
                with urllib.request.urlopen(self.url + "/v2/", timeout=1):
                    return True
            except OSError:
                return False

        if not wait_until(up, timeout=20):
            self.stop()
            raise RuntimeError(
                "docker-registry did not start: " + self.log_path.read_text()
            )
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request logged so far (``access_log``)."""
        text = self.log_path.read_text(errors="replace")
        return re.findall(r'"([A-Z]+) (/v2/[^ "]*) HTTP/[0-9.]+"', text)

    def blob_file(self, digest: str) -> Path:
        """Where the registry keeps a blob's bytes (to corrupt them)."""
        value = digest.split(":")[1]
        return (
            self.root
            / "data"
            / "docker"
            / "registry"
            / "v2"
            / "blobs"
            / "sha256"
            / value[:2]
            / value
            / "data"
        )


_HOP = {
    "connection",
    "transfer-encoding",
    "content-length",
    "keep-alive",
    "server",
    "date",
}


class _Forward(tornado.web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "HEAD")  # type: ignore[assignment]

    def initialize(self, gate: RegistryGate) -> None:
        self.gate = gate

    async def get(self, path: str) -> None:
        await self._forward(path)

    async def head(self, path: str) -> None:
        await self._forward(path)

    async def _forward(self, path: str) -> None:
        gate = self.gate
        method = self.request.method or "GET"
        gate.log.append((method, self.request.path))
        if path.startswith("token"):
            self._token()
            return
        cdn = path.startswith("cdn/")
        api = path.startswith("v2/") and path != "v2/"
        given = self.request.headers.get("Authorization")
        if gate.basic and api and given != gate.basic_header():
            self.set_status(401)
            self.set_header("WWW-Authenticate", 'Basic realm="gate"')
            self.finish('{"errors":[{"code":"UNAUTHORIZED"}]}')
            return
        if (
            gate.tokens is not None
            and not cdn
            and path.startswith("v2/")
            and path != "v2/"
        ) and not gate.authorized(self.request.headers.get("Authorization", "")):
            name = path[3:].rsplit("/", 2)[0]
            self.set_status(401)
            self.set_header(
                "WWW-Authenticate",
                f'Bearer realm="{gate.url}/token",service="gate",'
                f'scope="repository:{name}:pull"',
            )
            self.finish('{"errors":[{"code":"UNAUTHORIZED"}]}')
            return
        if gate.redirect_blobs and "/blobs/" in path and not cdn:
            self.redirect(f"{gate.url}/cdn/{path}", status=307)
            return
        upstream_path = "/" + path[4:] if cdn else "/" + path
        headers = {
            name: value
            for name, value in self.request.headers.get_all()
            if name.lower() in ("accept", "range", "if-range", "if-none-match")
        }
        response = await AsyncHTTPClient().fetch(
            HTTPRequest(
                gate.backend
                + upstream_path
                + (("?" + self.request.query) if self.request.query else ""),
                method=method,
                headers=headers,
                follow_redirects=False,
                decompress_response=False,
            ),
            raise_error=False,
        )
        self.set_status(response.code)
        for name, value in response.headers.get_all():
            if name.lower() not in _HOP:
                self.set_header(name, value)
        body = response.body or b""
        if method == "HEAD":
            self.set_header(
                "Content-Length", response.headers.get("Content-Length", "0")
            )
            self.finish()
            return
        digest = path.rsplit("/", 1)[-1]
        if digest in gate.cut_once and response.code == 200:
            gate.cut_once.discard(digest)
            self.set_header("Content-Length", str(len(body)))
            self.write(body[: len(body) // 2])
            await self.flush()
            self.request.connection.close()  # type: ignore[union-attr]
            return
        self.finish(body)

    def _token(self) -> None:
        gate = self.gate
        gate.token_requests += 1
        if (
            gate.username
            and self.request.headers.get("Authorization") != gate.basic_header()
        ):
            self.set_status(401)
            self.finish('{"details":"bad credentials"}')
            return
        token = secrets.token_hex(16)
        assert gate.tokens is not None
        gate.tokens[token] = time.monotonic() + gate.token_lifetime
        self.finish(
            {
                "token": token,
                "expires_in": gate.token_lifetime,
                "issued_at": "2026-01-01T00:00:00Z",
            }
        )


class RegistryGate(LoopbackServer):
    """A registry's front door: counts requests (``log``, ``count``),
    asks for tokens when ``username`` is given (or ``tokens``), or for
    Basic credentials (``basic``),
    redirects blobs to ``/cdn/`` when ``redirect_blobs``, and cuts the
    first GET of a blob named in ``cut_once`` halfway."""

    what = "registry gate"

    def __init__(
        self,
        backend: str,
        username: str = "",
        password: str = "",
        tokens: bool = False,
        redirect_blobs: bool = False,
        token_lifetime: int = 300,
        basic: bool = False,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.username = username
        self.password = password
        self.basic = basic
        self.tokens: dict[str, float] | None = (
            {} if (tokens or username) and not basic else None
        )
        self.redirect_blobs = redirect_blobs
        self.token_lifetime = token_lifetime
        self.token_requests = 0
        self.cut_once: set[str] = set()
        self.log: list[tuple[str, str]] = []

    def basic_header(self) -> str:
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def authorized(self, header: str) -> bool:
        assert self.tokens is not None
        scheme, _, token = header.partition(" ")
        expires = self.tokens.get(token) if scheme == "Bearer" else None
        return expires is not None and expires > time.monotonic()

    def count(self, method: str, part: str) -> int:
        return sum(1 for m, path in self.log if m == method and part in path)

    def counts(self) -> Counter[tuple[str, str]]:
        return Counter(self.log)

    def reset(self) -> None:
        self.log.clear()
        self.token_requests = 0

    def make_app(self) -> tornado.web.Application:
        return tornado.web.Application([(r"/(.*)", _Forward, {"gate": self})])
