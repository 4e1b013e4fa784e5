"""Which of two versions is newer, by each ecosystem's own ordering.

Debian's and PEP 440's come from the libraries their ecosystems keep
(python-debian, packaging). rpm's ``rpmvercmp`` (also Arch's ``vercmp``),
Alpine's apk ordering and npm's semver are short and specified: they are
written here and tested against the reference implementations' own test
vectors (``tests/test_prefetch_versions.py``).

Every ``compare_*`` returns a negative number, 0 or a positive number as
``a`` is older than, equal to or newer than ``b``; a version that cannot be
read compares as older than every readable one, so prefetch never chases
garbage.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from debian.debian_support import Version as DebianVersion
from packaging.version import InvalidVersion
from packaging.version import Version as Pep440Version

Compare = Callable[[str, str], int]


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


def compare_debian(a: str, b: str) -> int:
    """Debian policy 5.6.12 (epoch, upstream version, revision; ``~`` sorts
    before everything)."""
    try:
        return _sign(DebianVersion(a)._compare(DebianVersion(b)))
    except ValueError:
        return _unreadable(_debian_readable, a, b)


def _debian_readable(version: str) -> bool:
    try:
        DebianVersion(version)
    except ValueError:
        return False
    return True


def compare_pep440(a: str, b: str) -> int:
    """PEP 440, by ``packaging``."""
    try:
        first, second = Pep440Version(a), Pep440Version(b)
    except InvalidVersion:
        return _unreadable(_pep440_readable, a, b)
    return (first > second) - (first < second)


def _pep440_readable(version: str) -> bool:
    try:
        Pep440Version(version)
    except InvalidVersion:
        return False
    return True


def _unreadable(readable: Callable[[str], bool], a: str, b: str) -> int:
    return readable(a) - readable(b)


_RPM_SEGMENT = re.compile(r"([0-9]+)|([a-zA-Z]+)|(~)|(\^)")


def rpmvercmp(a: str, b: str) -> int:
    """rpm's ``rpmvercmp`` of one version or release string: runs of digits
    compare as numbers and beat runs of letters; ``~`` sorts before
    anything, even the end; ``^`` after the end but before anything else;
    other characters only separate."""
    if a == b:
        return 0
    one, two = _rpm_tokens(a), _rpm_tokens(b)
    for first, second in zip(one, two, strict=False):
        if first != second:
            return _rpm_token_order(first, second)
    if len(one) == len(two):
        return 0
    longer, sign = (one, 1) if len(one) > len(two) else (two, -1)
    following = longer[min(len(one), len(two))]
    # What follows the shorter string decides: a tilde makes the longer one
    # older, a caret or anything else newer.
    return -sign if following == "~" else sign


def _rpm_tokens(version: str) -> list[str]:
    return [match.group(0) for match in _RPM_SEGMENT.finditer(version)]


def _rpm_token_order(first: str, second: str) -> int:
    # A tilde sorts before anything, a caret before anything but a tilde.
    for marker in ("~", "^"):
        if first == marker or second == marker:
            if first == second:
                return 0
            return -1 if first == marker else 1
    first_digits, second_digits = first.isdigit(), second.isdigit()
    if first_digits != second_digits:
        return 1 if first_digits else -1
    if first_digits:
        first, second = first.lstrip("0") or "0", second.lstrip("0") or "0"
        if len(first) != len(second):
            return 1 if len(first) > len(second) else -1
    return (first > second) - (first < second)


def compare_rpm(a: str, b: str) -> int:
    """``[epoch:]version[-release]`` as rpm orders them (``rpmvercmp`` of
    each part; a missing epoch is 0; a missing release compares equal)."""
    return _compare_evr(_split_evr(a), _split_evr(b))


def compare_arch(a: str, b: str) -> int:
    """pacman's ``vercmp``: ``[epoch:]pkgver[-pkgrel]``, the parts by
    pacman's own ``rpmvercmp`` (``pacman_vercmp``)."""
    one, two = _split_evr(a), _split_evr(b)
    if one[0] != two[0]:
        return 1 if one[0] > two[0] else -1
    found = pacman_vercmp(one[1], two[1])
    if found or one[2] is None or two[2] is None:
        return found
    return pacman_vercmp(one[2], two[2])


