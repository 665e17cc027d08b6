"""Does an adapter need more tokens than its base model has? The evidence: the embedding matrices it saved, the
tokenizer saved beside it and, for an SFT training config, the chat template's tokens the base tokenizer lacks."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetuning.models import config_vocab_size
from finetuning.tools.adapter_files import saved_embedding_rows

if TYPE_CHECKING:
    from finetuning.config import DPOConfig, GRPOConfig, SFTConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VocabCheck:
    """Whether the adapter needs more tokens than its base model has, and the evidence for the answer."""

    base_vocab_size: int | None
    tokenizer_size: int | None
    saved_embedding_rows: dict[str, int]
    reasons: tuple[str, ...]

    @property
    def grows(self) -> bool:
        return bool(self.reasons)

    @property
    def extra_tokens(self) -> int | None:
        """How many tokens the adapter needs beyond the base's vocabulary; None when growth is known but not by
        how much (the base's size is unknown, or only the chat template's tokens said so)."""
        if not self.grows:
            return 0
        if self.base_vocab_size is None:
            return None
        needed = max([*self.saved_embedding_rows.values(), self.tokenizer_size or 0])
        return (needed - self.base_vocab_size) if needed > self.base_vocab_size else None


def base_vocab_size(reference: str | None) -> int | None:
    """The vocabulary size in a base model's config, or None when the config cannot be read."""
    if not reference:
        return None
    size = config_vocab_size(reference)
    if size is None:  # a hub id offline, a model type this transformers lacks: growth is then unknown
        logger.warning("could not read the vocabulary size of base model '%s'", reference)
    return size


def tokenizer_size(folder: Path) -> int | None:
    """``len(tokenizer)`` of the tokenizer saved in ``folder``, or None when there is none."""
    if not any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        return None
    try:
        from transformers import AutoTokenizer

        return len(AutoTokenizer.from_pretrained(folder, trust_remote_code=False))
    except Exception as exc:  # an unreadable tokenizer only loses one piece of evidence
        logger.warning("could not load the tokenizer in '%s': %s", folder, exc)
        return None


def check_vocabulary(
    folder: Path,
    header: Mapping[str, Mapping[str, Any]],
    base_reference: str | None,
    config: SFTConfig | DPOConfig | GRPOConfig | None = None,
) -> VocabCheck:
    """Does the adapter need a grown vocabulary? Evidence: the embeddings it saved, its tokenizer and, for an SFT
    config, whether the chat template adds tokens the base tokenizer lacks."""
    base_size = base_vocab_size(base_reference)
    rows = saved_embedding_rows(header)
    tok_size = tokenizer_size(folder)
    reasons = []
    if base_size is not None:
        grown = {key: n for key, n in rows.items() if n != base_size}
        if grown:
            sizes = sorted(set(grown.values()))
            reasons.append(
                f"the adapter saved embeddings with {', '.join(map(str, sizes))} rows but the base model has "
                f"{base_size} tokens (vocabulary grew)"
            )
        if tok_size is not None and tok_size > base_size:
            reasons.append(f"the adapter's tokenizer has {tok_size} tokens, the base model {base_size}")
    new_tokens = _template_tokens_missing(config)
    if new_tokens:
        reasons.append(f"the chat template adds tokens the base tokenizer lacks: {', '.join(new_tokens)}")
    return VocabCheck(base_size, tok_size, rows, tuple(reasons))


def _template_tokens_missing(config: SFTConfig | DPOConfig | GRPOConfig | None) -> list[str]:
    """The SFT (or GRPO) chat template's tokens that the base tokenizer lacks (the original engine's growth test)."""
    from finetuning.config import GRPOConfig, SFTConfig

    if not isinstance(config, SFTConfig | GRPOConfig):
        return []  # DPO refuses to add tokens, so it never grows the vocabulary
    from finetuning.templates import get_template

    template = get_template(config.data_conf.chat_template_name)
    if not template.new_special_tokens:
        return []
    reference = config.run_conf.tokenizer or config.run_conf.model
    try:
        from transformers import AutoTokenizer

        vocab = AutoTokenizer.from_pretrained(reference, trust_remote_code=False).get_vocab()
    except Exception as exc:  # the base may not be reachable from here; the adapter's own evidence still counts
        logger.warning("could not load the base tokenizer '%s' to check the template's tokens: %s", reference, exc)
        return []
    return [token for token in template.new_special_tokens if token not in vocab]
