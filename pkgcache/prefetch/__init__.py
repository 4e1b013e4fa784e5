"""Prefetch: newer versions of what clients downloaded, fetched before
anyone asks. ``finders.py`` names what one pass wants from the indexes
(one module per kind), ``versions.py`` orders versions, ``passes.py``
runs the passes through the same routing, choice and downloads a client's
request takes. Above ``serving/`` (it routes as a request would); nothing
below imports it."""
