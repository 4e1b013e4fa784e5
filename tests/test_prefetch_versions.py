"""The version orderings prefetch picks newer versions by, against the
reference implementations' own test vectors: rpm's ``rpmvercmp.at``,
pacman's ``vercmp.sh``, the Semantic Versioning 2.0.0 precedence example,
apk-tools' ``version.data``, Debian policy's examples and PEP 440's."""

from __future__ import annotations

import itertools

import pytest

from pkgcache.prefetch.versions import (
    compare_apk,
    compare_arch,
    compare_debian,
    compare_pep440,
    compare_rpm,
    compare_semver,
    rpmvercmp,
)

RPM = """\
1.0 1.0 0
1.0 2.0 -1
2.0 1.0 1
2.0.1 2.0.1 0
2.0 2.0.1 -1
2.0.1 2.0 1
2.0.1a 2.0.1a 0
2.0.1a 2.0.1 1
2.0.1 2.0.1a -1
5.5p1 5.5p1 0
5.5p1 5.5p2 -1
5.5p2 5.5p1 1
5.5p10 5.5p10 0
5.5p1 5.5p10 -1
5.5p10 5.5p1 1
10xyz 10.1xyz -1
10.1xyz 10xyz 1
xyz10 xyz10 0
xyz10 xyz10.1 -1
xyz10.1 xyz10 1
xyz.4 xyz.4 0
xyz.4 8 -1
8 xyz.4 1
xyz.4 2 -1
2 xyz.4 1
5.5p2 5.6p1 -1
5.6p1 5.5p2 1
5.6p1 6.5p1 -1
6.5p1 5.6p1 1
6.0.rc1 6.0 1
6.0 6.0.rc1 -1
10b2 10a1 1
10a2 10b2 -1
1.0aa 1.0aa 0
1.0a 1.0aa -1
1.0aa 1.0a 1
10.0001 10.0001 0
10.0001 10.1 0
10.1 10.0001 0
10.0001 10.0039 -1
10.0039 10.0001 1
4.999.9 5.0 -1
5.0 4.999.9 1
20101121 20101121 0
20101121 20101122 -1
20101122 20101121 1
2_0 2_0 0
2.0 2_0 0
2_0 2.0 0
a a 0
a+ a+ 0
a+ a_ 0
a_ a+ 0
+a +a 0
+a _a 0
_a +a 0
+_ +_ 0
_+ +_ 0
_+ _+ 0
+ _ 0
_ + 0
1.0~rc1 1.0~rc1 0
1.0~rc1 1.0 -1
1.0 1.0~rc1 1
1.0~rc1 1.0~rc2 -1
1.0~rc2 1.0~rc1 1
1.0~rc1~git123 1.0~rc1~git123 0
1.0~rc1~git123 1.0~rc1 -1
1.0~rc1 1.0~rc1~git123 1
1.0^ 1.0^ 0
1.0^ 1.0 1
1.0 1.0^ -1
1.0^git1 1.0^git1 0
1.0^git1 1.0 1
1.0 1.0^git1 -1
1.0^git1 1.0^git2 -1
1.0^git2 1.0^git1 1
1.0^git1 1.01 -1
1.01 1.0^git1 1
1.0^20160101 1.0^20160101 0
1.0^20160101 1.0.1 -1
1.0.1 1.0^20160101 1
1.0^20160101^git1 1.0^20160101^git1 0
1.0^20160102 1.0^20160101^git1 1
1.0^20160101^git1 1.0^20160102 -1
1.0~rc1^git1 1.0~rc1^git1 0
1.0~rc1^git1 1.0~rc1 1
1.0~rc1 1.0~rc1^git1 -1
1.0^git1~pre 1.0^git1~pre 0
1.0^git1 1.0^git1~pre 1
1.0^git1~pre 1.0^git1 -1
"""

