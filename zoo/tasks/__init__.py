"""One subpackage per kind of model (``zoo/tasks/<kind>/``: model, data types and readers, training
spec, CLI), each registered where it is defined (:mod:`zoo.kinds`), and what they share:
:mod:`zoo.tasks.base` (the ``Task`` every kind is) and :mod:`zoo.tasks.common` (embedding helpers)."""
