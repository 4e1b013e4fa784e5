"""Registries: package indexes whose paths are an API, not files (PyPI's
simple pages, npm's package documents). Each kind has a front that turns
a request into a ``Target`` (where it is stored, where it is fetched from,
how its page is rewritten and answered) or a redirect or refusal. Imports
``repositories``, ``fetching.upstream`` (routes), ``store.paths``, and
for Go's lookup records ``fetching.inflight`` (a download of its own
through the cache); ``serving`` imports this."""
