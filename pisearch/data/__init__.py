"""Datasets in memory as uint8 tensors: a registry (``DATASETS``) and ``load_dataset(name, ...) -> Splits``.

Registered: ``digits`` (embedded default, scikit-learn's bundled images), ``fashion_mnist`` (IDX files),
``cifar10`` / ``cifar100`` (python-pickle folders or archives), ``tinyimagenet`` (folder layout) and
``synthetic`` (unit tests only). Files are looked for under ``root``, default ``$PISEARCH_DATA`` or ``./data``.
"""

from pisearch.data import cifar, embedded, idx, tinyimagenet  # noqa: F401  (each registers its loaders)
from pisearch.data.images import ImageData, Splits, resize, stratified_split, to_channels
from pisearch.data.registry import DATASETS, Dataset, data_root, load_dataset, register_dataset

__all__ = ["DATASETS", "Dataset", "ImageData", "Splits", "data_root", "load_dataset", "register_dataset", "resize",
           "stratified_split", "to_channels"]
