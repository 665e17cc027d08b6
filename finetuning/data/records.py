"""The record types a data file may hold, one JSON object per example.

Unknown keys are dropped (as in the original engine) so that files carrying extra metadata still load;
a record of the wrong kind (missing or mistyped fields) fails validation.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]


class _Record(BaseModel):
    # extra="ignore": unknown keys vanish on model_dump, which gives every file the same columns.
    model_config = ConfigDict(extra="ignore")


class Message(_Record):
    """One turn of a conversation."""

    role: Role
    content: str
    tags: list[str] | None = None
    labels: dict[str, str] | None = None


class _RecordMetadata(_Record):
    dataset: str | None = None
    id: str | None = None
    tags: list[str] | None = None
    labels: dict[str, str] | None = None


class ChatConversation(_RecordMetadata):
    """An SFT example: a whole conversation to train on."""

    messages: list[Message] = Field(min_length=1)


class DirectPreference(_RecordMetadata):
    """A preference (DPO) example: a prompt with a preferred and a dispreferred continuation."""

    prompt_messages: list[Message] = Field(min_length=1)
    chosen_messages: list[Message] = Field(min_length=1)
    rejected_messages: list[Message] = Field(min_length=1)


class UnpairedPreference(_RecordMetadata):
    """A KTO example: a prompt and one continuation labelled desirable (true) or undesirable (false)."""

    prompt_messages: list[Message] = Field(min_length=1)
    completion_messages: list[Message] = Field(min_length=1)
    label: bool
