"""Exceptions raised by HSIC. Imports nothing heavy so that any layer can use it.

Every error a user can cause derives from :class:`HSICError`; each subclass also derives from the
builtin a Python user would expect to catch (``OSError``, ``ValueError``...).
"""


class HSICError(Exception):
    """Root of all HSIC errors."""


class FormatError(HSICError, ValueError):
    """A .hsic file is bad: wrong magic, truncated, corrupt, foreign, or from a newer format version."""


class CodecError(HSICError, ValueError):
    """An unknown codec id, a bad quality, or weights that do not match a file."""


class InputError(HSICError, ValueError):
    """A user input that cannot be used (not a raster, bad window, bad argument)."""


class HSICIOError(HSICError, OSError):
    """A file could not be read or written."""


class CancelledError(HSICError):
    """Long work was cancelled by the caller's progress callback; no output was left behind."""
