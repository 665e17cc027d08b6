"""Which trainer runs a loss_type, and how preference records become TRL rows."""

import pytest

from finetuning.config.data import DataType
from finetuning.config.jobs import preference_trainer
from finetuning.data.preference import to_trl_rows


@pytest.mark.parametrize(
    ("loss_type", "trainer"),
    [
        ("sigmoid", "dpo"),
        ("ipo", "dpo"),
        (["sigmoid", "sft"], "dpo"),
        ("kto", "kto"),
        ("apo_zero_unpaired", "kto"),
        ("orpo", "orpo"),
        ("simpo", "cpo"),
        ("cpo", "cpo"),
    ],
)
def test_loss_type_selects_the_trainer(loss_type: str | list[str], trainer: str) -> None:
    assert preference_trainer(loss_type) == trainer


@pytest.mark.parametrize(
    ("loss_type", "message"), [("sigmod", "unknown loss_type sigmod"), (["sigmoid", "kto"], "only DPO losses")]
)
def test_bad_loss_types_are_explained(loss_type: str | list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        preference_trainer(loss_type)


PAIR = {
    "prompt_messages": [{"role": "user", "content": "Q?", "tags": None, "labels": None}],
    "chosen_messages": [{"role": "assistant", "content": "good", "tags": None, "labels": None}],
    "rejected_messages": [{"role": "assistant", "content": "bad", "tags": None, "labels": None}],
    "id": "1",
}


def test_pairs_become_conversational_rows() -> None:
    (row,) = to_trl_rows([PAIR], DataType.DIRECT_PREFERENCE, unpaired=False)
    assert row == {
        "prompt": [{"role": "user", "content": "Q?"}],
        "chosen": [{"role": "assistant", "content": "good"}],
        "rejected": [{"role": "assistant", "content": "bad"}],
    }


def test_kto_unpairs_each_pair_into_a_desirable_and_an_undesirable_row() -> None:
    good, bad = to_trl_rows([PAIR], DataType.DIRECT_PREFERENCE, unpaired=True)
    assert (good["completion"][0]["content"], good["label"]) == ("good", True)
    assert (bad["completion"][0]["content"], bad["label"]) == ("bad", False)
    assert good["prompt"] == bad["prompt"]


def test_unpaired_records_keep_their_label() -> None:
    record = {
        "prompt_messages": PAIR["prompt_messages"],
        "completion_messages": PAIR["rejected_messages"],
        "label": False,
    }
    (row,) = to_trl_rows([record], DataType.UNPAIRED_PREFERENCE, unpaired=True)
    assert row["label"] is False
    assert row["completion"] == [{"role": "assistant", "content": "bad"}]


def test_truncation_keeps_the_prompts_end_and_the_answers_start() -> None:
    """TRL 0.13's max_prompt_length / max_completion_length, which the engine applies before TRL's collator."""
    from finetuning.data.preference import TruncatingPreferenceCollator

    seen: list[list[dict[str, list[int]]]] = []
    collator = TruncatingPreferenceCollator(seen.append, max_prompt_length=2, max_completion_length=3)
    example = {"prompt_ids": [1, 2, 3, 4], "chosen_ids": [5, 6, 7, 8], "rejected_ids": [9, 10]}
    collator([example])
    assert seen == [[{"prompt_ids": [3, 4], "chosen_ids": [5, 6, 7], "rejected_ids": [9, 10]}]]
    assert example["prompt_ids"] == [1, 2, 3, 4]  # the dataset's rows are left alone
    untouched: list[list[dict[str, list[int]]]] = []
    TruncatingPreferenceCollator(untouched.append, None, None)([example])
    assert untouched == [[example]]
