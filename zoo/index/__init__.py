"""Similarity search over image collections with FAISS.

```python
idx = zoo.index.build("photos/", model="efficientnet_lite0", out="photos.zidx")
ids, scores, meta = idx.search(query_images, k=10)
idx.add(more, metadata=[...]); idx.remove(ids); idx.duplicates(0.95)
idx.save("photos.zidx"); idx = zoo.index.load("photos.zidx")
with zoo.index.open_for_update("photos.zidx") as idx:   # writers' lock held from load to save
    idx.add(more)
```
A plain ``save`` back to the folder an index was loaded from raises ``IndexConflictError`` when
another writer saved there in between; ``open_for_update`` makes writers wait for each other.
"""
from zoo.index.build import build
from zoo.index.choice import IndexPlan, choose
from zoo.index.core import BuildReport, ImageIndex, SearchResult, gpu_available, open_for_update
from zoo.index.errors import (
    EmbeddingShapeError, IndexConfigError, IndexConflictError, IndexCorruptError, IndexExistsError,
    IndexFormatError, IndexLockedError, MetadataError, ModelMismatchError, ZooIndexError,
)

from_embeddings = ImageIndex.from_embeddings
empty = ImageIndex.empty


def load(path, model=None, gpu="auto", verify: bool = True) -> ImageIndex:
    """Open a saved index; ``model`` (a ZooModel) must match the one it was built with."""
    return ImageIndex.load(path, model=model, gpu=gpu, verify=verify)


__all__ = [
    "build", "load", "open_for_update", "from_embeddings", "empty", "choose", "ImageIndex", "IndexPlan",
    "SearchResult", "BuildReport", "gpu_available",
    "ZooIndexError", "ModelMismatchError", "IndexFormatError", "IndexCorruptError", "IndexConfigError",
    "IndexConflictError", "IndexLockedError", "IndexExistsError", "EmbeddingShapeError", "MetadataError",
]
