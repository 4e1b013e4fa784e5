"""package-cache: a caching proxy for package downloads."""

__version__ = "0.3.0"
