"""HaBa core: dataset distillation via hallucinator–basis factorization (Liu et al., NeurIPS 2022).

Depends only on torch, torchvision, kornia, numpy and safetensors.
"""

from .adversary import Adversary, pairwise_cosine_loss, supervised_contrastive_loss
from .augment import DSA, DSAConfig
from .budget import Plan, StorageReport, plan_budget
from .collection import FactorizedCollection
from .coreset import herding_select, select_coreset
from .data import KNOWN_DATASETS, ImageDataset, load_dataset
from .distillation import RECIPES, DistillConfig, distill, network_factory, recipe, recipe_config
from .errors import (BudgetError, ConfigError, DatasetNotFoundError, DistillationInterrupted, FormatError,
                     HabaError, NonFiniteLossError, UnknownNameError)
from .evaluate import EvalConfig, EvalResult, evaluate
from .factorization import HallucinatorBank, HallucinatorConfig, SyntheticSet
from .factorization.factorized_dataset import FactorizedDataset
from .networks import KNOWN_NETWORKS, get_network
from .objectives import DCConfig, DMConfig, ExpertConfig, MTTConfig, train_experts
from .preprocess import Preprocessor
from .version import __version__
from .zca import ZCA

__all__ = [
    "Adversary", "pairwise_cosine_loss", "supervised_contrastive_loss", "DSA", "DSAConfig", "Plan",
    "StorageReport", "plan_budget", "FactorizedCollection", "select_coreset", "herding_select", "KNOWN_DATASETS", "ImageDataset", "load_dataset",
    "DistillConfig", "distill", "network_factory", "RECIPES", "recipe", "recipe_config", "BudgetError", "ConfigError", "DatasetNotFoundError",
    "DistillationInterrupted",
    "FormatError", "HabaError", "NonFiniteLossError", "UnknownNameError", "EvalConfig", "EvalResult", "evaluate",
    "HallucinatorBank", "HallucinatorConfig", "SyntheticSet", "FactorizedDataset", "KNOWN_NETWORKS",
    "get_network", "DCConfig", "DMConfig", "ExpertConfig", "MTTConfig", "train_experts", "Preprocessor",
    "__version__", "ZCA",
]
