"""Errors a user can act on.

Every error raised on purpose by moviegenre derives from :class:`MovieGenreError`; the CLI and
the API turn these into a one-line message (CLI) or a JSON error (API) instead of a traceback.
Anything else is a bug, and shows its traceback.
"""


class MovieGenreError(Exception):
    """Base class: the message says what was wrong, where, and what to do."""


class DataError(MovieGenreError):
    """Input data is missing, malformed or inconsistent (the message names rows and fields)."""


class ModelError(MovieGenreError):
    """A model directory is missing, altered, truncated or incompatible."""


class DownloadError(DataError):
    """A public dataset could not be downloaded or did not match its checksum."""


class OutputError(MovieGenreError):
    """An output file or directory could not be written (the message names it and why)."""


class InvalidItem(DataError):
    """One movie item breaks the input contract (:mod:`moviegenre.core.items`).

    ``index`` is the item's position (0-based) in what was passed, ``field`` the offending
    field (``plot``, ``title`` or ``year``), ``reason`` what is wrong with it, and ``code`` a
    stable machine-readable name (``plot_too_long`` for the length limit, else
    ``invalid_item``). Each door words the place in its own terms: see :meth:`at`.
    """

    def __init__(self, index: int | None, field: str, reason: str, *, code: str = "invalid_item"):
        self.index, self.field, self.reason, self.code = index, field, reason, code
        where = f"field '{field}'" if index is None else f"item {index}: field '{field}'"
        super().__init__(f"{where} {reason}")

    def at(self, where: str) -> str:
        """The message with the place named by the caller, e.g. ``items[3].plot``."""
        return f"{where} {self.reason}"


class UsageError(MovieGenreError):
    """An argument or option has a value moviegenre cannot use (an unknown model kind, ...)."""


class SettingsError(UsageError):
    """A ``MOVIEGENRE_*`` environment variable holds a value moviegenre cannot use."""
