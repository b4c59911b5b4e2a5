"""The small, typed exception hierarchy every stage raises from.

Callers catch :class:`AggregatorError` at the edge (CLI, scheduler job) and the
specific subclasses where they recover differently.
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Base class of every error aggregator raises on purpose."""


class NotFoundError(AggregatorError):
    """What a command was asked about is not there (a post, a store not yet made): exit 1."""


class ConfigError(AggregatorError):
    """The configuration cannot be used. ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str] | str):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


class StorageError(AggregatorError):
    """The store cannot be opened, written or is of an unknown schema."""


class StoreLockedError(StorageError):
    """Another ``run`` holds the store."""


class StoreDamagedError(StorageError):
    """The store file is damaged (SQLite: malformed, not a database): nothing writes to it."""


class StoreFullError(StorageError):
    """The disk (or file system) under the store is full; the write was rolled back."""


# SQLite's primary result codes (sqlite3.Error.sqlite_errorcode & 0xff).
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 10, 11, 13, 26


def storage_error(path: object, e: BaseException) -> StorageError:
    """A :class:`StorageError` for an ``sqlite3.DatabaseError`` on the store at ``path``:
    one line naming the file, saying what happened and what to do."""
    detail = str(e) or type(e).__name__
    code = (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF
    lowered = detail.lower()
    if code == _SQLITE_FULL or "disk is full" in lowered:
        return StoreFullError(f"{path}: the disk is full ({detail}); the change in progress was rolled back and "
                              "nothing stored is lost: free some space, then run again")
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or "malformed" in lowered or "not a database" in lowered:
        return StoreDamagedError(
            f"{path}: the store is damaged ({detail}); nothing more is written to it. Restore a backup "
            "(`aggregator store backup DEST` makes them), or move the file aside to start a new store; "
            "`aggregator store check` shows what is wrong")
    if code == _SQLITE_IOERR:
        return StorageError(f"{path}: the disk could not be read or written ({detail}); check the disk and "
                            "its free space, then run again")
    return StorageError(f"{path}: the store cannot be used: {detail}")


class FetchError(AggregatorError):
    """A source could not be fetched. ``retry_after`` (seconds) when the server asked."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None, permanent: bool = False, unreachable: str | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.permanent = permanent
        # The origin (scheme://host:port) that did not answer (timeout, refused): the
        # cycle skips that origin's other sources.
        self.unreachable = unreachable


class PrivateAddressError(FetchError):
    """A request would have gone to a private-network address (loopback, RFC 1918, ...)."""

    def __init__(self, address: str, kind: str, message: str | None = None):
        super().__init__(message or f"refused to connect to {address} ({kind} address)")
        self.address = address
        self.kind = kind


class ParseError(AggregatorError):
    """A fetched document is not a usable feed."""


class ExtractionError(ParseError):
    """A fetched page holds no article text that could be found (or is no web page)."""


class TranslationError(AggregatorError):
    """A translation provider (or the whole chain) failed.

    ``retryable``: whether asking again later may succeed (a timeout, 5xx, 429) or not
    (the language or the text is refused). ``retry_after``: seconds the server asked us
    to wait. ``kind``: timeout | connection | rate | auth | quota | server | too_long |
    rejected | language | bad_answer | limit | error. ``status``: the HTTP status, if any."""

    def __init__(self, message: str, *, provider: str = "", retryable: bool = True,
                 retry_after: float | None = None, kind: str = "error", status: int | None = None):
        super().__init__(message)
        self.provider = provider
        self.retryable = retryable
        self.retry_after = retry_after
        self.kind = kind
        self.status = status


class PublishError(AggregatorError):
    """The output could not be written."""


class PublicationRefused(PublishError):
    """A publication would lose most of what readers have (a lost store, a broken config):
    the last one is kept until a person allows it (``run --once --allow-shrink``)."""


class StoreGone(StorageError):
    """The store file a running process works on has vanished or been replaced."""
