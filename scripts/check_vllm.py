"""`make check-vllm`: does a real vLLM serve our LoRA adapters the way PEFT runs them, before and after
``create_vllm_compatible_adapter``? Optional; not part of ``make test``.

Two interpreters take part. This script runs in the project's venv: it builds a tiny Llama-style base model and
tokenizer offline (``finetuning.tiny``), makes tiny LoRA adapters with random, non-zero weights that PEFT saves
with extra tensors, converts a copy of each with ``make_vllm_compatible`` and computes PEFT's greedy tokens. Then
it runs itself with ``--vllm-worker`` in vLLM's own venv (vLLM pins an older transformers than ours), which
imports nothing but the standard library and vLLM, generates greedily with every adapter and writes the token
ids and their log-probabilities to a JSON file. The script prints one row per adapter and exits 1 when a
served adapter's tokens differ from PEFT's, when vLLM's base model differs from transformers' or when an
adapter leaves the outputs unchanged (a vacuous check). An adapter that vLLM refuses is reported, not failed:
converting it is what the tool is for.

The adapters:

* ``embed-targets``: ``embed_tokens`` and ``lm_head`` are LoRA targets, so PEFT also saves the base layers'
  weights (``...embed_tokens.base_layer.weight``, ``...lm_head.base_layer.weight``);
* ``modules-to-save``: ``embed_tokens`` and ``lm_head`` are ``modules_to_save``; PEFT saves whole copies of them
  (left untrained here, so that stripping them loses nothing and the converted adapter must still match);
* ``grown-vocab``: as ``embed-targets`` after adding tokens to the tokenizer, so every embedding tensor has more
  rows than the base model's vocabulary. The tool marks it not vLLM-compatible (serve it after
  ``merge_adapter``); vLLM should refuse both variants, and a mismatch is reported, not failed.

    .venv/bin/python scripts/check_vllm.py --vllm-python .cache/vllm-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = (
    "User: What color is the sky?\nAssistant:",
    "The cat sees a red ball",
    "Question: What is 12 plus 30?\nAnswer:",
    "what is the capital of the river",
)
MAX_TOKENS = 12
LORA_RANK = 8
# vLLM's CPU attention supports head sizes 32, 64, 80, ... (0.32); finetuning.tiny's model has 16.
HEAD_DIM = 32


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--vllm-python", type=Path, help="the python of a venv with vLLM installed")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".cache" / "check-vllm")
    parser.add_argument("--vllm-worker", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.vllm_worker:
        return vllm_worker(Path(args.vllm_worker[0]), Path(args.vllm_worker[1]))
    if args.vllm_python is None:
        parser.error("--vllm-python is required")
    return check(args.vllm_python, args.workdir)


# --- the project's side (transformers, PEFT, the tool) ---------------------------------------------------------


def check(vllm_python: Path, workdir: Path) -> int:
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore")  # PEFT's and transformers' notes about embedding layers, expected here
    from finetuning.tools.vllm_conversion import make_vllm_compatible

    marker = workdir / ".check-vllm"
    if workdir.exists() and any(workdir.iterdir()):
        if not marker.is_file():
            print(f"{workdir} is not empty and was not made by this script; pick another --workdir")
            return 2
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    marker.touch()
    base = build_base(workdir / "base")
    prompts = tokenize(base)

    adapters: dict[str, Path] = {}
    notes: dict[str, str] = {}
    not_servable: set[str] = set()  # the adapters the tool says vLLM must not serve
    for case in ("embed-targets", "modules-to-save", "grown-vocab"):
        original = make_adapter(base, workdir / case, case)
        converted = workdir / f"{case}-converted"
        shutil.copytree(original, converted)
        outcome = make_vllm_compatible(converted)
        adapters[f"{case}|unconverted"] = original
        adapters[f"{case}|converted"] = converted
        notes[f"{case}|converted"] = f"tool: {outcome.action}, {len(outcome.removed_tensors)} tensors removed"
        if not outcome.vllm_compatible:
            not_servable.update({f"{case}|unconverted", f"{case}|converted"})
            notes[f"{case}|converted"] += ", not vllm_compatible"

    print("PEFT: greedy generation with each adapter", flush=True)
    peft_runs = {"base|-": peft_generate(base, None, prompts)}
    peft_runs.update({key: peft_generate(base, path, prompts) for key, path in adapters.items()})
    (workdir / "peft-out.json").write_text(json.dumps(peft_runs), encoding="utf-8")

    spec = {
        "base": str(base),
        "prompts": prompts,
        "max_tokens": MAX_TOKENS,
        "max_lora_rank": LORA_RANK,
        "adapters": {key: str(path) for key, path in adapters.items()},
    }
    spec_file, out_file = workdir / "vllm-spec.json", workdir / "vllm-out.json"
    spec_file.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    print(f"vLLM: {vllm_python} (log: {workdir / 'vllm.log'})", flush=True)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
        # in-process engine: an adapter that fails to load raises here instead of killing an engine process
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    }
    with (workdir / "vllm.log").open("w") as log:
        started = time.monotonic()
        rc = subprocess.call(
            [str(vllm_python), str(Path(__file__).resolve()), "--vllm-worker", str(spec_file), str(out_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    if rc != 0 or not out_file.is_file():
        print(f"the vLLM worker failed (exit {rc}); see {workdir / 'vllm.log'}")
        return 2
    vllm_out = json.loads(out_file.read_text(encoding="utf-8"))
    print(f"vLLM {vllm_out['version']} ran in {time.monotonic() - started:.0f} s\n")
    return report(adapters, peft_runs, vllm_out, notes, not_servable)


def build_base(out: Path) -> Path:
    """finetuning.tiny's model and tokenizer, re-initialised with heads of HEAD_DIM (seeded, so deterministic)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from finetuning.tiny import build_tiny_model

    build_tiny_model(out)
    config = AutoConfig.from_pretrained(out)
    config.num_attention_heads = config.hidden_size // HEAD_DIM
    config.num_key_value_heads = 1
    config.head_dim = HEAD_DIM
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out)
    return out


