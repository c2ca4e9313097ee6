"""The one error family of torchsci.

Every error the suite raises on purpose is a :class:`TorchsciError`, so a lab script can catch them all
with one ``except``. Messages name the input, what was wrong, and what to do about it.
"""

from __future__ import annotations


class TorchsciError(Exception):
    """Base class of every error torchsci raises on purpose."""


class ConfigError(TorchsciError, ValueError):
    """A setting has a bad value (names the setting, the value and the allowed values)."""


class DeviceError(TorchsciError, RuntimeError):
    """A device or precision was asked for that this machine or this torch build cannot provide."""


class CheckpointError(TorchsciError, RuntimeError):
    """A checkpoint is missing, truncated, corrupt, or does not fit the model it is loaded into."""


class RegistryError(TorchsciError, KeyError):
    """A model, dataset or pretrained weight name is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class PretrainedWeightsError(TorchsciError, RuntimeError):
    """A shipped weight file is missing or its sha256 does not match the registry."""


class DataError(TorchsciError, ValueError):
    """Input data is unreadable or invalid (names the file, the field and the fix)."""


class ConformanceError(TorchsciError, AssertionError):
    """A model failed one or more checks of :func:`torchsci.testing.check_model`."""


class ExportError(TorchsciError, RuntimeError):
    """An export failed, or the exported artifact disagrees with eager (names the format and the difference)."""


class OutputError(TorchsciError, ValueError):
    """An output cannot be written safely: it is one of the inputs, a folder, or of a format the command cannot write."""
