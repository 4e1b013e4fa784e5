"""The cache on disk: paths (pure), final and partial files, small-file
memory, usage, cull and eviction. May import ``settings`` and ``batches``;
never fetching, serving, observe or the command line."""