PACMAN = """\
1.5.0 1.5.0 0
1.5.1 1.5.0 1
1.5.1 1.5 1
1.5.0-1 1.5.0-1 0
1.5.0-1 1.5.0-2 -1
1.5.0-1 1.5.1-1 -1
1.5.0-2 1.5.1-1 -1
1.5-1 1.5-1 0
1.5-2 1.5-1 1
1.5-1 1.5-2 -1
1.5.0-1 1.5.0 0
1.5.0 1.5.0-1 0
1.0a 1.0alpha -1
1.0alpha 1.0b -1
1.0b 1.0beta -1
1.0beta 1.0rc -1
1.0rc 1.0 -1
1.5.a 1.5 1
1.5.b 1.5.a 1
1.5.1 1.5.b 1
1.5.b-1 1.5.b 0
1.5-1 1.5.b -1
2.0 2_0 0
2.0_a 2_0.a 0
2.0a 2.0.a -1
2___a 2_a 1
0:1.0 0:1.0 0
0:1.0 0:1.1 -1
1:1.0 0:1.0 1
1:1.0 0:1.1 1
1:1.0 2:1.1 -1
1:1.0 0:1.0-1 1
1:1.0-1 0:1.1-1 1
0:1.0 1.0 0
0:1.0 1.1 -1
0:1.1 1.0 1
1:1.0 1.0 1
1:1.0 1.1 1
1:1.1 1.1 1
"""

SEMVER_ASCENDING = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "1.10.0",
    "2.0.0",
]

APK = """\
2.34 0.1.0_alpha 1
0.1.0_alpha 0.1.0_alpha 0
0.1.0_alpha 0.1.3_alpha -1
0.1.0_alpha2 0.1.0_alpha 1
0.1.0_alpha 0.1.0_beta -1
0.1.0_rc1 0.1.0 -1
0.1.0 0.1.0_p1 -1
1.0a 1.0 1
1.0-r1 1.0 1
1.0-r10 1.0-r9 1
1.2.3 1.2.10 -1
2.0_pre1 2.0_rc1 -1
"""

DEBIAN = """\
1.0 1.0 0
1.0 1.0-1 -1
1.0~rc1 1.0 -1
1.0 1.0+b1 -1
1:0.5 2.0 1
2.0-1 2.0-2 -1
2.0-1ubuntu1 2.0-1 1
1.0~~ 1.0~ -1
"""

PEP440 = """\
1.0 1.0.0 0
1.0a1 1.0 -1
1.0 1.0.post1 -1
1.0.dev1 1.0a1 -1
1!0.5 2.0 1
1.10 1.9 1
"""


def _vectors(text: str) -> list[tuple[str, str, int]]:
    rows = (line.split() for line in text.splitlines() if line.strip())
    return [(a, b, int(expected)) for a, b, expected in rows]


@pytest.mark.parametrize(("a", "b", "expected"), _vectors(RPM))
def test_rpmvercmp_matches_rpms_own_vectors(a: str, b: str, expected: int) -> None:
    assert rpmvercmp(a, b) == expected


def test_rpm_epoch_and_release() -> None:
    assert compare_rpm("1:1.0-1", "2.0-1") == 1
    assert compare_rpm("1.0-2.fc40", "1.0-10.fc40") == -1
    assert compare_rpm("1.0-1", "1.0") == 0


@pytest.mark.parametrize(("a", "b", "expected"), _vectors(PACMAN))
def test_pacman_vercmp_matches_pacmans_own_vectors(
    a: str, b: str, expected: int
) -> None:
    assert compare_arch(a, b) == expected
    assert compare_arch(b, a) == -expected


def test_semver_precedence_is_the_specs_example() -> None:
    for older, newer in itertools.pairwise(SEMVER_ASCENDING):
        assert compare_semver(older, newer) == -1, (older, newer)
        assert compare_semver(newer, older) == 1
    assert compare_semver("1.0.0+build.1", "1.0.0+build.2") == 0
    assert compare_semver("not-a-version", "0.0.1") == -1


@pytest.mark.parametrize(("a", "b", "expected"), _vectors(APK))
def test_apk_order_matches_apk_tools_vectors(a: str, b: str, expected: int) -> None:
    assert compare_apk(a, b) == expected
    assert compare_apk(b, a) == -expected


@pytest.mark.parametrize(("a", "b", "expected"), _vectors(DEBIAN))
def test_debian_order(a: str, b: str, expected: int) -> None:
    assert compare_debian(a, b) == expected
    assert compare_debian(b, a) == -expected


@pytest.mark.parametrize(("a", "b", "expected"), _vectors(PEP440))
def test_pep440_order(a: str, b: str, expected: int) -> None:
    assert compare_pep440(a, b) == expected
    assert compare_pep440("garbage!", "0.1") == -1
