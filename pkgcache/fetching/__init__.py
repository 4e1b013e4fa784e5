"""Getting files from upstream: the sources in order through tornado's curl
client, and downloads shared by their readers. May import store, settings,
batches and tornado_internals; never serving, observe or the command line."""
