from typing import Literal

SFTTrainingArgsLrSchedulerType = Literal[
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

SFT_TRAINING_ARGS_LR_SCHEDULER_TYPE_VALUES: set[SFTTrainingArgsLrSchedulerType] = {
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


def check_sft_training_args_lr_scheduler_type(value: str) -> SFTTrainingArgsLrSchedulerType:
    if value in SFT_TRAINING_ARGS_LR_SCHEDULER_TYPE_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {SFT_TRAINING_ARGS_LR_SCHEDULER_TYPE_VALUES!r}")
