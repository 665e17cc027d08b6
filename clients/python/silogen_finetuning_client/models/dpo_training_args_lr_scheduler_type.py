from typing import Literal

DPOTrainingArgsLrSchedulerType = Literal[
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

DPO_TRAINING_ARGS_LR_SCHEDULER_TYPE_VALUES: set[DPOTrainingArgsLrSchedulerType] = {
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


def check_dpo_training_args_lr_scheduler_type(value: str) -> DPOTrainingArgsLrSchedulerType:
    if value in DPO_TRAINING_ARGS_LR_SCHEDULER_TYPE_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {DPO_TRAINING_ARGS_LR_SCHEDULER_TYPE_VALUES!r}")
