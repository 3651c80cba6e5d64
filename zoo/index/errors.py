"""Typed errors of the similarity index. Each message says what to do next."""
from zoo.errors import InputShapeError, ZooError


class ZooIndexError(ZooError):
    """Base class of the errors ``zoo.index`` raises on purpose."""


class ModelMismatchError(ZooIndexError, ValueError):
    """Vectors or a model that do not match the model the index was built with."""


class IndexFormatError(ZooIndexError, ValueError):
    """A path that is not a zoo index, or one written by a newer zoo."""


class IndexCorruptError(IndexFormatError):
    """An index whose files are damaged (bad checksum, truncated, unreadable)."""


class IndexConfigError(ZooIndexError, ValueError):
    """An index type, metric or recall target that cannot be used."""


class EmbeddingShapeError(ZooIndexError, InputShapeError):
    """Vectors of the wrong shape or dimension."""


class MetadataError(ZooIndexError, ValueError):
    """Metadata that cannot be stored (not JSON-serialisable, wrong length)."""


class IndexConflictError(ZooIndexError, RuntimeError):
    """A save refused because another writer changed the index on disk since it was loaded."""


class IndexLockedError(IndexConflictError, TimeoutError):
    """Another writer held the index's lock for longer than the timeout."""


class IndexExistsError(ZooIndexError, FileExistsError):
    """A build refused because its output path already holds an index."""
