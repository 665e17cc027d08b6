"""The output of a generate job: one item per prompt (rendered prompt, answer, reference answers, the generation
parameters in force), written as a YAML list in one piece."""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from finetuning.config.jobs import GenerateConfig
from finetuning.redaction import redact
from finetuning.tools.generation_params import NOT_PARAMS
from finetuning.tools.generation_prompts import EncodedPrompt, Prompt

if TYPE_CHECKING:
    from transformers import GenerationConfig, PreTrainedTokenizerBase

TEST_TYPE = "open-ended"


def output_gen_params(generation_config: GenerationConfig, config: GenerateConfig) -> dict[str, Any]:
    """The generation parameters in force as plain data, plus the set fields of quant_conf and model_conf as JSON."""
    params = {k: v for k, v in generation_config.to_diff_dict().items() if k not in NOT_PARAMS}
    params = json.loads(json.dumps(params, default=str))  # plain lists/dicts/scalars only, as safe_dump needs
    model_conf = redact(config.model_conf.model_dump(mode="json", exclude_unset=True))
    params["quant_conf"] = json.dumps(config.quant_conf.model_dump(mode="json", exclude_unset=True))
    params["model_conf"] = json.dumps(model_conf)
    return params


def output_item(
    prompt: Prompt,
    encoded: EncodedPrompt,
    new_ids: list[int],
    tokenizer: PreTrainedTokenizerBase,
    gen_params: dict[str, Any],
) -> dict[str, Any]:
    return {
        "dataset": prompt.dataset,
        "id": prompt.id,
        "prompt": prompt.text,
        "answer": tokenizer.decode(new_ids, skip_special_tokens=True),
        "correct_answers": list(prompt.correct_answers),
        "test_type": TEST_TYPE,
        "data_collection": prompt.dataset,
        "truncated": encoded.truncated,
        "all_text_raw": tokenizer.decode(encoded.ids + new_ids, skip_special_tokens=False),
        # Its own copy: a dict shared between items makes PyYAML write &anchors and *aliases.
        "gen_params": copy.deepcopy(gen_params),
    }


def write_yaml_atomically(items: list[dict[str, Any]], output: Path) -> None:
    """Write to a temporary file beside ``output`` and rename it over: readers never see half a file."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yaml.safe_dump(items, f, sort_keys=False, allow_unicode=True)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; the output is an ordinary file
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
