"""User-facing errors.

Every mistake a user can make (a bad preset name, a config value out of range,
a mesh that does not divide the devices, a corrupt checkpoint, garbage in a
data directory) is raised as a :class:`UserError` subclass. The command line
prints ``error: <message>`` on one line and exits non-zero; library callers
catch the class they care about.
"""

from __future__ import annotations


class UserError(Exception):
    """An error caused by the user's input, reported as one clear line."""

    exit_code: int = 2


class ConfigError(UserError):
    """A config key, type or value that is not allowed."""


class MeshError(UserError):
    """A device mesh that cannot be built on the devices present."""


class DataError(UserError):
    """A dataset that is unknown, missing or unreadable."""


class CheckpointError(UserError):
    """A checkpoint directory with nothing usable in it."""


class WorkdirError(UserError):
    """A work or output directory that cannot be used."""
