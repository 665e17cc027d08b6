"""``finetuning``: run an experiment from one YAML file, validate a config, export the schema, build a tiny model."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetuning.config import CONFIG_CLASSES, ConfigError
from finetuning.tools import upgrade_config
from finetuning.tools.common import EXIT_BAD_INPUT, EXIT_OK, add_common_arguments, run_with_events, setup_logging

if TYPE_CHECKING:
    from finetuning.events import EventWriter

logger = logging.getLogger("finetuning")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finetuning", description="Finetuning")
    add_common_arguments(parser)
    parser.add_argument(
        "--num-preprocess-workers", type=int, default=4, help="Number of processes to use for preprocessing"
    )
    parser.add_argument("--mlflow-server-uri", default=None, help="MLflow server URI. Can be local path.")
    parser.add_argument("--experiment-name", default="default", help="Experiment name that is used for MLflow tracking")
    parser.add_argument("--hf-mlflow-log-artifacts", default="False", help="Whether to store model artifacts in MLFlow")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="{sft,dpo,grpo,plan,validate,upgrade-config,schema,tiny-model}"
    )
    for method, text in (
        ("sft", "Supervised FineTuning."),
        (
            "dpo",
            "Direct Preference Optimization and the related preference methods (IPO, KTO, ...).",
        ),
        ("grpo", "Reinforcement finetuning with GRPO and built-in graders."),
    ):
        sub = commands.add_parser(method, help=text)
        sub.add_argument("config", type=Path, help="Path to the experiment's YAML config file.")

    plan = commands.add_parser(
        "plan",
        help="Pre-flight plan: problem rows, token statistics, steps, memory and time of a run, without running it.",
    )
    plan.add_argument("kind", choices=["sft", "dpo", "grpo"])
    plan.add_argument("config", type=Path)
    plan.add_argument("--gpu", default=None, help="The card to give a memory verdict and time for, e.g. H100-80GB.")
    plan.add_argument("--processes", type=int, default=1, help="Training processes (GPUs) in all (default 1).")
    plan.add_argument(
        "--max-rows", type=int, default=None, help="Read at most this many rows of each JSONL file, extrapolate."
    )
    plan.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="Where tokenized data goes (default: the engine's preprocessing cache, which the run then reuses).",
    )
    plan.add_argument("--json", action="store_true", help="Print the report as JSON (default: a summary).")

    validate = commands.add_parser("validate", help="Check a config file and print the resolved config.")
    validate.add_argument("kind", choices=sorted(CONFIG_CLASSES))
    validate.add_argument("config", type=Path)

    upgrade = commands.add_parser(
        "upgrade-config", help="Rewrite configs of the original engine in today's spelling, keeping comments."
    )
    upgrade_config.make_parser(upgrade)

    schema = commands.add_parser("schema", help="Print the JSON Schema of a config (for editors and the API).")
    schema.add_argument("kind", choices=sorted(CONFIG_CLASSES))

    tiny = commands.add_parser("tiny-model", help="Build a small random causal LM and tokenizer, offline.")
    tiny.add_argument("out_dir", type=Path)
    tiny.add_argument("--arch", choices=["llama", "qwen2"], default="llama")
    tiny.add_argument("--vocab-size", type=int, default=1000)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--with-pad-token", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    setup_logging(args.logging_level)
    if args.command == "schema":
        print(json.dumps(CONFIG_CLASSES[args.kind].model_json_schema(), indent=2))
        return EXIT_OK
    if args.command == "upgrade-config":
        return upgrade_config.run(args)
    if args.command == "validate":
        try:
            config = CONFIG_CLASSES[args.kind].from_yaml_file(args.config)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(config.to_yaml(), end="")
        return EXIT_OK
    if args.command == "plan":
        return _plan(args)
    if args.command == "tiny-model":
        from finetuning.tiny import build_tiny_model

        print(
            build_tiny_model(
                args.out_dir,
                arch=args.arch,
                vocab_size=args.vocab_size,
                seed=args.seed,
                with_pad_token=args.with_pad_token,
            )
        )
        return EXIT_OK
    return run_with_events(args, lambda events: _train(args, events))


def _plan(args: argparse.Namespace) -> int:
    """``finetuning plan``: the report on stdout (exit 0, problem rows included); bad input exits 2 with one line."""
    from finetuning.config import DPOConfig, GRPOConfig, SFTConfig
    from finetuning.plan import PlanOptions, plan_training, summary, to_json
    from finetuning.settings import get_engine_settings
    from finetuning.tools.common import is_user_error

    try:
        config = CONFIG_CLASSES[args.kind].from_yaml_file(args.config)
        cache_dir = args.cache_dir or get_engine_settings().cache_dir / "preprocessed"
        options = PlanOptions(
            num_processes=args.processes,
            gpu=args.gpu,
            max_rows=args.max_rows,
            cache_dir=cache_dir,
            num_proc=args.num_preprocess_workers,
        )
        assert isinstance(config, SFTConfig | DPOConfig | GRPOConfig)
        report = plan_training(config, options)
    except Exception as exc:
        if not is_user_error(exc) and not isinstance(exc, ValueError):
            raise
        if args.json:  # for the service: the error as the API answers it
            code = getattr(exc, "code", None) or ("invalid_config" if isinstance(exc, ConfigError) else "invalid_data")
            print(json.dumps({"error": {"code": code, "message": str(exc), "param": getattr(exc, "param", None)}}))
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(to_json(report) if args.json else summary(report))
    return EXIT_OK


def _train(args: argparse.Namespace, events: EventWriter) -> dict[str, Any]:
    from finetuning.runtime import RunOptions
    from finetuning.settings import get_engine_settings
    from finetuning.storage.inputs import fetch_inputs, remote_inputs
    from finetuning.tracking import TrackingCli

    settings = get_engine_settings()
    options = RunOptions(
        settings=settings,
        num_preprocess_workers=args.num_preprocess_workers,
        tracking=TrackingCli(args.mlflow_server_uri, args.experiment_name, args.hf_mlflow_log_artifacts),
    )
    artifacts: dict[str, str] = {}
    metrics: dict[str, Any] = {}
    if args.command == "sft":
        from finetuning.config import SFTConfig
        from finetuning.methods.sft import run_sft

        sft_config = SFTConfig.from_yaml_file(args.config)
        options.input_uris = {loc: uri for loc, (uri, _) in remote_inputs(sft_config).items()}
        sft = run_sft(fetch_inputs(sft_config, settings, events), options, events)
        outcome = sft.outcome
        if sft.new_basemodel is not None:
            artifacts["new_basemodel"] = sft.new_basemodel
        metrics.update(train_examples=sft.train_examples, eval_examples=sft.eval_examples)
    elif args.command == "grpo":
        from finetuning.config import GRPOConfig
        from finetuning.methods.grpo import run_grpo

        grpo_config = GRPOConfig.from_yaml_file(args.config)
        options.input_uris = {loc: uri for loc, (uri, _) in remote_inputs(grpo_config).items()}
        grpo = run_grpo(fetch_inputs(grpo_config, settings, events), options, events)
        outcome = grpo.outcome
        metrics.update(train_examples=grpo.train_examples, eval_examples=grpo.eval_examples)
        artifacts["generation"] = grpo.generation
    else:
        from finetuning.config import DPOConfig
        from finetuning.methods.dpo import run_dpo

        dpo_config = DPOConfig.from_yaml_file(args.config)
        options.input_uris = {loc: uri for loc, (uri, _) in remote_inputs(dpo_config).items()}
        dpo = run_dpo(fetch_inputs(dpo_config, settings, events), options, events)
        outcome = dpo.outcome
        metrics.update(train_examples=dpo.train_examples, eval_examples=dpo.eval_examples)
        artifacts["reference_model"] = dpo.reference_model
    artifacts["final_checkpoint"] = str(outcome.final_checkpoint)
    if outcome.mlflow_run_id is not None:
        artifacts["mlflow_run_id"] = outcome.mlflow_run_id
    metrics.update(global_step=outcome.global_step, train_loss=outcome.train_loss, **outcome.eval_metrics)
    logger.info("done: %s", outcome.final_checkpoint)
    return {"artifacts": artifacts, "metrics": metrics}


if __name__ == "__main__":
    sys.exit(main())