def tokenize(base: Path) -> list[list[int]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    return [[tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]] for text in PROMPTS]


def make_adapter(base: Path, out: Path, case: str) -> Path:
    """A LoRA adapter whose LoRA weights are random and large enough to change the greedy tokens."""
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if case == "grown-vocab":
        tokenizer = AutoTokenizer.from_pretrained(base)
        tokenizer.add_tokens([f"<extra_{i}>" for i in range(4)], special_tokens=True)
        model.resize_token_embeddings(len(tokenizer))
        tokenizer.save_pretrained(out)
    if case in ("embed-targets", "grown-vocab"):
        config = LoraConfig(r=LORA_RANK, lora_alpha=16, target_modules=["q_proj", "v_proj", "embed_tokens", "lm_head"])
    else:
        config = LoraConfig(
            r=LORA_RANK,
            lora_alpha=16,
            target_modules=["q_proj", "v_proj"],
            modules_to_save=["embed_tokens", "lm_head"],
        )
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if ".lora_" in name:  # lora_B and lora_embedding_A start at zero, which would change nothing
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    peft_model.save_pretrained(str(out))
    with safe_open(str(out / "adapter_model.safetensors"), framework="pt") as f:
        extra = [key for key in f.keys() if ".lora_" not in key]
    if not extra:
        raise SystemExit(f"{case}: PEFT saved no extra tensors; the check would test nothing")
    return out


