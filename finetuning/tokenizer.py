"""Loading the tokenizer for training: chat template, template tokens, pad token, and inference-ready saving.

During training the tokenizer adds BOS and EOS around every encoded text and keeps its own EOS token. What is saved
(every checkpoint, the final model) is set up for inference instead: BOS on, EOS off, and ``eos_token`` set to the
template's assistant end, so that generation stops at the end of an assistant turn.

A rendered conversation starts with exactly one BOS, whichever method encodes it (:class:`SpecialTokenFraming`):
the template's own where it renders one (simplified-llama31, many keep-original templates), otherwise the one the
tokenizer adds. SFT's preprocessing frames its rows with it; the preference trainers (TRL) tokenize through
``apply_chat_template``, which :func:`install_chat_framing` routes through the same rule.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from finetuning.config.data import ChatTemplateName, MissingPadTokenStrategy
from finetuning.errors import FinetuningError
from finetuning.templates import ChatTemplate, get_template

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

# Marks a tokenizer whose save_pretrained has been wrapped; holds the unwrapped bound method.
_WRAPPED_SAVE_ATTR = "_finetuning_unwrapped_save_pretrained"
# Marks a tokenizer whose apply_chat_template has been wrapped; holds the unwrapped bound method.
_WRAPPED_CHAT_ATTR = "_finetuning_unwrapped_apply_chat_template"
# Encoded with and without special tokens to see what the tokenizer's post-processor adds around a text.
_FRAMING_PROBE = "a"


@dataclass
class TokenizerSetup:
    """What :func:`load_tokenizer` did to the tokenizer.

    ``new_tokens`` are the template tokens that were not in the vocabulary before (the model's embeddings may need
    to grow). ``assistant_start``/``assistant_end`` are the marker strings in force for this tokenizer
    (``assistant_start`` is None for ``keep-original``). ``pad_strategy`` is None when the tokenizer already had a
    pad token and no strategy was applied.
    """

    template: ChatTemplate
    new_tokens: list[str]
    assistant_start: str | None
    assistant_end: str
    pad_strategy: MissingPadTokenStrategy | None


def load_tokenizer(
    name_or_path: str,
    *,
    template: ChatTemplateName,
    padding_side: str,
    pad_strategy: MissingPadTokenStrategy,
    use_fast: bool = True,
    trust_remote_code: bool = False,
    for_training_method: Literal["sft", "dpo"] = "sft",
) -> tuple[PreTrainedTokenizerBase, TokenizerSetup]:
    """Load a tokenizer and prepare it for training with ``template``.

    SFT installs the template (overwriting the stored one) and adds its special tokens. DPO expects a tokenizer
    that SFT already prepared, so it refuses a stored template that differs or template tokens that are missing:
    new tokens would need new, untrained embeddings. Then the pad strategy is applied (only when there is no pad
    token), the inference save wrapper is installed, and ``apply_chat_template(..., tokenize=True)`` is made to
    start each conversation with one BOS (:func:`install_chat_framing`).
    """
    from transformers import AutoTokenizer

    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if for_training_method not in ("sft", "dpo"):
        raise ValueError(f"for_training_method must be 'sft' or 'dpo', got {for_training_method!r}")

    tokenizer = AutoTokenizer.from_pretrained(
        name_or_path,
        padding_side=padding_side,
        # Training mode: every encoded example is framed as BOS ... EOS. The save wrapper switches EOS off again.
        add_bos_token=True,
        add_eos_token=True,
        use_fast=use_fast,
        trust_remote_code=trust_remote_code,
    )
    # Some tokenizer classes ignore the padding_side keyword.
    tokenizer.padding_side = padding_side

    chat_template = get_template(template)
    new_tokens = _apply_template(tokenizer, chat_template, name_or_path, for_training_method)
    applied = apply_pad_strategy(tokenizer, pad_strategy)
    assistant_end = chat_template.resolve_assistant_end(tokenizer.eos_token)
    install_inference_save_wrapper(tokenizer, assistant_end)
    install_chat_framing(tokenizer)
    setup = TokenizerSetup(
        template=chat_template,
        new_tokens=new_tokens,
        assistant_start=chat_template.assistant_start,
        assistant_end=assistant_end,
        pad_strategy=applied,
    )
    logger.info(
        "Tokenizer %s: template %s, new tokens %s, assistant end %r, pad token %r (strategy %s)",
        name_or_path,
        template.value,
        new_tokens,
        assistant_end,
        tokenizer.pad_token,
        applied.value if applied else "none needed",
    )
    return tokenizer, setup


def _apply_template(
    tokenizer: PreTrainedTokenizerBase,
    chat_template: ChatTemplate,
    name_or_path: str,
    for_training_method: str,
) -> list[str]:
    """Install the template and its special tokens; return the tokens that were new to the vocabulary."""
    if chat_template.jinja is None:
        if not tokenizer.chat_template:
            raise FinetuningError(
                f"chat_template_name is 'keep-original', but the tokenizer at {name_or_path!r} has no chat template: "
                "choose one of the built-in templates instead",
                "invalid_config",
                "data_conf.chat_template_name",
            )
        return []

    vocab = tokenizer.get_vocab()
    new_tokens = [token for token in chat_template.new_special_tokens if token not in vocab]

    if for_training_method == "dpo":
        if tokenizer.chat_template != chat_template.jinja:
            raise FinetuningError(
                f"The tokenizer at {name_or_path!r} does not carry the {chat_template.name.value!r} chat template. "
                "DPO does not overwrite chat templates: it expects a model and tokenizer saved by an SFT run with "
                "the same chat_template_name. Either set chat_template_name to the template the model was "
                "finetuned with (or 'keep-original' to use the stored one), or run SFT with this template first.",
                "invalid_config",
                "data_conf.chat_template_name",
            )
        if new_tokens:
            raise FinetuningError(
                f"The {chat_template.name.value!r} chat template needs tokens that the tokenizer at {name_or_path!r} "
                f"lacks: {new_tokens}. DPO cannot add tokens (their embeddings would be untrained); run SFT with this "
                "template first and use its output as the DPO base model.",
                "invalid_config",
                "data_conf.chat_template_name",
            )
    else:
        tokenizer.chat_template = chat_template.jinja

    if chat_template.new_special_tokens:
        # Extends (not replaces) the special-token list. transformers 5 renamed "additional_special_tokens" to
        # "extra_special_tokens", together with the replace_* keyword.
        tokenizer.add_special_tokens(
            {"extra_special_tokens": list(chat_template.new_special_tokens)},
            replace_extra_special_tokens=False,
        )
    return new_tokens


def apply_pad_strategy(
    tokenizer: PreTrainedTokenizerBase, strategy: MissingPadTokenStrategy
) -> MissingPadTokenStrategy | None:
    """Give a tokenizer without a pad token one, by ``strategy``; return the strategy, or None if none was needed.

    ``unk-convert-to-eos`` pads with UNK (its collator turns input-side pads into EOS), and it is an error to ask
    for it when the tokenizer already has a pad token, because that collator would then pad with the wrong token.
    """
    if tokenizer.pad_token is not None:
        if strategy == MissingPadTokenStrategy.UNK_CONVERT_TO_EOS:
            raise FinetuningError(
                f"missing_pad_token_strategy is 'unk-convert-to-eos', but the tokenizer already has a pad token "
                f"({tokenizer.pad_token!r}): choose another strategy (it only applies when there is no pad token)",
                "invalid_config",
                "data_conf.missing_pad_token_strategy",
            )
        logger.info("The tokenizer has a pad token (%r); no pad strategy applied", tokenizer.pad_token)
        return None

    source = {
        MissingPadTokenStrategy.EOS_REPURPOSE: "eos_token",
        MissingPadTokenStrategy.BOS_REPURPOSE: "bos_token",
        MissingPadTokenStrategy.UNK_REPURPOSE: "unk_token",
        MissingPadTokenStrategy.UNK_CONVERT_TO_EOS: "unk_token",
    }[MissingPadTokenStrategy(strategy)]
    token = getattr(tokenizer, source)
    if token is None:
        raise FinetuningError(
            f"missing_pad_token_strategy {strategy.value!r} pads with the tokenizer's {source}, but this tokenizer "
            f"has none: choose a strategy whose token exists (bos: {tokenizer.bos_token!r}, eos: "
            f"{tokenizer.eos_token!r}, unk: {tokenizer.unk_token!r})",
            "invalid_config",
            "data_conf.missing_pad_token_strategy",
        )
    if strategy == MissingPadTokenStrategy.UNK_CONVERT_TO_EOS and tokenizer.eos_token is None:
        raise FinetuningError(
            "missing_pad_token_strategy 'unk-convert-to-eos' needs an eos_token, and there is none",
            "invalid_config",
            "data_conf.missing_pad_token_strategy",
        )
    tokenizer.pad_token = token
    return MissingPadTokenStrategy(strategy)


def install_inference_save_wrapper(tokenizer: PreTrainedTokenizerBase, assistant_end: str) -> None:
    """Make ``tokenizer.save_pretrained`` write the inference settings instead of the training ones.

    While saving, ``add_bos_token=True``, ``add_eos_token=False`` and ``eos_token=assistant_end`` (only for the
    attributes the tokenizer has); afterwards, even on error, the training values come back. Wrapping the same
    tokenizer twice raises RuntimeError.
    """
    if _WRAPPED_SAVE_ATTR in vars(tokenizer):
        raise RuntimeError("this tokenizer's save_pretrained is already wrapped for inference-mode saving")

    unwrapped = tokenizer.save_pretrained
    # eos_token first: the add_* setters of fast tokenizers rebuild the post-processor from the current eos.
    inference_settings: dict[str, Any] = {"eos_token": assistant_end, "add_bos_token": True, "add_eos_token": False}

    @functools.wraps(unwrapped)
    def save_pretrained(*args: Any, **kwargs: Any) -> Any:
        present = [name for name in inference_settings if hasattr(tokenizer, name)]
        previous = {name: getattr(tokenizer, name) for name in present}
        # In transformers 5 the fast tokenizer's add_bos_token/add_eos_token are properties whose setters replace the
        # backend post-processor with a rebuilt one. Keep the original object, so that a save leaves no trace.
        backend = getattr(tokenizer, "backend_tokenizer", None)
        post_processor = backend.post_processor if backend is not None else None
        try:
            for name in present:
                setattr(tokenizer, name, inference_settings[name])
            return unwrapped(*args, **kwargs)
        finally:
            for name in present:
                setattr(tokenizer, name, previous[name])
            if backend is not None:
                backend.post_processor = post_processor

    setattr(tokenizer, _WRAPPED_SAVE_ATTR, unwrapped)
    # An instance attribute shadows the class method, so only this tokenizer is affected.
    tokenizer.save_pretrained = save_pretrained  # type: ignore[method-assign]


@dataclass(frozen=True)
class SpecialTokenFraming:
    """What the tokenizer puts around one text it encodes with special tokens: ``prefix`` (``[bos]`` for llama-style
    tokenizers, nothing for e.g. Qwen's) and ``suffix`` (``[eos]`` in training mode). See :meth:`frame`."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    bos_token_id: int | None

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase) -> SpecialTokenFraming:
        """Read off the tokenizer as it is configured now (its add_bos/add_eos settings included)."""
        plain = list(tokenizer(_FRAMING_PROBE, add_special_tokens=False)["input_ids"])
        framed = list(tokenizer(_FRAMING_PROBE)["input_ids"])
        for start in range(len(framed) - len(plain) + 1):
            if framed[start : start + len(plain)] == plain:
                bos = tokenizer.bos_token_id
                prefix, suffix = tuple(framed[:start]), tuple(framed[start + len(plain) :])
                return cls(prefix, suffix, None if bos is None else int(bos))
        raise ValueError(
            f"cannot tell what {type(tokenizer).__name__} adds around a text: {_FRAMING_PROBE!r} encodes as {plain} "
            f"without special tokens but as {framed} with them"
        )

    def renders_bos(self, ids: Sequence[int]) -> bool:
        """Whether ``ids`` (a rendered conversation encoded without special tokens) starts with the template's BOS."""
        return self.bos_token_id is not None and len(ids) > 0 and ids[0] == self.bos_token_id

    def frame(
        self,
        ids: Sequence[int],
        *,
        with_suffix: bool,
        max_length: int | None = None,
        truncation_side: str = "right",
    ) -> list[int]:
        """``ids`` (a rendered conversation encoded without special tokens) as every method trains on it.

        A template that renders its own BOS frames the conversation itself: nothing is added, so the BOS is never
        doubled. Otherwise the prefix goes first (so the conversation starts with the tokenizer's one BOS) and, with
        ``with_suffix``, the suffix last (SFT's training-mode EOS; the preference trainers split a conversation into
        prompt and completion by their common prefix, so a suffix after the prompt alone would break it).
        ``max_length`` truncates the text's own tokens on ``truncation_side`` and keeps the framing, as a
        tokenizer's own truncation does.
        """
        tokens = list(ids)
        prefix, suffix = ([], []) if self.renders_bos(tokens) else (list(self.prefix), list(self.suffix))
        if not with_suffix:
            suffix = []
        if max_length is not None:
            room = max(max_length - len(prefix) - len(suffix), 0)
            if len(tokens) > room:
                tokens = tokens[len(tokens) - room :] if truncation_side == "left" else tokens[:room]
        return prefix + tokens + suffix


