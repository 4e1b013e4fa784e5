"""Digests: what a file's bytes must hash to, where that is known from
(its path, its repository's index, the upstream's headers), and the check
made as the bytes arrive. Imports ``store.paths`` only; ``fetching``,
``registries`` and the ``verify`` command import this."""
