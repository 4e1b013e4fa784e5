"""The command line: package-cache 0.2's flags, plus ``--config``, and the
``package-cache cull`` and ``verify`` commands.

Flags given on the command line override the config file; ``--source``
given at all replaces the file's whole source list (order is failover
order, so merging two lists would be a guess). Bad usage prints one line
and exits 2.

``cull`` and ``verify`` take the cache folder from ``--cache``, or from
the daemon's ``--config``. Those that change the folder (``cull`` but
with ``--dry-run``, ``verify --remove``) take its lock
(``store/lock.py``) for their run and exit 2, naming the daemon's pid,
while a daemon holds it: a daemon keeps its own count of the cache and
culls it itself (``max_size``, ``min_free``, ``max_age``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

from pkgcache import __version__, config
from pkgcache.settings import RepositorySettings, Settings
from pkgcache.store.lock import CacheLock, CacheLocked

EXIT_USAGE = 2
T = TypeVar("T")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="package-cache",
        description="A caching proxy for package downloads: the first request "
        "for a file is fetched from the first source that has it and streamed "
        "while it is cached; later requests are served from disk.",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="read settings from this TOML file"
    )
    parser.add_argument(
        "--source",
        metavar="URL",
        action="append",
        dest="sources",
        help="upstream base URL; repeat to add more, tried in order",
    )
    parser.add_argument(
        "--cache", metavar="PATH", help="cache folder (default /tmp/package-cache)"
    )
    parser.add_argument(
        "--host",
        help="address(es) to listen on, comma-separated; '::' is every "
        "IPv4 and IPv6 address (default localhost)",
    )
    parser.add_argument("--port", type=int, help="port to listen on (default 4000)")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        help="log more: -v warnings, -vv requests, -vvv debug",
    )
    parser.add_argument(
        "--syslog",
        action="store_true",
        default=None,
        help="log to syslog (facility daemon) instead of stderr",
    )
    parser.add_argument(
        "--version", action="version", version=f"package-cache {__version__}"
    )
    return parser


def settings_from_args(argv: Sequence[str] | None = None) -> Settings:
    """Parse ``argv``, read the config file if named, and merge the two."""
    args = make_parser().parse_args(argv)
    values: dict[str, Any] = {}
    where = "command line"
    if args.config:
        values.update(config.load_file(args.config))
        where = args.config
    for key in ("sources", "cache", "host", "port", "verbose", "syslog"):
        value = getattr(args, key)
        if value is not None:
            values[key] = value
    return config.build(values, where)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``package-cache`` console script.

    ``package-cache cull ...`` is the culling command (``cull_main``);
    anything else runs the server.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["cull"]:
        return cull_main(args[1:])
    if args[:1] == ["verify"]:
        return verify_main(args[1:])
    try:
        settings = settings_from_args(args)
    except config.ConfigError as error:
        print(f"package-cache: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    from pkgcache import server

    return server.run(settings, reload=lambda: settings_from_args(args))


def make_cull_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="package-cache cull",
        description="Remove cached files by access time, total size or free space.",
    )
    parser.add_argument(
        "--cache", metavar="PATH", help="the cache folder (default: --config's)"
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="the daemon's config file, for its cache folder",
    )
    parser.add_argument(
        "--older-than",
        metavar="DURATION",
        type=_arg(config.parse_duration),
        help="files not accessed for this long (30d, 12h, 3600)",
    )
    parser.add_argument(
        "--max-size",
        metavar="SIZE",
        type=_arg(config.parse_size),
        help="remove least recently accessed files until the cache "
        "holds at most SIZE (e.g. 200G)",
    )
    parser.add_argument(
        "--min-free",
        metavar="SIZE",
        type=_arg(config.parse_size),
        help="... until the file system has SIZE free",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list what would go, remove nothing"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print each file removed"
    )
    return parser


def cull_main(argv: Sequence[str]) -> int:
    """``package-cache cull``: one summary line; exit 2 on bad usage.
    Files that cannot be removed are logged to stderr, one line each."""
    from pkgcache.store import cull

    parser = make_cull_parser()
    args = parser.parse_args(argv)
    if args.older_than is None and args.max_size is None and args.min_free is None:
        parser.error("give --older-than, --max-size or --min-free")
    cache = _cache_folder(parser, args.cache, _settings_of(parser, args.config))
    logging.basicConfig(format="package-cache cull: %(message)s", stream=sys.stderr)
    lock = None if args.dry_run else _lock(parser, cache)
    result, victims = cull.cull(
        cache,
        older_than=args.older_than,
        max_size=args.max_size,
        min_free=args.min_free,
        dry_run=args.dry_run,
    )
    if lock is not None:
        lock.release()
    if args.verbose or args.dry_run:
        for victim in victims:
            print(victim.path)
    verb = "would remove" if args.dry_run else "removed"
    print(f"package-cache cull: {verb} {result}")
    return 0


def verify_main(argv: Sequence[str]) -> int:
    """``package-cache verify``: one line per wrong file and a summary;
    exit 1 when a file was wrong, 2 on bad usage."""
    from pkgcache import verify

    parser = OneLineParser(
        prog="package-cache verify",
        description="Check every cached file that has a known digest (from its "
        "path, the digest it matched when stored, or its repository's index).",
    )
    parser.add_argument(
        "--cache", metavar="PATH", help="the cache folder (default: --config's)"
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="the daemon's config: its cache folder, and its repositories "
        "say where the indexes are",
    )
    parser.add_argument("--remove", action="store_true", help="remove wrong files")
    args = parser.parse_args(argv)
    settings = _settings_of(parser, args.config)
    cache = _cache_folder(parser, args.cache, settings)
    repositories: tuple[RepositorySettings, ...] = ()
    if settings is not None:
        repositories = settings.all_repositories
    # Reading a live cache is harmless; removing under a daemon is not.
    lock = _lock(parser, cache) if args.remove else None
    wrong = 0
    for found in verify.verify(cache, repositories):
        if isinstance(found, verify.Tally):
            print(
                f"package-cache verify: {found.checked} files checked, "
                f"{found.wrong} wrong, {found.unknown} with no known digest"
            )
            break
        wrong += 1
        action = ""
        if args.remove:
            try:
                verify.remove(cache, found.path)
                action = "; removed"
            except OSError as error:
                action = f"; cannot remove: {error.strerror}"
        print(f"{found.path}: expected {found.expected}, got {found.actual}{action}")
    if lock is not None:
        lock.release()
    return 1 if wrong else 0


def _settings_of(parser: argparse.ArgumentParser, path: str | None) -> Settings | None:
    """The daemon's settings from its config file (None without one); a
    bad file is a usage error."""
    if not path:
        return None
    try:
        return config.build(config.load_file(path), path)
    except config.ConfigError as error:
        parser.error(str(error))


def _cache_folder(
    parser: argparse.ArgumentParser, given: str | None, settings: Settings | None
) -> str:
    """``--cache``, or the config file's cache folder; it must exist."""
    if given is not None:
        if not os.path.isdir(given):
            parser.error(f"--cache {given} is not a folder")
        return given
    if settings is None:
        parser.error("give --cache or --config")
    if not os.path.isdir(settings.cache):
        parser.error(f"the config's cache {settings.cache} is not a folder")
    return settings.cache


def _lock(parser: argparse.ArgumentParser, cache: str) -> CacheLock:
    """The cache folder's lock, for a command that changes the folder; a
    daemon holding it ends the command with one line (exit 2)."""
    try:
        return CacheLock.take(os.path.realpath(cache), create=False)
    except CacheLocked as locked:
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: {locked}\n")
    except OSError as error:
        parser.exit(
            EXIT_USAGE, f"{parser.prog}: error: cannot lock {cache}: {error.strerror}\n"
        )


def _arg(parse: Callable[[str], T]) -> Callable[[str], T]:
    """Wrap a parser so argparse reports its ValueError as a usage error."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert
