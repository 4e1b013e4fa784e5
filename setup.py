"""Packaging for package-cache: metadata here, the build system in pyproject.toml."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"', (HERE / "pkgcache" / "__init__.py").read_text()
).group(1)

setup(
    name="package-cache",
    version=VERSION,
    description="A caching proxy for package downloads (Gentoo distfiles and more)",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="GPL-3.0-or-later",
    packages=find_packages(include=["pkgcache", "pkgcache.*"]),
    python_requires=">=3.11",
    install_requires=[
        "tornado>=6.5.7",
        "pycurl>=7.45.4",
        "prometheus_client>=0.17",
        # Prefetch orders versions as the ecosystems do: PEP 440 and Debian.
        "packaging>=22",
        "python-debian>=0.1.49",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-timeout",
            "pytest-xdist",
            "ruff",
            "mypy",
            "build",
            "hypothesis",
            "uv",
        ]
    },
    entry_points={"console_scripts": ["package-cache = pkgcache.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)",
        "Operating System :: POSIX :: Linux",
        "Topic :: Internet :: Proxy Servers",
    ],
)