# Per-token fields of an encoding and the value a prepended BOS gets in each.
_PREFIX_FIELD_VALUES = {"attention_mask": 1, "special_tokens_mask": 1, "assistant_masks": 0, "token_type_ids": 0}


def install_chat_framing(tokenizer: PreTrainedTokenizerBase) -> None:
    """Make ``tokenizer.apply_chat_template(..., tokenize=True)`` start each conversation with one BOS, as SFT does.

    transformers encodes the rendered text without special tokens (a chat template is expected to render them), but
    the built-in templates other than simplified-llama31 leave the BOS to the tokenizer, as the original engine's
    did. TRL's DPO and KTO trainers tokenize through this method, so without this their rows would lack the BOS that
    SFT trained with and that inference adds. The result gets :meth:`SpecialTokenFraming.frame`'s prefix (no suffix);
    a template that renders its own BOS is left alone. Unpadded lists (TRL's form) are framed; a padded or tensor
    result is returned as transformers made it, since no training path asks for one. Wrapping twice is an error.
    """
    if _WRAPPED_CHAT_ATTR in vars(tokenizer):
        raise RuntimeError("this tokenizer's apply_chat_template is already wrapped")
    unwrapped = tokenizer.apply_chat_template
    signature = inspect.signature(unwrapped)
    tokenizes_by_default = signature.parameters["tokenize"].default
    # TRL calls this once per row: the framing (two probe encodings) is read once per add_bos/add_eos setting
    framings: dict[tuple[Any, Any], SpecialTokenFraming] = {}

    def current_framing() -> SpecialTokenFraming:
        setting = (getattr(tokenizer, "add_bos_token", None), getattr(tokenizer, "add_eos_token", None))
        if setting not in framings:
            framings[setting] = SpecialTokenFraming.of(tokenizer)
        return framings[setting]

    @functools.wraps(unwrapped)
    def apply_chat_template(*args: Any, **kwargs: Any) -> Any:
        result: Any = unwrapped(*args, **kwargs)
        if len(args) <= 1 and not kwargs.get("tokenize", tokenizes_by_default):
            # rendering to text, once per row of a dataset: no ids to frame, and binding the signature would cost
            # as much as the rendering
            return result
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        options = bound.arguments
        if not options["tokenize"] or options["return_tensors"] is not None or options["padding"] not in (False, None):
            return result
        framing = current_framing()
        if not framing.prefix:
            return result
        if not options["return_dict"]:
            return _map_rows(result, lambda ids: framing.frame(ids, with_suffix=False))
        rows = result["input_ids"]
        batched = bool(rows) and isinstance(rows[0], list)
        needs = [not framing.renders_bos(ids) for ids in (rows if batched else [rows])]
        for key in list(result.keys()):
            if key != "input_ids" and key not in _PREFIX_FIELD_VALUES:
                raise ValueError(f"cannot add the BOS to the {key!r} field of apply_chat_template's result")
            fill = list(framing.prefix) if key == "input_ids" else [_PREFIX_FIELD_VALUES[key]] * len(framing.prefix)
            values = result[key] if batched else [result[key]]
            framed = [fill + list(row) if need else list(row) for row, need in zip(values, needs, strict=True)]
            result[key] = framed if batched else framed[0]
        return result

    setattr(tokenizer, _WRAPPED_CHAT_ATTR, unwrapped)
    tokenizer.apply_chat_template = apply_chat_template  # type: ignore[method-assign]


def _map_rows(ids: Any, frame: Callable[[list[int]], list[int]]) -> Any:
    # return_dict=False: one conversation gives a list of ids, several a list of such lists
    if ids and isinstance(ids[0], list):
        return [frame(row) for row in ids]
    return frame(ids)
