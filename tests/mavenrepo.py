"""Maven repositories built by the tests, and Debian's ``mvn`` run on them.

``MavenRepo`` lays out releases (a pom, a jar and the sidecars the test
asks for: ``.sha512``, ``.sha256``, ``.sha1``, ``.md5``) and snapshots
(``maven-metadata.xml`` naming a timestamped build) in a folder that
``tests/static_origin.py`` serves. ``debian_plugins`` copies Debian's
``/usr/share/maven-repo`` (symlinks followed), where ``mvn`` finds the
dependency plugin and everything it needs: it is the repository's
second source. ``Mvn`` is a clean client: its own settings (one mirror
of ``*``: the cache) and local repository.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

DEBIAN_REPO = Path("/usr/share/maven-repo")
#: The plugin ``mvn dependency:get`` runs: what Debian's
#: libmaven-dependency-plugin-java installs.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.5.0"
GROUP = "org.pkgcache.demo"  # no public repository has it


def missing_tools() -> list[str]:
    """What the mvn tests need and this machine lacks (Debian packages)."""
    missing = []
    if shutil.which("mvn") is None:
        missing.append("mvn (maven)")
    plugin = DEBIAN_REPO / "org/apache/maven/plugins/maven-dependency-plugin/3.5.0"
    if not plugin.is_dir():
        missing.append(
            "maven-dependency-plugin 3.5.0 (libmaven-dependency-plugin-java)"
        )
    return missing


def jar(content: str) -> bytes:
    """A small jar (a zip) holding one text file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        archive.writestr("demo.txt", content)
    return buffer.getvalue()


def pom(artifact: str, version: str, dependencies: tuple[str, ...] = ()) -> bytes:
    """A pom of ``GROUP:artifact:version`` depending on ``artifact:version``
    strings of the same group."""
    deps = "".join(
        f"<dependency><groupId>{GROUP}</groupId><artifactId>{name}</artifactId>"
        f"<version>{ver}</version></dependency>"
        for name, ver in (dep.split(":") for dep in dependencies)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<project>'
        "<modelVersion>4.0.0</modelVersion>"
        f"<groupId>{GROUP}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{version}</version><packaging>jar</packaging>"
        f"<dependencies>{deps}</dependencies></project>\n"
    ).encode()


def sidecar(data: bytes, algorithm: str, name: str | None = None) -> bytes:
    """What a repository publishes beside ``data``: its hex digest, with
    the file's name after it when ``name`` is given (``sha1sum`` style)."""
    text = hashlib.new(algorithm, data).hexdigest()
    return f"{text}  {name}\n".encode() if name else text.encode()


@dataclass
class MavenRepo:
    """A repository folder; paths are below its root, as clients ask."""

    root: Path

    def folder(self, artifact: str, version: str) -> str:
        return f"{GROUP.replace('.', '/')}/{artifact}/{version}"

    def write(self, path: str, data: bytes, sidecars: tuple[str, ...] = ()) -> str:
        """``data`` at ``path``, with a sidecar of each algorithm."""
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        for algorithm in sidecars:
            (self.root / f"{path}.{algorithm}").write_bytes(
                sidecar(data, algorithm, target.name if algorithm == "sha1" else None)
            )
        return path

    def release(
        self,
        artifact: str,
        version: str,
        dependencies: tuple[str, ...] = (),
        sidecars: tuple[str, ...] = ("sha512", "sha1", "md5"),
    ) -> str:
        """A release's pom and jar; returns the jar's path."""
        base = f"{self.folder(artifact, version)}/{artifact}-{version}"
        self.write(f"{base}.pom", pom(artifact, version, dependencies), sidecars)
        return self.write(f"{base}.jar", jar(f"{artifact} {version}"), sidecars)

    def snapshot(self, artifact: str, version: str, build: int) -> str:
        """Build ``build`` of a ``-SNAPSHOT`` version, named in its
        ``maven-metadata.xml`` as Maven deploys it; returns the jar's path."""
        stamp = f"20250101.{build:06d}"
        updated = stamp.replace(".", "")
        value = f"{version.removesuffix('-SNAPSHOT')}-{stamp}-{build}"
        folder = self.folder(artifact, version)
        self.write(
            f"{folder}/{artifact}-{value}.pom", pom(artifact, version), ("sha1",)
        )
        path = self.write(
            f"{folder}/{artifact}-{value}.jar",
            jar(f"{artifact} {version} build {build}"),
            ("sha1",),
        )
        entries = "".join(
            f"<snapshotVersion><extension>{ext}</extension><value>{value}</value>"
            f"<updated>{updated}</updated></snapshotVersion>"
            for ext in ("jar", "pom")
        )
        metadata = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<metadata modelVersion="1.1.0">'
            f"<groupId>{GROUP}</groupId><artifactId>{artifact}</artifactId>"
            f"<version>{version}</version><versioning><snapshot>"
            f"<timestamp>{stamp}</timestamp><buildNumber>{build}</buildNumber>"
            f"</snapshot><lastUpdated>{updated}</lastUpdated>"
            f"<snapshotVersions>{entries}</snapshotVersions></versioning></metadata>\n"
        ).encode()
        self.write(f"{folder}/maven-metadata.xml", metadata, ("sha1", "md5"))
        return path


