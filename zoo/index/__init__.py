"""Similarity search over image collections with FAISS.

```python
idx = zoo.index.build("photos/", model="efficientnet_lite0")
ids, scores, meta = idx.search(query_images, k=10)
idx.add(more, metadata=[...]); idx.remove(ids); idx.duplicates(0.95)
idx.save("photos.zidx"); idx = zoo.index.load("photos.zidx")
```
"""
from zoo.index.build import build
from zoo.index.choice import IndexPlan, choose
from zoo.index.core import ImageIndex, SearchResult, gpu_available
from zoo.index.errors import (
    EmbeddingShapeError, IndexConfigError, IndexCorruptError, IndexFormatError, MetadataError,
    ModelMismatchError, ZooIndexError,
)

from_embeddings = ImageIndex.from_embeddings


def load(path, model=None, gpu="auto", verify: bool = True) -> ImageIndex:
    """Open a saved index; ``model`` (a ZooModel) must match the one it was built with."""
    return ImageIndex.load(path, model=model, gpu=gpu, verify=verify)


__all__ = [
    "build", "load", "from_embeddings", "choose", "ImageIndex", "IndexPlan", "SearchResult", "gpu_available",
    "ZooIndexError", "ModelMismatchError", "IndexFormatError", "IndexCorruptError", "IndexConfigError",
    "EmbeddingShapeError", "MetadataError",
]
