"""Data loading: every supported data set as one in-memory :class:`ImageDataset` split."""

from .dataset import ImageDataset
from .paths import default_cache_dir, default_data_root
from .normalization import NORMALIZATION
from .registry import KNOWN_DATASETS, canonical_name, load_dataset
from .validation import MAX_VAL_PER_CLASS, VAL_SEED, is_val_per_class, validation_split

__all__ = ["ImageDataset", "KNOWN_DATASETS", "NORMALIZATION", "canonical_name", "default_cache_dir", "default_data_root", "load_dataset", "VAL_SEED",
           "validation_split", "MAX_VAL_PER_CLASS", "is_val_per_class"]
