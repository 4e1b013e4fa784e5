"""Lines an admin sees whatever ``verbose`` says: the start and stop lines
and warnings about a configuration that quietly bypasses the cache.

``verbose = 0`` sets the root logger to errors only. Python weighs a
record against the level of the logger it is logged on (its own level
once set, not the root's) and then hands it to every handler up the
tree, so a logger whose own level is INFO reaches the root's handlers
(stderr, or syslog at the record's priority) at any verbosity. These
lines are few and bounded: one each at start and stop, one per
misconfigured repository, one per foreign host.
"""

from __future__ import annotations

import logging

NOTICE_LOGGER = "pkgcache.notice"


def notice_log() -> logging.Logger:
    """The logger of those lines, its level pinned at INFO."""
    logger = logging.getLogger(NOTICE_LOGGER)
    logger.setLevel(logging.INFO)
    return logger
