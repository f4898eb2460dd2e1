"""The errors users cause, each reported as one line and exit status 2 by the command line."""
from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem; the message names the file and the key."""


class DataError(ValueError):
    """Bad input data; the message names the file and, where it can, the row and column."""
