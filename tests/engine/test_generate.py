"""The `generate` command with the tiny model on the CPU: output format, batching, truncation, adapters, 4-bit,
and the errors users see. Real models throughout, no mocks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from sft_helpers import run_cli, sft_config

from finetuning.config.jobs import GenerateConfig
from finetuning.events import read_events
from finetuning.tiny import tiny_chat_records, write_jsonl
from finetuning.tools import generate as gen
from finetuning.tools import generation_prompts as gp
from finetuning.tools.generation_batches import generate_batches
from finetuning.tools.generation_model import load_generation_model, load_inference_tokenizer
from finetuning.tools.generation_params import build_generation_config, with_model_defaults

pytestmark = pytest.mark.slow

ORIGINAL_CONFIGS = Path(__file__).parents[1] / "assets" / "original-configs"

ITEM_KEYS = [
    "dataset",
    "id",
    "prompt",
    "answer",
    "correct_answers",
    "test_type",
    "data_collection",
    "truncated",
    "all_text_raw",
    "gen_params",
]

# Different lengths, so that a batch of them needs padding.
QUESTIONS = [
    "Hi",
    "What color is the sky?",
    "the cat sees a book quickly and then the old man reads a long letter in the garden",
    "1 2 3",
    "Why does the river follow the road at night, and how many apples are there?",
]


def run_generate(tmp_path: Path, config: dict[str, Any], name: str = "run") -> tuple[int, list[dict[str, Any]], Path]:
    """Run the real CLI; returns the exit code, the events and the output path."""
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "gen.yaml"
    config_path.write_text(yaml.safe_dump(config))
    events_path, output = folder / "events.jsonl", folder / "answers.yaml"
    code = gen.main(["--events-file", str(events_path), str(config_path), str(output)])
    return code, read_events(events_path) if events_path.exists() else [], output


def open_input(model: Path, text: str = "What color is the sky?", num_samples: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "model_conf": {"model": str(model)},
        "prompt_conf": {"type": "open-input", "input": text, "num_samples": num_samples},
        "hf_gen_params": {"do_sample": False, "max_new_tokens": 8},
        **extra,
    }


def eval_data(model: Path, path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "model_conf": {"model": str(model)},
        "prompt_conf": {"type": "eval-data", "data": {"path": str(path)}},
        "hf_gen_params": {"do_sample": False, "max_new_tokens": 12},
        **extra,
    }


def user_turns(questions: list[str]) -> list[dict[str, Any]]:
    return [{"prompt_messages": [{"role": "user", "content": q}]} for q in questions]


def has_anchors_or_aliases(text: str) -> bool:
    return any(isinstance(token, yaml.AnchorToken | yaml.AliasToken) for token in yaml.scan(text))


@pytest.fixture(scope="module")
def trained_adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A chat-ml LoRA adapter that learned the tiny colour answers and to end them with <|im_end|>.

    40 steps at 1e-2: with 20 (or the helper's 5e-3) the model does not yet stop at <|im_end|>.
    """
    tmp = tmp_path_factory.mktemp("adapter")
    data = write_jsonl(tiny_chat_records(32), tmp / "colors.jsonl")
    config = sft_config(tiny_model_dir, data, tmp / "out", training_args={"max_steps": 40, "learning_rate": 1e-2})
    code, events = run_cli(tmp, config)
    assert code == 0, events[-1]
    assert (tmp / "out" / "checkpoint-new-basemodel").is_dir()  # chat-ml grew the vocabulary
    return tmp / "out" / "checkpoint-final"


