from typing import Literal

ChatTemplateName = Literal["chat-ml", "keep-original", "mistral-with-system", "poro", "simplified-llama31"]

CHAT_TEMPLATE_NAME_VALUES: set[ChatTemplateName] = {
    "chat-ml",
    "keep-original",
    "mistral-with-system",
    "poro",
    "simplified-llama31",
}


def check_chat_template_name(value: str) -> ChatTemplateName:
    if value in CHAT_TEMPLATE_NAME_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {CHAT_TEMPLATE_NAME_VALUES!r}")
