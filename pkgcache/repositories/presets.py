"""The rules of each repository ``kind``: which files change in place
(volatile: revalidated after ``fresh_for``) and which never do (immutable:
the version or a digest is in the name). First match wins; anything no
rule names is immutable.

Globs are on the path below the repository's prefix (``globs.py``).
"""

from __future__ import annotations

VOLATILE = "volatile"
IMMUTABLE = "immutable"
PASS = "pass"
POLICIES = (IMMUTABLE, VOLATILE, PASS)

_DEBIAN_INDEXES = (
    "InRelease",
    "Release",
    "Release.gpg",
    "Packages*",
    "Sources*",
    "Contents-*",
    "Translation-*",
    "Components-*",
    "icons-*",
    "Commands-*",
)

PRESETS: dict[str, tuple[tuple[str, str], ...]] = {
    "generic": (),
    "gentoo": (
        ("distfiles/layout.conf", VOLATILE),
        ("**/Packages", VOLATILE),
        ("snapshots/**/*latest*", VOLATILE),
        ("releases/**/latest-*.txt", VOLATILE),
    ),
    "debian": (
        # Content-addressed files and the packages themselves never change.
        ("pool/**", IMMUTABLE),
        ("dists/**/by-hash/**", IMMUTABLE),
        ("dists/**/*.diff/Index", VOLATILE),
        ("dists/**/*.diff/*", IMMUTABLE),  # pdiff patches: named by date
        ("dists/**/i18n/Index", VOLATILE),
        ("dists/**/installer-*/current/**", VOLATILE),
        *(("dists/**/" + name, VOLATILE) for name in _DEBIAN_INDEXES),
        # Flat repositories keep their indexes outside dists/.
        *(("**/" + name, VOLATILE) for name in ("Packages*", "Release*", "InRelease")),
    ),
    "arch": (
        ("**/*.pkg.tar.*", IMMUTABLE),
        *(
            ("**/" + name, VOLATILE)
            for name in (
                "*.db",
                "*.db.sig",
                "*.files",
                "*.files.sig",
                "*.db.tar.*",
                "*.files.tar.*",
                "lastupdate",
                "lastsync",
            )
        ),
    ),
    "rpm": (
        ("**/repodata/repomd.xml*", VOLATILE),
        ("**/.treeinfo", VOLATILE),
        ("**/metalink", VOLATILE),
        ("**/mirrorlist", VOLATILE),
    ),
    # Registries: their fronts (``registries/``) give each path its policy.
    "pypi": (),
    "npm": (),
    "go": (),
    "cargo": (),
    "oci": (),
    "alpine": (
        ("**/APKINDEX.tar.gz", VOLATILE),
        ("**/last-updated", VOLATILE),
    ),
    # Metadata and snapshots change; every other file of a version never
    # does (``registries/maven.py`` checks those against their sidecars).
    "maven": (
        ("**/maven-metadata.xml", VOLATILE),
        *(
            ("**/maven-metadata.xml." + ext, VOLATILE)
            for ext in ("md5", "sha1", "sha256", "sha512")
        ),
        ("**/*-SNAPSHOT/**", VOLATILE),
        ("archetype-catalog.xml*", VOLATILE),
    ),
}