def test_open_input_is_reproducible_and_round_trips(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = open_input(tiny_model_dir, num_samples=3, batch_size=2)
    code, events, output = run_generate(tmp_path, config, "first")
    assert code == 0
    code_again, _, output_again = run_generate(tmp_path, config, "second")
    assert code_again == 0
    text = output.read_text(encoding="utf-8")
    assert text == output_again.read_text(encoding="utf-8")  # greedy: the same bytes twice

    assert not has_anchors_or_aliases(text)
    items = yaml.safe_load(text)
    assert [list(item) for item in items] == [ITEM_KEYS] * 3
    assert [item["id"] for item in items] == ["0", "1", "2"]
    first = items[0]
    assert first["dataset"] == first["data_collection"] == "_open_prompt_data_"
    # As the original engine: the input is sent as given, though the tiny tokenizer has a chat template.
    assert first["prompt"] == "What color is the sky?"
    assert first["answer"]
    assert first["all_text_raw"].startswith("What color is the sky?")
    assert first["all_text_raw"].endswith(first["answer"])
    assert "User:" not in first["all_text_raw"]
    # The original's empty response for every open-input sample: one empty reference answer, not none.
    assert (first["correct_answers"], first["test_type"], first["truncated"]) == ([""], "open-ended", False)
    assert len({item["answer"] for item in items}) == 1  # greedy: every sample alike
    params = first["gen_params"]
    assert params["max_new_tokens"] == 8
    assert params["max_length"] == 2048
    assert params["do_sample"] is False
    assert params["eos_token_id"] == [1]  # "</s>" is the tiny tokenizer's eos: not listed twice
    assert params["pad_token_id"] == 1  # no pad token: eos pads
    assert json.loads(params["model_conf"]) == {"model": str(tiny_model_dir)}
    assert json.loads(params["quant_conf"]) == {}

    assert events[0]["type"] == "run_started"
    assert events[0]["method"] == "generate"
    assert events[0]["config"]["batch_size"] == 2
    phases = [e["phase"] for e in events if e["type"] == "phase"]
    assert phases == ["loading_tokenizer", "loading_model", "generating", "saving"]
    progress = [(e["step"], e["total_steps"]) for e in events if e["type"] == "progress"]
    assert progress == [(1, 2), (2, 2)]
    final = events[-1]
    assert final["type"] == "status"
    assert final["status"] == "succeeded"
    assert final["artifacts"] == {"output": str(output)}
    assert final["metrics"]["prompts"] == 3
    assert final["metrics"]["truncated"] == 0
    assert final["metrics"]["new_tokens"] <= 3 * 8
    assert not list(output.parent.glob(".*.tmp"))  # the temporary file was renamed, not left behind


def test_open_input_with_apply_chat_template_is_a_user_turn(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = open_input(tiny_model_dir, num_samples=2)
    config["prompt_conf"]["apply_chat_template"] = True
    code, events, output = run_generate(tmp_path, config)
    assert code == 0, events[-1]
    items = yaml.safe_load(output.read_text(encoding="utf-8"))
    assert [list(item) for item in items] == [ITEM_KEYS] * 2
    assert [item["id"] for item in items] == ["0", "1"]
    first = items[0]
    assert first["prompt"] == "User: What color is the sky?\nAssistant:"
    assert first["all_text_raw"].startswith(first["prompt"])
    assert first["all_text_raw"].endswith(first["answer"])
    assert first["correct_answers"] == [""]
    assert first["dataset"] == first["data_collection"] == "_open_prompt_data_"


def test_apply_chat_template_without_a_template_fails_naming_the_field(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import AutoTokenizer

    plain_tokenizer = tmp_path / "no-template-tokenizer"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(plain_tokenizer)
    assert not AutoTokenizer.from_pretrained(plain_tokenizer).chat_template

    config = open_input(tiny_model_dir)
    config["model_conf"]["tokenizer"] = str(plain_tokenizer)
    config["prompt_conf"]["apply_chat_template"] = True
    code, events, output = run_generate(tmp_path, config, "templated")
    assert code == 2
    error = events[-1]["error"]
    assert (error["code"], error["param"]) == ("invalid_config", "prompt_conf.apply_chat_template")
    assert "no chat template" in error["message"]
    assert "no chat template" in capsys.readouterr().err
    assert not output.exists()
    assert not any(e.get("phase") == "loading_model" for e in events)  # found before loading the model

    # The default needs no template: the input goes as given.
    del config["prompt_conf"]["apply_chat_template"]
    code, events, output = run_generate(tmp_path, config, "raw")
    assert code == 0, events[-1]
    assert [item["prompt"] for item in yaml.safe_load(output.read_text())] == ["What color is the sky?"]


def test_the_original_engines_generate_config_runs(tiny_model_dir: Path, tmp_path: Path) -> None:
    # The original engine's own test config, with the tiny model in place of the hub one: its revision is a hub
    # commit, which means nothing for a local folder.
    config = yaml.safe_load((ORIGINAL_CONFIGS / "orig-test_e2e-test_generate-generate_config.yaml").read_text())
    config["model_conf"]["model"] = str(tiny_model_dir)
    del config["model_conf"]["model_args"]["revision"]
    code, events, output = run_generate(tmp_path, config)
    assert code == 0, events[-1]
    items = yaml.safe_load(output.read_text(encoding="utf-8"))
    assert [list(item) for item in items] == [ITEM_KEYS]
    (item,) = items
    assert item["prompt"] == "Hi my name is "
    assert item["all_text_raw"].startswith("Hi my name is ")
    assert (item["dataset"], item["id"], item["correct_answers"]) == ("_open_prompt_data_", "0", [""])
    assert item["gen_params"]["max_new_tokens"] == 4
    assert item["gen_params"]["do_sample"] is False
    assert 0 < events[-1]["metrics"]["new_tokens"] <= 4


def test_sampling_with_a_seed_repeats(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = open_input(tiny_model_dir, num_samples=4, seed=3)
    config["hf_gen_params"] = {"do_sample": True, "temperature": 1.5, "max_new_tokens": 8}
    outputs = []
    for name in ("a", "b"):
        code, _, output = run_generate(tmp_path, config, name)
        assert code == 0
        outputs.append(yaml.safe_load(output.read_text()))
    assert [i["answer"] for i in outputs[0]] == [i["answer"] for i in outputs[1]]
    assert len({i["answer"] for i in outputs[0]}) > 1  # it did sample
    assert outputs[0][0]["gen_params"]["temperature"] == 1.5


def test_batches_give_the_token_ids_of_one_at_a_time(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = GenerateConfig.validate_config(open_input(tiny_model_dir))
    tokenizer = load_inference_tokenizer(config.model_conf)
    generation_config = build_generation_config({"do_sample": False, "max_new_tokens": 16}, tokenizer)
    model = load_generation_model(config, tokenizer)
    generation_config = with_model_defaults(generation_config, model)
    prompts = [
        gp.encode_prompt(tokenizer, gp.render_open_input(tokenizer, q, apply_chat_template=True), 100).ids
        for q in QUESTIONS
    ]
    assert len({len(p) for p in prompts[:4]}) == 3  # the batches of 4 mix lengths: padding is exercised

    one_at_a_time = generate_batches(model, tokenizer, prompts, generation_config, batch_size=1)
    batched = generate_batches(model, tokenizer, prompts, generation_config, batch_size=4)
    assert batched == one_at_a_time
    assert all(len(ids) == 16 for ids in batched)  # the random model never says eos: all 16 tokens compared

    # The same through the command, with answers and raw texts.
    data = write_jsonl(user_turns(QUESTIONS), tmp_path / "questions.jsonl")
    answers = {}
    for batch_size in (1, 4):
        code, events, output = run_generate(
            tmp_path, eval_data(tiny_model_dir, data, batch_size=batch_size), str(batch_size)
        )
        assert code == 0
        assert [e["total_steps"] for e in events if e["type"] == "progress"][-1] == (5 if batch_size == 1 else 2)
        answers[batch_size] = [(i["id"], i["answer"], i["all_text_raw"]) for i in yaml.safe_load(output.read_text())]
    assert answers[4] == answers[1]
    assert [a[0] for a in answers[4]] == ["0", "1", "2", "3", "4"]  # file order, though batched longest first


def test_eval_data_fields_and_reference_answers(tiny_model_dir: Path, tmp_path: Path) -> None:
    records: list[dict[str, Any]] = [
        {
            "id": "q-sky",
            "dataset": "colors",
            "prompt_messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What color is the sky?"},
            ],
            "response": "blue",
            "answer": "ignored when there is a response",
            "extra": {"kept": False},
        },
        {"id": 7, "prompt_messages": [{"role": "user", "content": "2 plus 2?"}], "answer": "4"},
        {"prompt_messages": [{"role": "user", "content": "Say anything."}]},
    ]
    data = write_jsonl(records, tmp_path / "evalset.jsonl")
    code, _, output = run_generate(tmp_path, eval_data(tiny_model_dir, data, batch_size=2))
    assert code == 0
    items = yaml.safe_load(output.read_text())
    assert [list(item) for item in items] == [ITEM_KEYS] * 3
    assert [(i["dataset"], i["data_collection"], i["id"]) for i in items] == [
        ("colors", "colors", "q-sky"),
        ("evalset", "evalset", "7"),  # no dataset: the file's name
        ("evalset", "evalset", "2"),  # no id: the position in the file
    ]
    assert [i["correct_answers"] for i in items] == [["blue"], ["4"], []]
    assert items[0]["prompt"] == "System: Be brief.\nUser: What color is the sky?\nAssistant:"
    assert all(i["test_type"] == "open-ended" and i["truncated"] is False for i in items)


def test_long_prompts_lose_their_start_and_are_flagged(tiny_model_dir: Path, tmp_path: Path) -> None:
    long_question = " ".join(f"word{i}" for i in range(80)) + " the end?"
    data = write_jsonl(user_turns([long_question, "Hi"]), tmp_path / "lengths.jsonl")
    config = eval_data(tiny_model_dir, data)
    config["hf_gen_params"] = {"do_sample": False, "max_length": 40, "max_new_tokens": 8}
    code, events, output = run_generate(tmp_path, config)
    assert code == 0
    long_item, short_item = yaml.safe_load(output.read_text())
    assert (long_item["truncated"], short_item["truncated"]) == (True, False)
    assert long_item["prompt"].startswith("User: word0 word1")  # the rendered prompt, as it was before cutting
    raw = long_item["all_text_raw"]
    assert "word0 " not in raw
    assert "word79 the end?\nAssistant:" in raw
    assert events[-1]["metrics"]["truncated"] == 1

    tokenizer = load_inference_tokenizer(GenerateConfig.validate_config(config).model_conf)
    encoded = gp.encode_prompt(tokenizer, long_item["prompt"], 32)
    full = tokenizer(long_item["prompt"])["input_ids"]
    assert encoded.truncated
    assert encoded.ids == full[-32:]


def test_bos_is_not_doubled_and_eos_not_appended(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    # As training loads it: the post-processor frames every text with <s> ... </s>.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, add_bos_token=True, add_eos_token=True)
    plain = tokenizer("User: Hi\nAssistant:", add_special_tokens=False)["input_ids"]
    assert tokenizer("User: Hi\nAssistant:")["input_ids"] == [0, *plain, 1]
    assert gp.encode_prompt(tokenizer, "User: Hi\nAssistant:", 100).ids == [0, *plain]
    # A template that writes the BOS itself (like llama-3's) must not get a second one.
    assert gp.encode_prompt(tokenizer, "<s>User: Hi\nAssistant:", 100).ids == [0, *plain]
    # Left truncation keeps the BOS in front of the kept end.
    cut = gp.encode_prompt(tokenizer, "User: Hi\nAssistant:", 4)
    assert cut.truncated
    assert cut.ids == [0, *plain[-3:]]


def test_adapter_uses_its_tokenizer_and_stops_at_im_end(
    tiny_model_dir: Path, trained_adapter: Path, tmp_path: Path
) -> None:
    conversations = tiny_chat_records(12)
    records = [
        {
            "id": r["id"],
            "dataset": r["dataset"],
            "prompt_messages": r["messages"][:1],
            "response": r["messages"][1]["content"],
        }
        for r in conversations
    ]
    data = write_jsonl(records, tmp_path / "colors-eval.jsonl")
    config = eval_data(tiny_model_dir, data, batch_size=5)
    config["model_conf"]["adapter"] = str(trained_adapter)
    code, events, output = run_generate(tmp_path, config, "with-sibling")
    assert code == 0, events[-1]
    items = yaml.safe_load(output.read_text())

    # No model_conf.tokenizer: the adapter's (chat-ml, with <|im_end|> as eos) is used, not the base's.
    assert items[0]["prompt"] == "<|im_start|>user\nWhat color is the sky?<|im_end|>\n<|im_start|>assistant\n"
    assert items[0]["gen_params"]["eos_token_id"] == [1001, 1]  # <|im_end|>, then the base's </s>
    stopped = [i for i in items if i["all_text_raw"].endswith("<|im_end|>")]
    assert len(stopped) == len(items)  # every answer ends at the end of the assistant turn, well before 12 tokens
    assert all("<|im_end|>" not in i["answer"] and i["answer"] for i in items)  # special tokens are skipped
    right = sum(i["answer"] == i["correct_answers"][0] for i in items)
    assert right >= len(items) // 3  # it learned something (random choice among 8 colours: 1 in 8)

    # Without the checkpoint-new-basemodel sibling the base grows to the tokenizer before the adapter attaches;
    # the adapter carries the trained embedding rows, so the answers are the same.
    lone = tmp_path / "lone" / "adapter"
    shutil.copytree(trained_adapter, lone)
    config["model_conf"]["adapter"] = str(lone)
    code, _, output_lone = run_generate(tmp_path, config, "grown")
    assert code == 0
    assert [i["answer"] for i in yaml.safe_load(output_lone.read_text())] == [i["answer"] for i in items]


def test_adapter_without_its_tokenizer_explains_the_mismatch(
    tiny_model_dir: Path, trained_adapter: Path, tmp_path: Path
) -> None:
    # An adapter folder without tokenizer files falls back to the model's tokenizer, which lacks the chat-ml
    # tokens the adapter's embeddings were trained with.
    bare = tmp_path / "bare-adapter"
    bare.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(trained_adapter / name, bare / name)
    config = open_input(tiny_model_dir)
    config["model_conf"]["adapter"] = str(bare)
    code, events, output = run_generate(tmp_path, config)
    assert code == 2
    error = events[-1]["error"]
    assert error["param"] == "model_conf.adapter"
    assert "model_conf.tokenizer" in error["message"]
    assert not output.exists()


def require_bitsandbytes() -> None:
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # bitsandbytes raises RuntimeError/ImportError when no backend fits this machine
        pytest.skip(f"bitsandbytes cannot load here: {exc}")


FOUR_BIT = {"quantization_type": "bits-and-bytes", "load_in_4bit": True, "bnb_4bit_compute_dtype": "float32"}


def test_four_bit_quantization_generates_on_the_cpu(tiny_model_dir: Path, tmp_path: Path) -> None:
    require_bitsandbytes()
    code, events, output = run_generate(tmp_path, open_input(tiny_model_dir, num_samples=2, quant_conf=FOUR_BIT))
    assert code == 0, events[-1]
    items = yaml.safe_load(output.read_text())
    assert len(items) == 2
    assert items[0]["answer"]
    assert json.loads(items[0]["gen_params"]["quant_conf"]) == FOUR_BIT


def test_four_bit_base_with_the_adapter(tiny_model_dir: Path, trained_adapter: Path, tmp_path: Path) -> None:
    # A quantized base cannot grow its embeddings; the checkpoint-new-basemodel beside the adapter needs no growing.
    require_bitsandbytes()
    questions = [r["messages"][:1] for r in tiny_chat_records(6)]
    data = write_jsonl([{"prompt_messages": q} for q in questions], tmp_path / "q.jsonl")
    config = eval_data(tiny_model_dir, data, quant_conf=FOUR_BIT)
    config["model_conf"]["adapter"] = str(trained_adapter)
    code, events, output = run_generate(tmp_path, config)
    assert code == 0, events[-1]
    items = yaml.safe_load(output.read_text())
    assert all(i["answer"] for i in items)
    assert sum(i["all_text_raw"].endswith("<|im_end|>") for i in items) >= len(items) // 2


@pytest.mark.parametrize(
    ("change", "code", "param", "words"),
    [
        ({"model_conf": {"model": "./no-such-model"}}, "model_not_found", "model_conf.model", "no folder at"),
        ({"model_conf": {"adapter": "./no-such-adapter"}}, "model_not_found", "model_conf.adapter", "no folder at"),
        ({"hf_gen_params": {"max_new_token": 8}}, "invalid_config", "hf_gen_params.max_new_token", "did you mean"),
        ({"hf_gen_params": {"max_new_tokens": -1}}, "invalid_config", "hf_gen_params.max_new_tokens", "than 0"),
        ({"hf_gen_params": {"top_k": 5, "max_new_tokens": "8"}}, "invalid_config", "hf_gen_params.max_new_tokens", ""),
        ({"hf_gen_params": {"max_length": 8}}, "invalid_config", "hf_gen_params.max_new_tokens", "no room"),
        ({"hf_gen_params": {"num_return_sequences": 2}}, "invalid_config", "hf_gen_params.num_return_sequences", ""),
        ({"prompt_conf": {"num_samples": 0}}, "invalid_config", "prompt_conf.num_samples", "greater than or equal"),
    ],
)
def test_bad_config_exits_2_naming_the_field(
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, Any],
    code: str,
    param: str,
    words: str,
) -> None:
    config = open_input(tiny_model_dir)
    for section, values in change.items():
        config[section] = {**config[section], **values}
    exit_code, events, output = run_generate(tmp_path, config)
    assert exit_code == 2
    final = events[-1]
    assert final["status"] == "failed"
    assert final["error"]["code"] == code
    assert final["error"]["param"] == param
    assert words in final["error"]["message"]
    err = capsys.readouterr().err
    assert words in err
    assert "Traceback" not in err
    assert not output.exists()
    assert not any(e.get("phase") == "loading_model" for e in events)  # found before loading any model


@pytest.mark.parametrize("layout", ["jsonl", "json-array"])
def test_eval_record_without_prompt_messages_names_file_and_line(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: str
) -> None:
    good = {"prompt_messages": [{"role": "user", "content": "Hi"}]}
    bad = {"messages": [{"role": "user", "content": "Hi"}], "response": "Hello"}
    if layout == "jsonl":
        data, line = tmp_path / "broken.jsonl", 2
        data.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    else:
        data, line = tmp_path / "broken.json", 3  # the "[" has a line of its own
        data.write_text("[\n" + json.dumps(good) + ",\n" + json.dumps(bad) + "\n]\n")
    code, events, _ = run_generate(tmp_path, eval_data(tiny_model_dir, data))
    assert code == 2
    error = events[-1]["error"]
    assert error["param"] == "prompt_conf.data.path"
    assert error["code"] == "invalid_data"
    assert f"{data.name} line {line}" in error["message"]
    assert "prompt_messages" in error["message"]
    assert f"{data.name} line {line}" in capsys.readouterr().err


def test_missing_eval_file_fails_before_loading(tiny_model_dir: Path, tmp_path: Path) -> None:
    code, events, _ = run_generate(tmp_path, eval_data(tiny_model_dir, tmp_path / "absent.jsonl"))
    assert code == 2
    assert events[-1]["error"]["code"] == "data_not_found"
    assert events[-1]["error"]["param"] == "prompt_conf.data.path"
