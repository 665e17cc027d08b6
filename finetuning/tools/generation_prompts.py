"""The prompts of a generate job: an open input repeated (as given, or as a user turn when asked), or the
conversations of an eval-data file rendered with the tokenizer's chat template; encoded the way the model expects
them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from finetuning.config.jobs import EvalDataPrompt, OpenInputPrompt
from finetuning.data.errors import DataError
from finetuning.data.loading import read_records
from finetuning.data.records import Message
from finetuning.errors import FinetuningError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

OPEN_PROMPT_DATASET = "_open_prompt_data_"


class PromptRecord(BaseModel):
    """One eval-data example: the conversation to answer and, optionally, the expected answer."""

    model_config = ConfigDict(extra="ignore")  # eval files often carry metadata we don't use

    prompt_messages: list[Message] = Field(min_length=1)
    response: str | None = None
    answer: str | None = Field(default=None, description="Used when there is no ``response``.")
    dataset: str | None = None
    id: str | int | None = None


@dataclass
class Prompt:
    """A prompt to answer: where it came from, its rendered text and the reference answers."""

    dataset: str
    id: str
    text: str
    correct_answers: list[str]


@dataclass
class EncodedPrompt:
    ids: list[int]
    truncated: bool


def render_open_input(tokenizer: PreTrainedTokenizerBase, text: str, *, apply_chat_template: bool = False) -> str:
    """The input as given, a raw continuation as the original engine sends it; with ``apply_chat_template``, a
    single user turn with the generation prompt."""
    if not apply_chat_template:
        return text
    if not tokenizer.chat_template:
        raise FinetuningError(
            "prompt_conf.apply_chat_template is true, but the tokenizer has no chat template; give a tokenizer that "
            "has one (model_conf.tokenizer) or leave apply_chat_template false to send the input as given",
            "invalid_config",
            "prompt_conf.apply_chat_template",
        )
    return str(
        tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False)
    )


def build_prompts(prompt_conf: OpenInputPrompt | EvalDataPrompt, tokenizer: PreTrainedTokenizerBase) -> list[Prompt]:
    from jinja2 import TemplateError

    if isinstance(prompt_conf, OpenInputPrompt):
        try:
            text = render_open_input(tokenizer, prompt_conf.input, apply_chat_template=prompt_conf.apply_chat_template)
        except TemplateError as exc:
            raise FinetuningError(
                f"the chat template rejected the input: {exc}", "invalid_config", "prompt_conf.input"
            ) from exc
        # The original engine gives every open-input sample an empty response, so its reference answers are [""].
        return [Prompt(OPEN_PROMPT_DATASET, str(i), text, [""]) for i in range(prompt_conf.num_samples)]

    path = prompt_conf.data.path
    if not tokenizer.chat_template:
        raise FinetuningError(
            "eval-data prompts are conversations, but the tokenizer has no chat template; give a tokenizer that has "
            "one (model_conf.tokenizer) or use an adapter trained with a chat template",
            "invalid_config",
            "model_conf.tokenizer",
        )
    try:
        records = read_eval_records(path)
    except DataError as exc:
        raise FinetuningError(str(exc), "invalid_data", "prompt_conf.data.path") from exc
    prompts = []
    for index, (line, record) in enumerate(records):
        messages = [{"role": m.role, "content": m.content} for m in record.prompt_messages]
        try:
            rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except TemplateError as exc:
            raise FinetuningError(
                f"{path} line {line}: the chat template rejected prompt_messages: {exc}",
                "invalid_data",
                "prompt_conf.data.path",
            ) from exc
        reference = record.response if record.response is not None else record.answer
        prompts.append(
            Prompt(
                dataset=record.dataset or Path(path).stem,
                id=str(record.id) if record.id is not None else str(index),
                text=str(rendered),
                correct_answers=[] if reference is None else [reference],
            )
        )
    return prompts


def read_eval_records(path: str | Path) -> list[tuple[int, PromptRecord]]:
    """The records of an eval-data file with their 1-based line numbers; a bad record names its file and line."""
    # the training loader's parsing and error wording, so both report problems alike
    return [(line, PromptRecord.model_validate(record)) for line, record in read_records(path, PromptRecord)]


def encode_prompt(tokenizer: PreTrainedTokenizerBase, text: str, budget: int) -> EncodedPrompt:
    """Token ids as the model expects them: the tokenizer's BOS (not doubled), no EOS, at most ``budget`` long.

    Longer prompts lose their start (left truncation): the end, where the question and the generation prompt sit,
    matters most. A leading BOS is kept.
    """
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    plain = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    bos = tokenizer.bos_token_id
    if not plain:
        ids = [bos] if bos is not None and bos in ids else []
    else:
        start = next((k for k in range(len(ids) - len(plain) + 1) if ids[k : k + len(plain)] == plain), None)
        if start is not None:
            prefix = ids[:start]
            if plain[: len(prefix)] == prefix:
                prefix = []  # the text already starts with them: a template that writes {{ bos_token }}
            # What the tokenizer appends (EOS, when saved with training settings) is dropped: the model would
            # read the prompt as finished.
            ids = prefix + plain
    if len(ids) <= budget:
        return EncodedPrompt(ids, truncated=False)
    head = ids[:1] if bos is not None and ids[0] == bos and budget > 1 else []
    return EncodedPrompt(head + ids[len(ids) - (budget - len(head)) :], truncated=True)
