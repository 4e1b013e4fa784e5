"""The command line: package-cache 0.2's flags, plus ``--config``.

Flags given on the command line override the config file; ``--source``
given at all replaces the file's whole source list (order is failover
order, so merging two lists would be a guess). Bad usage prints one line
and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from pkgcache import __version__, config

EXIT_USAGE = 2


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


def settings_from_args(argv: Sequence[str] | None = None) -> config.Settings:
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

    ``package-cache cull ...`` is the culling command (``cull.py``);
    anything else runs the server.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["cull"]:
        from pkgcache import cull

        return cull.main(args[1:])
    try:
        settings = settings_from_args(args)
    except config.ConfigError as error:
        print(f"package-cache: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    from pkgcache import server

    return server.run(settings, reload=lambda: settings_from_args(args))
