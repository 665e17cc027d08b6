"""Chat templates: the Jinja text the tokenizer renders conversations with, and the assistant-turn markers.

The templates are written for Hugging Face's chat-template environment, which compiles with ``trim_blocks`` and
``lstrip_blocks``. Every newline is therefore emitted from inside an expression (``{{ '\\n' }}``): a literal newline
after a ``{% ... %}`` tag would be silently dropped. The parts are glued together without whitespace.

Assistant content is wrapped in ``{% generation %}...{% endgeneration %}`` so that
``apply_chat_template(..., return_assistant_tokens_mask=True)`` works as well; it does not change the rendered text.
"""

from __future__ import annotations

from dataclasses import dataclass

from finetuning.config.data import ChatTemplateName


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template and the strings that delimit an assistant turn in its rendered output.

    ``jinja`` is None for ``keep-original`` (the tokenizer's own template is used). ``assistant_end`` is None where
    the turn ends with the tokenizer's EOS token, which is only known once the tokenizer is loaded: use
    :meth:`resolve_assistant_end`. ``assistant_start`` is None where the template has no usable start marker.
    """

    name: ChatTemplateName
    jinja: str | None
    assistant_start: str | None
    assistant_end: str | None
    new_special_tokens: tuple[str, ...]

    def resolve_assistant_end(self, eos_token: str | None) -> str:
        """The assistant end marker in force for a tokenizer whose EOS token is ``eos_token``."""
        if self.assistant_end is not None:
            return self.assistant_end
        if eos_token is None:
            raise ValueError(
                f"the chat template {self.name.value!r} ends assistant turns with the EOS token, "
                "but the tokenizer has no eos_token: pick a template with its own end marker (e.g. chat-ml)"
            )
        return eos_token


_CHAT_ML = "".join(
    [
        "{% for message in messages %}",
        "{% if message['role'] == 'assistant' %}",
        r"{{ '<|im_start|>assistant\n' }}",
        "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}",
        r"{{ '\n' }}",
        "{% else %}",
        r"{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}",
        "{% endif %}",
        "{% endfor %}",
        r"{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    ]
)

# The assistant reply follows "[/INST]" without a space, as in Mistral Instruct; the <<SYS>> block is borrowed from
# Llama 2. There is no generation prompt: the prompt already ends with " [/INST]".
_MISTRAL_WITH_SYSTEM = "".join(
    [
        "{% for message in messages %}",
        "{% if message['role'] == 'user' %}",
        "{{ '[INST] ' + message['content'] + ' [/INST]' }}",
        "{% elif message['role'] == 'system' %}",
        r"{{ '<<SYS>>\n' + message['content'] + '\n<</SYS>>\n' }}",
        "{% elif message['role'] == 'assistant' %}",
        "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}{{ ' ' }}",
        "{% endif %}",
        "{% endfor %}",
    ]
)

# Poro's pretraining data used these tags, each message closed by EOS. Only <|user|> and <|assistant|> are added
# as special tokens, as in the original engine.
_PORO = "".join(
    [
        "{% for message in messages %}",
        "{% if message['role'] == 'user' %}",
        r"{{ '<|user|>\n' + message['content'] + eos_token }}",
        "{% elif message['role'] == 'system' %}",
        r"{{ '<|system|>\n' + message['content'] + eos_token }}",
        "{% elif message['role'] == 'assistant' %}",
        r"{{ '<|assistant|>\n' }}",
        "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}",
        "{% endif %}",
        "{% endfor %}",
        r"{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}",
    ]
)

_SIMPLIFIED_LLAMA31 = "".join(
    [
        "{{ bos_token }}",
        "{% for message in messages %}",
        r"{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}",
        "{% if message['role'] == 'assistant' %}",
        "{% generation %}{{ (message['content'] | trim) + '<|eot_id|>' }}{% endgeneration %}",
        "{% else %}",
        "{{ (message['content'] | trim) + '<|eot_id|>' }}",
        "{% endif %}",
        "{% endfor %}",
        r"{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
    ]
)

_TEMPLATES: dict[ChatTemplateName, ChatTemplate] = {
    ChatTemplateName.CHAT_ML: ChatTemplate(
        name=ChatTemplateName.CHAT_ML,
        jinja=_CHAT_ML,
        assistant_start="<|im_start|>assistant\n",
        assistant_end="<|im_end|>",
        new_special_tokens=("<|im_start|>", "<|im_end|>"),
    ),
    ChatTemplateName.MISTRAL_WITH_SYSTEM: ChatTemplate(
        name=ChatTemplateName.MISTRAL_WITH_SYSTEM,
        jinja=_MISTRAL_WITH_SYSTEM,
        assistant_start="[/INST]",
        # The original hard-coded "</s>" because it forced every tokenizer's EOS to "</s>"; the template emits
        # eos_token, so the tokenizer's own EOS is the marker that actually occurs.
        assistant_end=None,
        new_special_tokens=(),
    ),
    ChatTemplateName.PORO: ChatTemplate(
        name=ChatTemplateName.PORO,
        jinja=_PORO,
        assistant_start="<|assistant|>\n",
        assistant_end=None,  # the tokenizer's EOS, as for mistral-with-system
        new_special_tokens=("<|user|>", "<|assistant|>"),
    ),
    ChatTemplateName.SIMPLIFIED_LLAMA31: ChatTemplate(
        name=ChatTemplateName.SIMPLIFIED_LLAMA31,
        jinja=_SIMPLIFIED_LLAMA31,
        assistant_start="<|start_header_id|>assistant<|end_header_id|>\n\n",
        assistant_end="<|eot_id|>",
        new_special_tokens=("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    ),
    ChatTemplateName.KEEP_ORIGINAL: ChatTemplate(
        name=ChatTemplateName.KEEP_ORIGINAL,
        jinja=None,
        assistant_start=None,  # unknown for an arbitrary template, so completions-only training is unavailable
        assistant_end=None,
        new_special_tokens=(),
    ),
}


def get_template(name: ChatTemplateName | str) -> ChatTemplate:
    """The chat template called ``name`` (a :class:`ChatTemplateName` or its string value)."""
    try:
        return _TEMPLATES[ChatTemplateName(name)]
    except ValueError:
        valid = ", ".join(t.value for t in ChatTemplateName)
        raise ValueError(f"unknown chat template {name!r}; valid names: {valid}") from None
