"""The one schema for every job: the YAML the CLI reads and the JSON the API accepts.

Importing this package does not import torch or transformers.
"""

from finetuning.config.base import ConfigError, ConfigIssue, StrictModel
from finetuning.config.jobs import CONFIG_CLASSES, DPOConfig, GenerateConfig, GRPOConfig, SFTConfig

__all__ = [
    "CONFIG_CLASSES",
    "ConfigError",
    "ConfigIssue",
    "DPOConfig",
    "GRPOConfig",
    "GenerateConfig",
    "SFTConfig",
    "StrictModel",
]