def debian_plugins(destination: Path) -> Path:
    """Debian's Maven repository copied with its symlinks followed, plus
    the ``junit:junit:4.x`` its poms name and Debian does not install
    here (a stub: nothing runs tests)."""
    subprocess.run(["cp", "-rL", str(DEBIAN_REPO), str(destination)], check=True)
    stub = destination / "junit/junit/4.x"
    stub.mkdir(parents=True, exist_ok=True)
    (stub / "junit-4.x.pom").write_bytes(
        b"<project><modelVersion>4.0.0</modelVersion><groupId>junit</groupId>"
        b"<artifactId>junit</artifactId><version>4.x</version></project>\n"
    )
    (stub / "junit-4.x.jar").write_bytes(jar("junit stub"))
    return destination


class Mvn:
    """A clean Maven client whose one mirror (of ``*``) is ``url``."""

    def __init__(self, home: Path, url: str) -> None:
        self.home = home
        self.local = home / "repository"
        home.mkdir(parents=True)
        self.settings = home / "settings.xml"
        # Central's snapshots are off in Maven's super POM: a profile turns
        # them on (the mirror still takes every request), as for Nexus.
        # mvn's own checksum checks are off: they only warn, and they
        # double its requests (the cache checks each artifact itself).
        policy = "<enabled>true</enabled><checksumPolicy>ignore</checksumPolicy>"
        central = (
            "<id>central</id><url>http://central</url>"
            f"<releases>{policy}</releases><snapshots>{policy}</snapshots>"
        )
        self.settings.write_text(
            "<settings><mirrors><mirror><id>cache</id><mirrorOf>*</mirrorOf>"
            f"<url>{url}</url></mirror></mirrors><profiles><profile><id>cache</id>"
            f"<repositories><repository>{central}</repository></repositories>"
            "<pluginRepositories>"
            f"<pluginRepository>{central}</pluginRepository>"
            "</pluginRepositories></profile></profiles>"
            "<activeProfiles><activeProfile>cache</activeProfile></activeProfiles>"
            "</settings>\n"
        )

    def get(self, coordinates: str) -> subprocess.CompletedProcess[str]:
        """``mvn dependency:get`` of ``coordinates`` and what it needs;
        raises with its output when it fails."""
        result = subprocess.run(
            [
                "mvn",
                "--batch-mode",
                "--no-transfer-progress",
                "-s",
                str(self.settings),
                f"-Dmaven.repo.local={self.local}",
                f"{DEPENDENCY_PLUGIN}:get",
                f"-Dartifact={coordinates}",
            ],
            cwd=self.home,
            env={**os.environ, "MAVEN_OPTS": "-Xshare:auto -XX:TieredStopAtLevel=1"},
            capture_output=True,
            text=True,
            timeout=180,
        )
        if result.returncode != 0:
            raise AssertionError(f"mvn failed:\n{result.stdout[-6000:]}")
        return result

    def file(self, path: str) -> Path:
        """Where the local repository keeps the file at ``path``."""
        return self.local / path
