"""Datasets by name (``formats.py``: the :data:`DATASETS` registry and the readers, ``archive.py`` for the files on
disk), the loaders the jobs step through (``device_loader.py`` for arrays, ``folders.py`` for JPEG folders), and
the splits and loader builders both jobs share (``splits.py``)."""
from drnas.data.device_loader import DeviceLoader
from drnas.data.folders import FOLDER_INFO, IMAGENET_INFO, IMAGENET_MEAN, IMAGENET_STD, ImageFolderIndex, ImageFolderLoader
from drnas.data.formats import (DATASET_NAMES, DATASETS, MAX_CLASSES, DatasetEntry, dataset_entry, dataset_names,
                                dataset_shape, load_dataset, register_dataset, shaped_datasets, streams_folders)
from drnas.data.info import DataError, DatasetInfo, ImageArrays, augmented
from drnas.data.splits import (HOLDOUT_FRACTION, SearchLoaders, TrainLoaders, sample_per_class, search_folder_loaders,
                               search_loaders, split_halves, spread, train_folder_loaders, train_loaders)

__all__ = [
    "DATASETS", "DATASET_NAMES", "FOLDER_INFO", "HOLDOUT_FRACTION", "IMAGENET_INFO", "IMAGENET_MEAN",
    "IMAGENET_STD", "MAX_CLASSES", "DataError", "DatasetEntry", "DatasetInfo", "DeviceLoader", "ImageArrays",
    "ImageFolderIndex", "ImageFolderLoader", "SearchLoaders", "TrainLoaders", "augmented", "dataset_entry",
    "dataset_names", "dataset_shape", "load_dataset",
    "register_dataset", "sample_per_class", "search_folder_loaders", "search_loaders", "split_halves", "spread",
    "shaped_datasets", "streams_folders",
    "train_folder_loaders", "train_loaders",
]
