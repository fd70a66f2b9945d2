"""HaBa core: dataset distillation via hallucinator–basis factorization (Liu et al., NeurIPS 2022).

Depends only on torch, torchvision, kornia, numpy and safetensors.
"""

from .adversary import Adversary, pairwise_cosine_loss, supervised_contrastive_loss
from .augment import DSA, DSAConfig
from .atomic import write_json, write_safetensors
from .json_document import read_json_document
from .budget import BYTES_PER_NUMBER, FILL_MIN_UNUSED, Plan, StorageReport, basis_shape_for, plan_budget, storage_of
from .collection import FactorizedCollection, save_parts
from .config_layers import check_table, merge_layers, parse_set
from .coreset import herding_select, select_coreset
from .data import (KNOWN_DATASETS, VAL_SEED, ImageDataset, canonical_name as canonical_dataset_name, load_dataset,
                   validation_split)
from .distillation import RECIPES, DistillConfig, config_plan, distill, network_factory, recipe, recipe_config
from .distillation.recipes import default_recipe_for
from .errors import (BudgetError, ConfigError, DatasetNotFoundError, DistillationInterrupted, FormatError,
                     HabaError, NonFiniteLossError, UnknownNameError)
from .evaluate import EvalConfig, EvalResult, evaluate, evaluation_lr, test_accuracy, train_on_synthetic
from .factorization import HallucinatorBank, HallucinatorConfig, SyntheticSet
from .factorized_dataset import FactorizedDataset
from .loss_terms import active_loss_terms, shown_losses
from .networks import KNOWN_NETWORKS, get_network
from .objectives import DCConfig, DMConfig, ExpertConfig, MTTConfig, objective_names, objective_spec, train_experts
from .preprocess import Preprocessor
from .runtime import resolve_device
from .version import __version__
from .zca import ZCA

__all__ = [
    "Adversary", "pairwise_cosine_loss", "supervised_contrastive_loss", "DSA", "DSAConfig", "Plan",
    "StorageReport", "FILL_MIN_UNUSED", "plan_budget", "FactorizedCollection", "select_coreset", "herding_select", "KNOWN_DATASETS", "ImageDataset", "load_dataset",
    "VAL_SEED", "validation_split",
    "DistillConfig", "distill", "network_factory", "RECIPES", "recipe", "recipe_config", "config_plan", "BudgetError", "ConfigError", "DatasetNotFoundError",
    "DistillationInterrupted",
    "FormatError", "HabaError", "NonFiniteLossError", "UnknownNameError", "EvalConfig", "EvalResult", "evaluate",
    "evaluation_lr",
    "HallucinatorBank", "HallucinatorConfig", "SyntheticSet", "FactorizedDataset", "KNOWN_NETWORKS",
    "get_network", "DCConfig", "DMConfig", "ExpertConfig", "MTTConfig", "train_experts", "Preprocessor",
    "__version__", "ZCA",
    # helpers the adapters (strategies, federated) and haba_cl share
    "canonical_dataset_name", "default_recipe_for", "test_accuracy", "train_on_synthetic", "active_loss_terms",
    "shown_losses", "BYTES_PER_NUMBER", "basis_shape_for", "storage_of", "save_parts", "write_json",
    "read_json_document",
    "write_safetensors", "resolve_device",
    # configuration layering (one --set syntax everywhere)
    "check_table", "merge_layers", "parse_set",
    # the objective registry
    "objective_names", "objective_spec",
]