def peft_generate(base: Path, adapter: Path | None, prompts: list[list[int]]) -> dict[str, Any]:
    """Greedy tokens (MAX_TOKENS, no stop at eos, as vLLM with ignore_eos) and each token's log-probability."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model: Any = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter is not None and (adapter / "tokenizer_config.json").is_file():  # grown-vocab
        model.resize_token_embeddings(len(AutoTokenizer.from_pretrained(adapter)))
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    tokens, logprobs = [], []
    with torch.no_grad():
        for prompt in prompts:
            ids = torch.tensor([prompt])
            out_ids, out_lp = [], []
            for _ in range(MAX_TOKENS):
                logits = model(input_ids=ids).logits[0, -1].float()
                lp = torch.log_softmax(logits, dim=-1)
                token = int(torch.argmax(logits))
                out_ids.append(token)
                out_lp.append(float(lp[token]))
                ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
            tokens.append(out_ids)
            logprobs.append(out_lp)
    return {"tokens": tokens, "logprobs": logprobs}


def report(
    adapters: dict[str, Path],
    peft_runs: dict[str, Any],
    vllm_out: dict[str, Any],
    notes: dict[str, str],
    not_servable: set[str],
) -> int:
    failures: list[str] = []
    rows = [("adapter", "variant", "vLLM", "tokens vs PEFT", "max |dlogprob|", "note")]
    footnotes: list[str] = []
    for key in ["base|-", *adapters]:
        case, variant = key.split("|")
        result = vllm_out["runs"][key]
        peft_key = f"{case}|unconverted" if variant == "converted" else key
        reference = peft_runs[peft_key]
        note = notes.get(key, "")
        if variant == "converted" and peft_runs[key]["tokens"] != reference["tokens"]:
            failures.append(f"{key}: PEFT's tokens changed after the conversion")
            note += "; PEFT changed after converting"
        if key != "base|-" and peft_runs[key]["tokens"] == peft_runs["base|-"]["tokens"]:
            failures.append(f"{key}: the adapter does not change PEFT's tokens; the check is vacuous")
        if "error" in result:
            footnotes.append(f"[{len(footnotes) + 1}] {key}: {result['error']}")
            rows.append((case, variant, "refused", "-", "-", f"{note} [{len(footnotes)}]".strip()))
            if (variant == "converted" and key not in not_servable) or key == "base|-":
                failures.append(f"{key}: vLLM refused it: {result['error']}")
            continue
        same = sum(a == b for a, b in zip(result["tokens"], reference["tokens"], strict=True))
        delta = max(
            (
                abs(a - b)
                for va, vb, ta, tb in zip(
                    result["logprobs"], reference["logprobs"], result["tokens"], reference["tokens"], strict=True
                )
                for a, b, x, y in zip(va, vb, ta, tb, strict=True)
                if x == y
            ),
            default=float("nan"),
        )
        if same != len(PROMPTS) and key not in not_servable:
            failures.append(f"{key}: vLLM's tokens differ from PEFT's for {len(PROMPTS) - same} prompts")
        verdict = "same" if same == len(PROMPTS) else "DIFFERENT"
        rows.append((case, variant, "loaded", f"{verdict} ({same}/{len(PROMPTS)})", f"{delta:.1e}", note))

    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    for footnote in footnotes:
        print(footnote[:400])
    print(f"\nreference: PEFT {peft_version()} in this venv, greedy, {MAX_TOKENS} tokens for {len(PROMPTS)} prompts")
    for failure in failures:
        print(f"FAIL {failure}")
    print("OK" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


def peft_version() -> str:
    import peft

    return str(peft.__version__)


# --- vLLM's side: standard library and vLLM only ------------------------------------------------------------------


def vllm_worker(spec_file: Path, out_file: Path) -> int:
    import vllm
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    spec = json.loads(spec_file.read_text(encoding="utf-8"))

    def make_llm() -> Any:
        return LLM(
            model=spec["base"],
            dtype="float32",
            enable_lora=True,
            max_lora_rank=spec["max_lora_rank"],
            max_loras=1,
            max_model_len=256,
            max_num_seqs=len(spec["prompts"]),
            enforce_eager=True,
            seed=0,
        )

    params = SamplingParams(temperature=0.0, max_tokens=spec["max_tokens"], ignore_eos=True, logprobs=0)
    prompts = [{"prompt_token_ids": ids} for ids in spec["prompts"]]
    llm = make_llm()
    runs: dict[str, Any] = {}
    jobs: list[tuple[str, str | None]] = [("base|-", None), *spec["adapters"].items()]
    for lora_id, (key, path) in enumerate(jobs):
        request = None if path is None else LoRARequest(key.replace("|", "-"), lora_id, path)
        try:
            outputs = llm.generate(prompts, params, lora_request=request, use_tqdm=False)
        except Exception as exc:  # a refused adapter; start afresh so that it cannot spoil the next one
            print(f"{key}: {type(exc).__name__}: {exc}", flush=True)
            runs[key] = {"error": f"{type(exc).__name__}: {exc}"}
            del llm
            llm = make_llm()
            continue
        tokens, logprobs = [], []
        for output in outputs:
            completion = output.outputs[0]
            tokens.append(list(completion.token_ids))
            logprobs.append(
                [step[token].logprob for step, token in zip(completion.logprobs, completion.token_ids, strict=True)]
            )
        runs[key] = {"tokens": tokens, "logprobs": logprobs}
        print(f"{key}: {tokens}", flush=True)
    out_file.write_text(json.dumps({"version": vllm.__version__, "runs": runs}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
