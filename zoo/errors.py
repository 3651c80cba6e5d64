"""Typed errors. Each message says what went wrong and what to do about it."""


class ZooError(Exception):
    """Base class of every error the zoo raises on purpose."""


class UnknownModelError(ZooError, KeyError):
    def __str__(self):  # KeyError would quote the message
        return self.args[0] if self.args else ""


class WeightsNotFoundError(ZooError, FileNotFoundError):
    """No weight file in any of the places searched."""


class ChecksumMismatchError(ZooError):
    """A weight file's hash differs from the registry's record."""


class WeightsFormatError(ZooError, ValueError):
    """A weight file could not be parsed."""


class UnsafeCheckpointError(WeightsFormatError):
    """A checkpoint asked to run code we do not allow."""


class NoHeadError(ZooError, ValueError):
    """The model has no ImageNet classification head (e.g. loaded at another input size)."""


class ImageError(ZooError, ValueError):
    """An image could not be read or converted."""


class InputShapeError(ZooError, ValueError):
    """Array input of an unexpected shape or dtype."""


class DataError(ZooError, ValueError):
    """A dataset could not be found or understood."""


class SavedModelError(ZooError, ValueError):
    """A saved model folder is missing files or does not match this library."""


class NoSplitError(DataError):
    """A dataset has no such split (e.g. a folder without a test/ subfolder)."""


class RecipeError(ZooError, ValueError):
    """Base class of the errors the task models and recipes raise on purpose."""


class NotFittedError(RecipeError):
    """A model used before ``fit``."""


class NotCalibratedError(RecipeError):
    """A decision asked for before a threshold was calibrated or set."""


class MissingDependencyError(RecipeError, ImportError):
    """An optional package that a feature needs is not installed."""


class SavedRecipeError(RecipeError, SavedModelError):
    """A folder that is not a saved model of the expected kind."""
