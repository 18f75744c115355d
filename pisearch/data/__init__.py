"""Datasets in memory as uint8 tensors: a registry (``DATASETS``) and ``load_dataset(name, ...) -> Splits``.

Registered: ``digits`` (embedded default, scikit-learn's bundled images), ``fashion_mnist`` (IDX files),
``cifar10`` / ``cifar100`` (python-pickle folders or archives), ``tinyimagenet`` (folder layout) and
``synthetic`` (unit tests only). Files are looked for under ``root``, default ``$PISEARCH_DATA`` or ``./data``.
Your own images: ``folder`` (one subfolder per class) and ``npz`` (NumPy arrays); what they were is recorded in the
run folder (``read_record``, ``recorded_classes``).
"""

from pisearch.data import cifar, embedded, folder, idx, npz, tinyimagenet  # noqa: F401  (each registers its loaders)
from pisearch.data.images import ImageData, Splits, resize, stratified_split, to_channels
from pisearch.data.record import read_record, recorded_classes
from pisearch.data.registry import DATASETS, OWN_KEYS, Dataset, Source, data_root, load_dataset, register_dataset

__all__ = ["DATASETS", "OWN_KEYS", "Dataset", "ImageData", "Source", "Splits", "data_root", "load_dataset",
           "read_record", "recorded_classes", "register_dataset", "resize", "stratified_split", "to_channels"]
