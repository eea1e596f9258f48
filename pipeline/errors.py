"""The one error type for everything a user can cause.

Every stage and the `rgf` command catch `RgfError` once and print it as one
line naming the problem and the fix; anything else is a bug and keeps its
traceback. The subclasses say which part of the input is wrong."""

from __future__ import annotations


class RgfError(ValueError):
    """Bad input: params, data, checkpoints, command-line arguments."""


class ParamsError(RgfError):
    """params.yaml is missing, unreadable or has invalid values."""


class DataError(RgfError):
    """Data files (MNIST, a manifest, a dataset folder, samples) are missing, corrupt or invalid."""


class ChecksumError(DataError):
    """A file's md5 differs from the published one."""


class IdxError(DataError):
    """An IDX file is malformed: bad header, wrong length or corrupt gzip stream."""


class CheckpointError(RgfError):
    """A checkpoint is missing, unreadable or was made under other params."""


class OracleError(RgfError):
    """An oracle is missing, unreadable or below the accuracy gate."""


class MetricsError(RgfError):
    """A metrics file is unreadable or does not have the expected shape."""
