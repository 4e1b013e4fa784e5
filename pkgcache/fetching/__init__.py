"""Getting files from upstream: the sources in order, one attempt at a time
over a transport (tornado's curl client in production), and downloads
shared by their readers. May import store, settings, batches and
tornado_internals; never serving, observe or the command line."""