def pacman_vercmp(a: str, b: str) -> int:
    """pacman's variant of ``rpmvercmp`` (libalpm ``version.c``): no tilde
    or caret; separators of different lengths decide; and where one string
    ends, a letter left in the other makes it older (``1.0rc`` < ``1.0``)
    while anything else left makes it newer (``1.5.a`` > ``1.5``)."""
    if a == b:
        return 0
    i = j = 0
    end_a = end_b = 0  # where the previous segments ended
    while i < len(a) and j < len(b):
        while i < len(a) and not a[i].isalnum():
            i += 1
        while j < len(b) and not b[j].isalnum():
            j += 1
        if i >= len(a) or j >= len(b):
            break
        if i - end_a != j - end_b:
            return -1 if i - end_a < j - end_b else 1
        kind = str.isdigit if a[i].isdigit() else _is_letter
        end_a, end_b = _run_end(a, i, kind), _run_end(b, j, kind)
        first, second = a[i:end_a], b[j:end_b]
        if not second:
            return 1 if kind is str.isdigit else -1
        if kind is str.isdigit:
            first, second = first.lstrip("0"), second.lstrip("0")
            if len(first) != len(second):
                return 1 if len(first) > len(second) else -1
        if first != second:
            return 1 if first > second else -1
        i, j = end_a, end_b
    rest_a, rest_b = a[i:], b[j:]
    if not rest_a and not rest_b:
        return 0
    if (not rest_a and not _is_letter(rest_b[0])) or (rest_a and _is_letter(rest_a[0])):
        return -1
    return 1


def _is_letter(text: str) -> bool:
    return text.isascii() and text.isalpha()


def _run_end(text: str, start: int, kind: Callable[[str], bool]) -> int:
    end = start
    while end < len(text) and kind(text[end]):
        end += 1
    return end


def _split_evr(version: str) -> tuple[int, str, str | None]:
    epoch_text, colon, rest = version.partition(":")
    if not colon:
        epoch_text, rest = "0", version
    epoch = int(epoch_text) if epoch_text.isdigit() else 0
    upstream, dash, release = rest.rpartition("-")
    if not dash:
        return epoch, rest, None
    return epoch, upstream, release


def _compare_evr(
    one: tuple[int, str, str | None], two: tuple[int, str, str | None]
) -> int:
    if one[0] != two[0]:
        return 1 if one[0] > two[0] else -1
    found = rpmvercmp(one[1], two[1])
    if found or one[2] is None or two[2] is None:
        return found
    return rpmvercmp(one[2], two[2])


_APK_VERSION = re.compile(
    r"(?P<numbers>[0-9]+(?:\.[0-9]+)*)(?P<letter>[a-z]?)"
    r"(?P<suffixes>(?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*)"
    r"(?:~(?P<hash>[0-9a-f]+))?(?:-r(?P<release>[0-9]+))?"
)
#: apk's suffix order: pre-releases before the plain version, then patches.
_APK_SUFFIXES = {"alpha": -4, "beta": -3, "pre": -2, "rc": -1}


def compare_apk(a: str, b: str) -> int:
    """Alpine's apk version order: dotted numbers, an optional letter,
    suffixes (``_alpha`` < ``_beta`` < ``_pre`` < ``_rc`` < none < ``_cvs``
    ``_svn`` ``_git`` ``_hg`` ``_p``), then the ``-rN`` release."""
    one, two = _apk_key(a), _apk_key(b)
    if one is None or two is None:
        return (one is not None) - (two is not None)
    return (one > two) - (one < two)


def _apk_key(version: str) -> tuple[object, ...] | None:
    match = _APK_VERSION.fullmatch(version)
    if not match:
        return None
    numbers = tuple(int(part) for part in match["numbers"].split("."))
    suffixes = []
    for suffix in re.findall(r"_([a-z]+)([0-9]*)", match["suffixes"] or ""):
        name, number = suffix
        suffixes.append((_APK_SUFFIXES.get(name, 1), int(number or 0)))
    suffixes.append((0, 0))  # the end of the suffixes: after pre-releases
    return (
        numbers,
        match["letter"] or "",
        tuple(suffixes),
        int(match["release"] or 0),
    )


_SEMVER = re.compile(
    r"v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?"
)


def compare_semver(a: str, b: str) -> int:
    """Semantic Versioning 2.0.0 precedence (npm's ``semver.compare``):
    major.minor.patch as numbers; a pre-release is older than its release,
    its identifiers compared numerically when numeric, numbers before
    words, more identifiers newer; build metadata ignored."""
    one, two = semver_key(a), semver_key(b)
    if one is None or two is None:
        return (one is not None) - (two is not None)
    return (one > two) - (one < two)


def semver_key(version: str) -> tuple[object, ...] | None:
    """A sort key for a semver version; None when it is not one."""
    match = _SEMVER.fullmatch(version.strip())
    if not match:
        return None
    core = (int(match[1]), int(match[2]), int(match[3]))
    if match[4] is None:
        return (core, (1,))
    parts = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in match[4].split(".")
    )
    return (core, (0, parts))


def is_prerelease(version: str) -> bool:
    """A semver version with a pre-release part (``1.2.0-beta.1``)."""
    match = _SEMVER.fullmatch(version.strip())
    return bool(match and match[4])


#: The ordering of each kind that prefetches.
ORDERINGS: dict[str, Compare] = {
    "debian": compare_debian,
    "arch": compare_arch,
    "rpm": compare_rpm,
    "alpine": compare_apk,
    "pypi": compare_pep440,
    "npm": compare_semver,
}
