"""A cargo sparse registry made by the tests (and the benchmark): small
crates packed by hand as cargo packs them (a gzipped tar of
``NAME-VERSION/``, bytes fixed so their cksum is), an index folder with
``config.json`` and one file per crate, served by ``StaticOrigin``; and a
scratch cargo client (its own ``CARGO_HOME`` and project) on a registry
URL."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from tests.static_origin import StaticOrigin


def find_cargo() -> str | None:
    """cargo on PATH, in ``$CARGO_HOME/bin`` or under root's cargo home."""
    found = shutil.which("cargo")
    if found:
        return found
    homes = [
        os.environ.get("CARGO_HOME"),
        os.path.expanduser("~/.cargo"),
        "/root/.cargo",
    ]
    for home in homes:
        if home and os.access(os.path.join(home, "bin", "cargo"), os.X_OK):
            return os.path.join(home, "bin", "cargo")
    return None


@dataclass(frozen=True)
class Crate:
    name: str
    version: str
    #: Dependencies: name -> version requirement.
    deps: dict[str, str] = field(default_factory=dict)
    data: bytes = b""

    @property
    def file(self) -> str:
        return f"{self.name}-{self.version}.crate"

    @property
    def cksum(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def cache_path(self) -> str:
        """Where a repository at ``/crates/`` serves and stores it."""
        return f"/crates/files/{self.name}/{self.file}"

    def index_line(self, cksum: str | None = None) -> str:
        deps = [
            {
                "name": dep,
                "req": req,
                "features": [],
                "optional": False,
                "default_features": True,
                "target": None,
                "kind": "normal",
            }
            for dep, req in self.deps.items()
        ]
        return json.dumps(
            {
                "name": self.name,
                "vers": self.version,
                "deps": deps,
                "cksum": cksum or self.cksum,
                "features": {},
                "yanked": False,
            }
        )


def rust_name(name: str) -> str:
    return name.replace("-", "_")


def make_crate(
    name: str, version: str, deps: dict[str, str] | None = None, payload: int = 0
) -> Crate:
    """A library crate whose ``value()`` adds its dependencies' values;
    ``payload``: bytes of incompressible data in it besides (a bigger
    crate, for the benchmark)."""
    deps = deps or {}
    lines = "\n".join(f'{dep} = "{req}"' for dep, req in deps.items())
    manifest = (
        f'[package]\nname = "{name}"\nversion = "{version}"\nedition = "2021"\n'
        f'description = "a crate of the package-cache tests"\nlicense = "MIT"\n\n'
        f'[lib]\npath = "src/lib.rs"\n\n[dependencies]\n{lines}\n'
    )
    added = "".join(f" + {rust_name(dep)}::value()" for dep in deps)
    source = f"pub fn value() -> u32 {{ 1{added} }}\n"
    files = {"Cargo.toml": manifest.encode(), "src/lib.rs": source.encode()}
    if payload:
        files["data.bin"] = random.Random(f"{name}-{version}").randbytes(payload)
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed,
        tarfile.open(fileobj=packed, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for path, content in files.items():
            info = tarfile.TarInfo(f"{name}-{version}/{path}")
            info.size = len(content)
            info.mtime = 1_700_000_000
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return Crate(name, version, deps, buffer.getvalue())


def index_path(name: str) -> str:
    lower = name.lower()
    if len(lower) <= 2:
        return f"{len(lower)}/{lower}"
    if len(lower) == 3:
        return f"3/{lower[0]}/{lower}"
    return f"{lower[:2]}/{lower[2:4]}/{lower}"


class SparseRegistry(StaticOrigin):
    """A sparse index at ``<url>/index`` and its crates at
    ``<url>/crates/<name>/<name>-<version>.crate`` (``dl_template``)."""

    what = "cargo registry"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        (root / "index").mkdir(parents=True, exist_ok=True)
        (root / "crates").mkdir(exist_ok=True)

    def start(self) -> Self:
        super().start()
        config = {"dl": self.dl_template, "api": self.url}
        (self.root / "index" / "config.json").write_text(json.dumps(config))
        return self

    @property
    def index_url(self) -> str:
        return self.url + "/index"

    @property
    def dl_template(self) -> str:
        return self.url + "/crates/{crate}/{crate}-{version}.crate"

    def publish(
        self, crate: Crate, cksum: str | None = None, data: bytes | None = None
    ) -> None:
        """Add ``crate``'s line to its index file and its ``.crate``;
        ``cksum`` / ``data``: an index line or file that disagree."""
        index = self.root / "index" / index_path(crate.name)
        index.parent.mkdir(parents=True, exist_ok=True)
        with index.open("a") as lines:
            lines.write(crate.index_line(cksum) + "\n")
        folder = self.root / "crates" / crate.name
        folder.mkdir(exist_ok=True)
        (folder / crate.file).write_bytes(crate.data if data is None else data)


class CargoClient:
    """A scratch cargo: ``CARGO_HOME`` whose crates-io is the registry at
    ``registry`` (``sparse+`` URL), and a binary project depending on
    ``deps``."""

    def __init__(self, root: Path, registry: str, deps: dict[str, str]) -> None:
        self.cargo = find_cargo() or "cargo"
        self.home = root / "cargo-home"
        self.project = root / "project"
        self.home.mkdir(parents=True)
        (self.home / "config.toml").write_text(
            '[source.crates-io]\nreplace-with = "cache"\n\n'
            f'[source.cache]\nregistry = "sparse+{registry}"\n\n'
            "[net]\nretry = 0\n"
        )
        (self.project / "src").mkdir(parents=True)
        lines = "\n".join(f'{dep} = "{req}"' for dep, req in deps.items())
        (self.project / "Cargo.toml").write_text(
            '[package]\nname = "pkgcache-client"\nversion = "0.1.0"\n'
            f'edition = "2021"\n\n[dependencies]\n{lines}\n'
        )
        used = " + ".join(f"{rust_name(dep)}::value()" for dep in deps) or "0"
        (self.project / "src" / "main.rs").write_text(
            f'fn main() {{ println!("{{}}", {used}); }}\n'
        )

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "CARGO_HOME": str(self.home),
            "CARGO_NET_RETRY": "0",
            "CARGO_TARGET_DIR": str(self.project / "target"),
            "CARGO_TERM_COLOR": "never",
            "CARGO_INCREMENTAL": "0",
        }
        env.pop("RUSTC_WRAPPER", None)
        return subprocess.run(
            [self.cargo, *args],
            cwd=self.project,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def fetch(self) -> subprocess.CompletedProcess[str]:
        return self.run("fetch")

    def build(self) -> subprocess.CompletedProcess[str]:
        return self.run("build", "--offline", "-q")

    def locked(self) -> dict[str, str]:
        """name -> version of each package in Cargo.lock (but the project)."""
        found = {}
        name = None
        for line in (self.project / "Cargo.lock").read_text().splitlines():
            if line.startswith("name = "):
                name = json.loads(line.split("=", 1)[1])
            elif line.startswith("version = ") and name is not None:
                if name != "pkgcache-client":
                    found[name] = json.loads(line.split("=", 1)[1])
                name = None
        return found
