"""Shared pieces of the recipes (re-exported from zoo, where the task models live)."""
from zoo.errors import (  # noqa: F401
    MissingDependencyError, NotCalibratedError, NotFittedError, RecipeError, SavedRecipeError,
)
from zoo.tasks.common import (  # noqa: F401
    embed, is_embeddings, labelled_folder, load_recorded_model, model_record, resolve_model,
)
