"""The cache folder: look-ups of complete files, access times, the partial
folder's sweep and the publish step.

Layout: the cache root mirrors URL paths (``/distfiles/foo.tar.xz`` is
``ROOT/distfiles/foo.tar.xz``), so the root can double as Portage's DISTDIR.
Downloads in progress live in ``ROOT/.partial/`` (``partial.py``), on the
same file system so that publishing is one ``os.replace``. Request paths
never reach it: every name starting with ``.`` is refused by ``paths.py``.
Only the store package knows that folder and the publish step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
import time
from typing import NamedTuple

from pkgcache.store.partial import PartialFile
from pkgcache.store.paths import CacheKey
from pkgcache.store.usage import CacheUsage

log = logging.getLogger("pkgcache.store")

PARTIAL_FOLDER = ".partial"
#: Refresh a hit's access time at most this often (like relatime).
ATIME_INTERVAL = 3600
#: Folders known to resolve inside the root, remembered to spare a
#: realpath() per hit; forgotten all at once past this many.
SAFE_FOLDERS_REMEMBERED = 10000


class CachedFile(NamedTuple):
    """A complete file in the cache: its real path and its stat."""

    path: str
    stat: os.stat_result


class StoreError(Exception):
    """The cache folder cannot be used, or a file cannot be put in place."""


class OutsideCache(StoreError):
    """The path resolves outside the cache root (through a symlink)."""


class FileChanged(OSError):
    """The file opened is not the one the look-up saw: replaced, or
    changed in place (another size or mtime). Its bytes must not be sent
    under headers made from the look-up's stat; an ``OSError``, so callers
    that answer a file culled meanwhile with 503, or send the request down
    the general path, do the same here."""


class PathConflict(StoreError):
    """The key collides with the cache's own layout (a file where a folder
    must be, or the other way round)."""


def identity(result: os.stat_result) -> tuple[int, int, int, int]:
    """What makes two stats the same version of a file: device, inode,
    size and mtime (the access time changes on every hit, the mtime is the
    upstream's date and changes with the bytes)."""
    return (result.st_dev, result.st_ino, result.st_size, result.st_mtime_ns)


class CacheStore:
    """One cache folder. Methods do blocking file-system calls, all small.

    Every file it puts in place or removes is counted by ``usage`` (the
    daemon's one ``CacheUsage``, shared with eviction), which measures the
    old file as it goes.
    """

    def __init__(self, root: str, usage: CacheUsage | None = None) -> None:
        self.root = os.path.realpath(root)
        self.usage = usage if usage is not None else CacheUsage()
        self.partial_dir = os.path.join(self.root, PARTIAL_FOLDER)
        self._safe_folders: set[str] = set()
        self._failing = False
        umask = os.umask(0o022)
        os.umask(umask)
        #: Published files are readable as the umask allows (mkstemp's 0600
        #: would hide them from a web server or NFS export of the cache).
        self.file_mode = 0o666 & ~umask

    def prepare(self) -> int:
        """Create the folders, check they are writable, sweep old partials.

        Returns how many left-over partial files were removed. Raises
        ``StoreError`` with a readable message when the folder is unusable.
        """
        try:
            os.makedirs(self.partial_dir, exist_ok=True)
            probe_fd, probe = tempfile.mkstemp(dir=self.partial_dir)
            os.close(probe_fd)
            os.unlink(probe)
        except OSError as error:
            raise StoreError(
                f"cache folder {self.root} is not usable: {error.strerror}"
            ) from None
        return self.sweep()

    def sweep(self) -> int:
        """Remove left-over partial files (start-up, shutdown); returns how
        many. Never raises: a cache that became unusable is logged."""
        removed = 0
        try:
            entries = list(os.scandir(self.partial_dir))
        except OSError as error:
            log.warning("cannot look for partial files: %s", error.strerror)
            return 0
        for entry in entries:
            try:
                os.unlink(entry.path)
                removed += 1
            except OSError as error:
                log.warning("cannot remove left-over %s: %s", entry.path, error)
        return removed

    def final_path(self, key: CacheKey) -> str:
        """Where the complete file for ``key`` lives (``paths.py`` made the
        key safe to join)."""
        return self.root + os.sep + key.relative

    def lookup(self, key: CacheKey) -> CachedFile | None:
        """Find the cached file for ``key``, or None when it is not cached.

        Confinement: the file and its folder must resolve inside the root
        (a symlink may point within the cache, never out of it). Folders
        already checked are remembered, so a hit costs one ``lstat``.
        Raises ``OutsideCache`` for a path that leads out of the cache and
        ``PathConflict`` when the path is a folder or lies under a file, since
        no download could ever be stored there.
        """
        path = self.final_path(key)
        try:
            result = os.lstat(path)
        except FileNotFoundError:
            self._check_folder(os.path.dirname(path), key)
            return None
        except NotADirectoryError:
            raise PathConflict(f"{key} lies under a cached file") from None
        if stat.S_ISLNK(result.st_mode):
            path = os.path.realpath(path)
            if not self._inside_root(path):
                raise OutsideCache(f"{key} is a symlink out of the cache")
            try:
                result = os.stat(path)
            except OSError:
                return None
        if not stat.S_ISREG(result.st_mode):
            raise PathConflict(f"{key} is not a regular file in the cache")
        self._check_folder(os.path.dirname(path), key)
        return CachedFile(path, result)

    def open_verified(self, cached: CachedFile) -> int:
        """Open a looked-up file for reading, confined to the cache.

        The look-up's folder check is remembered, and another process may
        swap a folder for a symlink out of the cache afterwards, so every
        file is checked again once opened, where no swap can follow: its
        real path (what the kernel says it opened) must lie under the root,
        else ``OutsideCache``. It must also be the very file the look-up
        saw, since the caller's headers (length, ETag) come from
        ``cached.stat``: the same inode, size and mtime, else
        ``FileChanged``. Returns a descriptor the caller closes; raises
        ``OutsideCache`` or ``OSError`` (``FileChanged`` included).
        """
        fd = os.open(cached.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if not self._inside_root(self._real_path(fd, cached.path)):
                raise OutsideCache(f"{cached.path} leads out of the cache")
            if identity(os.fstat(fd)) != identity(cached.stat):
                raise FileChanged(f"{cached.path} changed since it was looked up")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read_stored(self, key: CacheKey) -> bytes | None:
        """The whole file at ``key`` if it is cached, looked up and opened
        with the same confinement as a hit; None when it is not there or
        cannot be read."""
        try:
            cached = self.lookup(key)
            return self.read_verified(cached) if cached is not None else None
        except (OSError, OutsideCache, PathConflict):
            return None

    def read_verified(self, cached: CachedFile) -> bytes:
        """The whole of a looked-up file, opened as ``open_verified`` does
        (a registry document, which is answered from memory)."""
        fd = self.open_verified(cached)
        try:
            size = cached.stat.st_size
            chunks = []
            offset = 0
            while offset < size:
                chunk = os.pread(fd, size - offset, offset)
                if not chunk:
                    raise OSError(f"{cached.path} shrank while read")
                chunks.append(chunk)
                offset += len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    @staticmethod
    def _real_path(fd: int, path: str) -> str:
        """The path the kernel knows for ``fd``; ``path`` resolved where
        /proc is not mounted."""
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return os.path.realpath(path)

    def _check_folder(self, folder: str, key: CacheKey) -> None:
        if folder in self._safe_folders:
            return
        if not self._inside_root(folder):
            raise OutsideCache(f"a folder of {key} leads out of the cache")
        if len(self._safe_folders) >= SAFE_FOLDERS_REMEMBERED:
            self._safe_folders.clear()
        self._safe_folders.add(folder)

    def storage_failed(self, what: str, error: OSError) -> None:
        """Log that the cache cannot store (full, read-only): once, until a
        file is stored again, so a full disk does not flood the log while
        every miss is served through."""
        if self._failing:
            log.debug("cannot %s: %s", what, error.strerror or error)
            return
        self._failing = True
        log.error(
            "cannot %s (%s): serving downloads through without storing them "
            "until the cache can be written again",
            what,
            error.strerror or error,
        )

    def storage_works(self) -> None:
        if self._failing:
            self._failing = False
            log.warning("the cache can be written again: storing downloads")

    def new_partial(self) -> PartialFile:
        """Create a private partial file for a download (raises OSError)."""
        fd, path = tempfile.mkstemp(dir=self.partial_dir, prefix="dl-")
        try:
            os.fchmod(fd, self.file_mode)
        except OSError:
            os.close(fd)
            raise
        return PartialFile(path, fd, self.put_in_place)

    def put_in_place(
        self, partial_path: str, key: CacheKey, mtime: float | None
    ) -> str:
        """Move a complete partial file to its final path, atomically
        (``PartialFile.publish``).

        ``mtime`` (the upstream's Last-Modified) becomes the file's mtime;
        the access time is set to now, so culling by access time sees a
        fresh file. Raises ``PathConflict`` or ``StoreError``; the partial
        file is left for the caller to discard.
        """
        final = self.final_path(key)
        parent = os.path.dirname(final)
        try:
            os.makedirs(parent, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise PathConflict(f"a parent of {key} is a cached file") from None
        except OSError as error:
            raise StoreError(f"cannot create folder for {key}: {error}") from None
        if not self._inside_root(parent):
            raise PathConflict(f"folder of {key} leads out of the cache")
        now = time.time()
        try:
            os.utime(partial_path, (now, now if mtime is None else mtime))
            self.usage.change(final, lambda: os.replace(partial_path, final))
        except IsADirectoryError:
            raise PathConflict(f"{key} is a folder in the cache") from None
        except OSError as error:
            raise StoreError(f"cannot store {key}: {error}") from None
        return final

    def link(self, key: CacheKey, also: CacheKey) -> str:
        """Make the stored file of ``key`` the file of ``also`` too (one
        inode; published as a partial file is: a temporary link in the
        partial folder, then moved in place). Returns the final path of
        ``also``; raises ``StoreError`` (or ``OSError``)."""
        source = self.final_path(key)
        temporary = os.path.join(
            self.partial_dir, f"ln-{os.getpid()}-{time.monotonic_ns()}"
        )
        os.link(source, temporary, follow_symlinks=False)
        try:
            mtime = os.stat(temporary).st_mtime
            return self.put_in_place(temporary, also, mtime)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def remove(self, key: CacheKey) -> None:
        """Remove the cached file of ``key`` (gone upstream); readers that
        hold it open keep their view."""
        try:
            cached = self.lookup(key)
        except StoreError:
            return
        if cached is not None and cached.path == self.final_path(key):
            with contextlib.suppress(FileNotFoundError):
                self.usage.change(cached.path, lambda: os.unlink(cached.path))

    def touch(self, path: str, result: os.stat_result) -> None:
        """Record an access on a hit, at most once per ``ATIME_INTERVAL``.

        Many systems mount with noatime, and culling relies on access times,
        so hits set them explicitly; the mtime (upstream date) is kept.
        """
        now = time.time()
        if now - result.st_atime < ATIME_INTERVAL:
            return
        try:
            os.utime(path, ns=(time.time_ns(), result.st_mtime_ns))
        except OSError as error:
            log.debug("cannot update access time of %s: %s", path, error)

    def _inside_root(self, path: str) -> bool:
        real = os.path.realpath(path)
        return real == self.root or real.startswith(self.root + os.sep)
