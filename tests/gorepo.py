"""A Go module proxy and checksum database as static folders, for the
tests and the benchmark, and a scratch go client.

``GoRepo(root)`` writes ``root/proxy`` (the GOPROXY protocol:
``<module>/@v/list``, ``<version>.info``, ``.mod``, ``.zip`` with every
file under ``module@version/``, paths case-encoded) and ``root/sumdb``
(one lookup record per version, ``lookup/<module>@<version>``: the
record's hash lines and an unsigned note; the cache only reads the hash
lines, and the client runs with ``GOSUMDB=off``). The ``h1:`` hashes
are computed here independently of ``pkgcache``; a test checks them
against the ones Go itself writes (``.ziphash``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

GO = shutil.which("go")


def missing_go() -> bool:
    return GO is None


def escape(text: str) -> str:
    """Go's case encoding (``!x`` for ``X``)."""
    return "".join("!" + c.lower() if c.isupper() else c for c in text)


def h1(files: dict[str, bytes]) -> str:
    lines = [
        f"{hashlib.sha256(files[name]).hexdigest()}  {name}\n" for name in sorted(files)
    ]
    return (
        "h1:"
        + base64.b64encode(hashlib.sha256("".join(lines).encode()).digest()).decode()
    )


@dataclass
class Module:
    path: str
    version: str
    #: File name (below the module root) -> contents; ``go.mod`` is made
    #: from ``requires`` when not given.
    files: dict[str, bytes]
    requires: dict[str, str] = field(default_factory=dict)
    time: str = "2024-01-02T03:04:05Z"

    @property
    def go_mod(self) -> bytes:
        if "go.mod" in self.files:
            return self.files["go.mod"]
        lines = [f"module {self.path}\n\ngo 1.19\n"]
        if self.requires:
            lines.append("\nrequire (\n")
            lines += [f"\t{p} {v}\n" for p, v in sorted(self.requires.items())]
            lines.append(")\n")
        return "".join(lines).encode()

    def zip_bytes(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in sorted({**self.files, "go.mod": self.go_mod}.items()):
                info = zipfile.ZipInfo(f"{self.path}@{self.version}/{name}")
                info.compress_type = (
                    zipfile.ZIP_STORED if len(data) > 1 << 20 else zipfile.ZIP_DEFLATED
                )
                archive.writestr(info, data)
        return buffer.getvalue()

    def hashes(self) -> tuple[str, str]:
        """(h1 of the zip, h1 of the go.mod)."""
        prefix = f"{self.path}@{self.version}/"
        files = {
            prefix + n: d for n, d in {**self.files, "go.mod": self.go_mod}.items()
        }
        return h1(files), h1({"go.mod": self.go_mod})


class GoRepo:
    """A proxy folder and a checksum database folder under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proxy = root / "proxy"
        self.sumdb = root / "sumdb"
        self.records = 0

    def folder(self, module: str) -> Path:
        return self.proxy / escape(module) / "@v"

    def publish(self, module: Module, record: tuple[str, str] | None = None) -> None:
        """Write the version's files, add it to ``@v/list`` and write its
        lookup record (``record``: other hashes to state instead)."""
        folder = self.folder(module.path)
        folder.mkdir(parents=True, exist_ok=True)
        version = escape(module.version)
        (folder / f"{version}.mod").write_bytes(module.go_mod)
        (folder / f"{version}.zip").write_bytes(module.zip_bytes())
        info = {"Version": module.version, "Time": module.time}
        (folder / f"{version}.info").write_text(json.dumps(info))
        listed = folder / "list"
        known = listed.read_text().split() if listed.exists() else []
        # A new mtime the cache's revalidation sees even within a second.
        listed.write_text("".join(f"{v}\n" for v in [*known, module.version]))
        stamp = os.stat(listed).st_mtime_ns + 2_000_000_000 * (len(known) + 1)
        os.utime(listed, ns=(stamp, stamp))
        zip_hash, mod_hash = record or module.hashes()
        self.records += 1
        lookup = self.sumdb / "lookup" / f"{escape(module.path)}@{version}"
        lookup.parent.mkdir(parents=True, exist_ok=True)
        lookup.write_text(
            f"{self.records}\n{module.path} {module.version} {zip_hash}\n"
            f"{module.path} {module.version}/go.mod {mod_hash}\n\n"
            "go.sum database tree\n1\nAAAA\n\n— test.sumdb unsigned\n"
        )


def go_env(home: Path, proxy_url: str) -> dict[str, str]:
    """A scratch client: its own GOPATH, module cache and build cache under
    ``home``; modules only through ``proxy_url``; no checksum database."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GOPATH": str(home / "gopath"),
        "GOMODCACHE": str(home / "modcache"),
        "GOCACHE": str(home / "gocache"),
        "GOPROXY": proxy_url,
        "GOSUMDB": "off",
        "GOFLAGS": "-mod=mod -modcacherw",
        "GONOSUMDB": "",
        "GOPRIVATE": "",
        "GO111MODULE": "on",
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
    }


def go(
    args: list[str], cwd: Path, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    assert GO is not None
    result = subprocess.run(
        [GO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"go {' '.join(args)} failed:\n{result.stderr}")
    return result


def write_app(folder: Path, requires: dict[str, str], main: str) -> Path:
    """A main module in ``folder`` requiring ``requires``."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"require {p} {v}\n" for p, v in sorted(requires.items()))
    (folder / "go.mod").write_text(f"module example.com/app\n\ngo 1.19\n\n{lines}")
    (folder / "main.go").write_text(main)
    return folder
