"""The errors a run reports to its user in one line, naming the file, URL or key and the cause.

Every module raises these and only these for problems of the input; anything else is a bug
and fails the run with its traceback.
"""

from __future__ import annotations


class Nc2IceError(Exception):
    """A problem of the input or the environment, told in one line."""


class ConfigError(Nc2IceError, ValueError):
    """A config that cannot run; the message names the key."""


class AccessError(Nc2IceError, RuntimeError):
    """A URL that no configured store can serve, or a source that cannot be read."""


class ScanError(Nc2IceError, RuntimeError):
    """A source that is not a readable netCDF/HDF5 file: a fault of the file or its server,
    which ``on_error: skip`` may leave out."""


class CombineError(Nc2IceError, ValueError):
    """The files cannot be combined faithfully; the message lists which files differ and how."""


class CommitError(Nc2IceError, RuntimeError):
    """The store refused part of a dataset; nothing was committed."""
