"""Registries: package indexes whose paths are an API, not files (PyPI's
simple pages, npm's package documents). Each kind has a front that turns
a request into a ``Target`` (where it is stored, where it is fetched from,
how its page is rewritten and answered) or a redirect or refusal. Maven's
paths are plain files; its front fetches an artifact's sidecars first,
through ``fetching.inflight``. Imports ``repositories``, ``fetching``,
``digests`` and ``store``; ``serving`` imports this."""
