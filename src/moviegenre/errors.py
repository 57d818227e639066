"""Errors a user can act on.

Every error raised on purpose by moviegenre derives from :class:`MovieGenreError`; the CLI and
the API turn these into a one-line message (CLI) or a JSON error (API) instead of a traceback.
"""


class MovieGenreError(Exception):
    """Base class: the message says what was wrong, where, and what to do."""


class DataError(MovieGenreError):
    """Input data is missing, malformed or inconsistent (the message names rows and fields)."""


class ModelError(MovieGenreError):
    """A model directory is missing, altered, truncated or incompatible."""


class DownloadError(DataError):
    """A public dataset could not be downloaded or did not match its checksum."""
