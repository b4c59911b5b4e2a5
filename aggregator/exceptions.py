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


class FetchError(AggregatorError):
    """A source could not be fetched. ``retry_after`` (seconds) when the server asked."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None, permanent: bool = False):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.permanent = permanent


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
