"""Registries: package indexes whose paths are an API, not files (PyPI's
simple pages, npm's package documents). Each kind has a front that turns
a request into a ``Target`` (where it is stored, where it is fetched from,
how its page is rewritten and answered) or a redirect or refusal. Maven's
paths are plain files; its front fetches an artifact's sidecars first.
Imports ``repositories``, ``fetching.upstream`` (routes), ``store``,
``digests``, and for Go's lookup records and Maven's sidecars
``fetching.inflight`` (downloads of their own through the cache);
``serving`` imports this."""
