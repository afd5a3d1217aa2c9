"""The exceptions qstore raises. Every one is a :class:`qstore.Error` carrying the engine's
message; most also derive from the matching built-in exception, so ``except KeyError``-style
code keeps working (``NotFound`` is a ``LookupError``, ``InvalidState`` a ``ValueError``,
``StorageError`` an ``OSError``)."""


class Error(Exception):
    """Base class of every qstore error."""


class NotFound(Error, LookupError):
    """A repository, ref, commit or state path does not exist."""


class Conflict(Error):
    """A concurrent change got in the way (overlapping commit), or a ref already exists."""


class Corrupt(Error):
    """Stored bytes are damaged, or written by an unknown format version."""


class QuotaExceeded(Error):
    """A scratch space is full; nothing was stored."""


class InvalidState(Error, ValueError):
    """The input or an argument was refused (shape, dtype, NaN, path, range, ...)."""


class StorageError(Error, OSError):
    """The operating system failed an I/O operation."""


class Unavailable(StorageError):
    """A remote service (a qstore server, S3, etcd) could not be reached or failed."""


class NotAuthorised(Error, PermissionError):
    """A qstore server refused the token: none, unknown, expired, revoked, or out of scope."""


__all__ = [
    "Error",
    "NotFound",
    "Conflict",
    "Corrupt",
    "QuotaExceeded",
    "InvalidState",
    "StorageError",
    "Unavailable",
    "NotAuthorised",
]
