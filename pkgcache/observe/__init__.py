"""Watching the daemon: the access log, Prometheus metrics, the status
snapshot. May import store, fetching and settings; never serving or the
command line. Nothing here decides anything: decisions never read metrics."""
