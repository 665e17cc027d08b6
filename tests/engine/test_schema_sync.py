"""The static schema mirrors the installed libraries; regenerate with `python -m finetuning.config.codegen`."""

import peft
import pytest

from finetuning.config import codegen
from finetuning.config.model import PEFT_TYPES, GenericPeftConf
from finetuning.errors import FinetuningError
from finetuning.models import build_peft_config


@pytest.mark.parametrize("name", sorted(codegen.GENERATED))
def test_generated_argument_mirrors_are_current(name: str) -> None:
    committed = (codegen.HERE / name).read_text(encoding="utf-8")
    assert committed == codegen.GENERATED[name](), f"{name} is stale: run python -m finetuning.config.codegen"


def test_peft_types_match_installed_peft() -> None:
    assert set(PEFT_TYPES) == {t.value for t in peft.PeftType}


def test_generic_peft_conf_builds_a_lora_config() -> None:
    conf = GenericPeftConf(peft_type="LORA", peft_kwargs={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]})
    config = build_peft_config(conf)
    assert isinstance(config, peft.LoraConfig)
    assert (config.r, config.lora_alpha, set(config.target_modules or [])) == (4, 8, {"q_proj"})
    assert config.task_type == "CAUSAL_LM"


def test_bad_peft_kwarg_names_its_path() -> None:
    with pytest.raises(FinetuningError) as caught:
        build_peft_config(GenericPeftConf(peft_type="LORA", peft_kwargs={"rank": 4}))
    assert caught.value.param == "peft_conf.peft_kwargs"
    assert "rank" in caught.value.message


def test_dpo_loss_types_match_installed_trl() -> None:
    import inspect
    import re

    from trl import DPOTrainer

    from finetuning.config.jobs import DPO_LOSS_TYPES

    source = inspect.getsource(DPOTrainer)
    assert set(DPO_LOSS_TYPES) == set(re.findall(r'loss_type == "(\w+)"', source))
