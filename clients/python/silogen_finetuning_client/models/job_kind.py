from typing import Literal

JobKind = Literal["adapter-conversion", "dpo", "generate", "grpo", "merge", "sft"]

JOB_KIND_VALUES: set[JobKind] = {
    "adapter-conversion",
    "dpo",
    "generate",
    "grpo",
    "merge",
    "sft",
}


def check_job_kind(value: str) -> JobKind:
    if value in JOB_KIND_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {JOB_KIND_VALUES!r}")
