"""The datasets the pipeline knows, and the on-disk raw layout each one produces.

Every source ends in the same place: ``<data_root>/raw/<dataset>/manifest.json`` naming a
format (``idx``, ``cifar`` or ``image_folder``), the class names and, per source split,
the files holding it. Preprocess reads only that manifest, never the source.
"""

from __future__ import annotations

DATASETS = ("digits",)


def dataset_names() -> tuple[str, ...]:
    return DATASETS
