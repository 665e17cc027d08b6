from typing import Literal

GRPOTrainingArgsLrSchedulerType = Literal[
    "constant",
    "constant_with_warmup",
    "cosine",
    "cosine_warmup_with_min_lr",
    "cosine_with_min_lr",
    "cosine_with_restarts",
    "greedy",
    "inverse_sqrt",
    "linear",
    "polynomial",
    "reduce_lr_on_plateau",
    "warmup_stable_decay",
]

GRPO_TRAINING_ARGS_LR_SCHEDULER_TYPE_VALUES: set[GRPOTrainingArgsLrSchedulerType] = {
    "constant",
    "constant_with_warmup",
    "cosine",
    "cosine_warmup_with_min_lr",
    "cosine_with_min_lr",
    "cosine_with_restarts",
    "greedy",
    "inverse_sqrt",
    "linear",
    "polynomial",
    "reduce_lr_on_plateau",
    "warmup_stable_decay",
}


def check_grpo_training_args_lr_scheduler_type(value: str) -> GRPOTrainingArgsLrSchedulerType:
    if value in GRPO_TRAINING_ARGS_LR_SCHEDULER_TYPE_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {GRPO_TRAINING_ARGS_LR_SCHEDULER_TYPE_VALUES!r}")
