from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.grpo_training_args_debug_option import GRPOTrainingArgsDebugOption, check_grpo_training_args_debug_option
from ..models.grpo_training_args_eval_strategy import (
    GRPOTrainingArgsEvalStrategy,
    check_grpo_training_args_eval_strategy,
)
from ..models.grpo_training_args_hub_strategy import GRPOTrainingArgsHubStrategy, check_grpo_training_args_hub_strategy
from ..models.grpo_training_args_logging_strategy import (
    GRPOTrainingArgsLoggingStrategy,
    check_grpo_training_args_logging_strategy,
)
from ..models.grpo_training_args_lr_scheduler_type import (
    GRPOTrainingArgsLrSchedulerType,
    check_grpo_training_args_lr_scheduler_type,
)
from ..models.grpo_training_args_optim import GRPOTrainingArgsOptim, check_grpo_training_args_optim
from ..models.grpo_training_args_save_strategy import (
    GRPOTrainingArgsSaveStrategy,
    check_grpo_training_args_save_strategy,
)
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.grpo_training_args_accelerator_config import GRPOTrainingArgsAcceleratorConfig
    from ..models.grpo_training_args_activation_checkpointing_kwargs import (
        GRPOTrainingArgsActivationCheckpointingKwargs,
    )
    from ..models.grpo_training_args_deepspeed import GRPOTrainingArgsDeepspeed
    from ..models.grpo_training_args_fsdp_config import GRPOTrainingArgsFsdpConfig
    from ..models.grpo_training_args_gradient_checkpointing_kwargs import GRPOTrainingArgsGradientCheckpointingKwargs
    from ..models.grpo_training_args_liger_kernel_config import GRPOTrainingArgsLigerKernelConfig
    from ..models.grpo_training_args_lr_scheduler_kwargs import GRPOTrainingArgsLrSchedulerKwargs
    from ..models.grpo_training_args_parallelism_config import GRPOTrainingArgsParallelismConfig


T = TypeVar("T", bound="GRPOTrainingArgs")


@_attrs_define
class GRPOTrainingArgs:
    """``transformers.TrainingArguments`` for GRPO, with TRL's GRPO defaults (learning rate 1e-6, a log every 10
    steps, bf16 where the device has it). Batch sizes count completions: ``batchsize_conf.total_train_batch_size``
    completions per optimizer step, i.e. total / ``grpo_args.num_generations`` prompts.

        Attributes:
            accelerator_config (GRPOTrainingArgsAcceleratorConfig | None | str | Unset): Configuration for the internal
                Accelerate integration. Can be a path to a JSON config file or a dict.
            activation_checkpointing (bool | None | Unset): Enable activation checkpointing to trade compute for memory.
                Reduces memory at the cost of ~20%% slower training.
            activation_checkpointing_kwargs (GRPOTrainingArgsActivationCheckpointingKwargs | None | str | Unset): Keyword
                arguments passed to `activation_checkpointing_enable()`. `every_n_layers` checkpoints only every n-th decoder
                layer instead of all of them; `1` is the usual all-or-nothing behavior, and larger values give some memory back
                to speed. `offload` holds the saved activations in pinned host memory, which frees device memory and makes the
                step slower. Any other key is forwarded to `torch.utils.checkpoint.checkpoint`.
            adam_beta1 (float | Unset): The exponential decay rate for the first moment estimates (momentum) in Adam-based
                optimizers. Default: 0.9.
            adam_beta2 (float | Unset): The exponential decay rate for the second moment estimates (variance) in Adam-based
                optimizers. Default: 0.999.
            adam_epsilon (float | Unset): Epsilon value for numerical stability in Adam-based optimizers. Default: 1e-08.
            auto_find_batch_size (bool | Unset): Whether to find a training batch size that will fit into memory
                automatically through exponential decay, avoiding CUDA Out-of-Memory errors. The evaluation batch size is not
                adjusted. Default: False.
            average_tokens_across_devices (bool | Unset): Whether or not to average tokens across devices. If enabled, will
                use all_reduce to synchronize num_tokens_in_batch for precise loss calculation. Reference:
                https://github.com/huggingface/transformers/issues/34242 Default: True.
            batch_eval_metrics (bool | Unset): Break eval metrics calculation into batches to save memory. Default: False.
            bf16 (bool | None | Unset): bf16 mixed precision; null: on where the device supports it (a recent GPU), off
                elsewhere.
            bf16_full_eval (bool | Unset): Use full BF16 precision for evaluation (not just mixed precision). Faster and
                saves memory. Default: False.
            data_seed (int | None | Unset): Random seed to be used with data samplers. If not set, uses the same seed as
                `seed`.
            dataloader_drop_last (bool | Unset): Drop the last incomplete batch if it is not divisible by the batch size.
                Default: False.
            dataloader_in_order (bool | Unset): If True (default), the data loader yields batches in the order workers were
                dispatched. Set to False to yield batches as soon as they are ready, reducing tail latency for IterableDataset
                streaming workloads. Requires PyTorch >= 2.6. Default: True.
            dataloader_multiprocessing_context (None | str | Unset): The multiprocessing start method to use for data
                loading workers ('fork', 'spawn', or 'forkserver'). Defaults to PyTorch's default, except on MPS with
                dataloader_num_workers > 1, where it defaults to 'fork'. Use 'spawn' when streaming from sources whose objects
                are not fork-safe (e.g. HDFS via pyarrow). Under 'spawn', any custom collate_fn / dataset code must be
                importable at module level (no lambdas/closures).
            dataloader_num_workers (int | Unset): Number of subprocesses to use for data loading (PyTorch only). 0 means
                that the data will be loaded in the main process. Default: 0.
            dataloader_persistent_workers (bool | Unset): If True, the data loader will not shut down the worker processes
                after a dataset has been consumed once. This allows to maintain the workers Dataset instances alive. Can
                potentially speed up training, but will increase RAM usage. Default: False.
            dataloader_pin_memory (bool | Unset): Whether or not to pin memory for DataLoader. Default: True.
            dataloader_prefetch_factor (int | None | Unset): Number of batches loaded in advance by each worker. 2 means
                there will be a total of 2 * num_workers batches prefetched across all workers.
            ddp_backend (None | str | Unset): The backend to use for distributed training. Must be one of 'nccl', 'mpi',
                'xccl', 'gloo', 'hccl'.
            ddp_broadcast_buffers (bool | None | Unset): When using distributed training, the value of the flag
                `broadcast_buffers` passed to `DistributedDataParallel`.
            ddp_bucket_cap_mb (int | None | Unset): When using distributed training, the value of the flag `bucket_cap_mb`
                passed to `DistributedDataParallel`.
            ddp_find_unused_parameters (bool | None | Unset): When using distributed training, the value of the flag
                `find_unused_parameters` passed to `DistributedDataParallel`.
            ddp_static_graph (bool | None | Unset): When using distributed training, the value of the flag `static_graph`
                passed to `DistributedDataParallel`.
            ddp_timeout (int | Unset): The timeout for `torch.distributed.init_process_group` calls (in seconds). Default:
                1800.
            debug (list[GRPOTrainingArgsDebugOption] | str | Unset): Enable one or more debug features. Options:
                'underflow_overflow' (detect overflow in model I/O), 'tpu_metrics_debug' (print TPU metrics). Default: ''.
            deepspeed (GRPOTrainingArgsDeepspeed | None | str | Unset): Enable DeepSpeed integration. Value is a path to a
                JSON config file or a dict.
            disable_tqdm (bool | None | Unset): Disable tqdm progress bars. Defaults to True if log_level is warning or
                lower.
            do_eval (bool | Unset): Whether to run evaluation. Not directly used by Trainer; intended for
                training/evaluation scripts. Default: False.
            do_predict (bool | Unset): Whether to run predictions on the test set. Not directly used by Trainer; intended
                for training/evaluation scripts. Default: False.
            do_train (bool | Unset): Whether to run training. Not directly used by Trainer; intended for training/evaluation
                scripts. Default: False.
            enable_jit_checkpoint (bool | Unset): Enable JIT checkpointing on SIGTERM signal for graceful termination on
                preemptible workloads. Configure your orchestrator's graceful shutdown period accordingly. Default: False.
            eval_accumulation_steps (int | None | Unset): Number of predictions steps to accumulate the output tensors for,
                before moving the results to the CPU. If unset, predictions are accumulated on the accelerator before being
                moved to the CPU.
            eval_delay (float | Unset): Number of epochs or steps to wait for before the first evaluation can be performed,
                depending on the eval_strategy. Default: 0.0.
            eval_do_concat_batches (bool | Unset): Whether to recursively concat inputs/losses/labels/predictions across
                batches. If `False`, will instead store them as lists, with each batch kept separate. Default: True.
            eval_on_start (bool | Unset): Whether to run through the entire `evaluation` step at the very beginning of
                training as a sanity check. Default: False.
            eval_steps (float | None | Unset): Number of update steps between evaluations if `eval_strategy='steps'`.
                Defaults to `logging_steps` if not set. Should be an integer or a float in range `[0,1)`. If smaller than 1,
                will be interpreted as ratio of total training steps.
            eval_strategy (GRPOTrainingArgsEvalStrategy | Unset): When to run evaluation. Options: 'no', 'steps', 'epoch'.
                Default: 'no'.
            eval_use_gather_object (bool | Unset): Whether to run recursively gather object in a nested
                list/tuple/dictionary of objects from all devices. Default: False.
            fp16 (bool | Unset): Enable float16 (FP16) mixed precision training. Consider using BF16 instead if your
                hardware supports it. Default: False.
            fp16_full_eval (bool | Unset): Use full FP16 precision for evaluation (not just mixed precision). Faster and
                saves memory. Default: False.
            fsdp (None | str | Unset): Enable PyTorch Fully Sharded Data Parallel (FSDP) for distributed training. Pass
                `--fsdp` (or `fsdp=True`) to turn FSDP on.
            fsdp_config (GRPOTrainingArgsFsdpConfig | None | str | Unset): Tuning for FSDP (used only when `fsdp` is
                enabled). Either a path to a JSON config file (e.g., `fsdp_config.json`) or an already loaded dict.
            full_determinism (bool | Unset): Whether to call enable_full_determinism instead of set_seed for reproducibility
                in distributed training. Important: this will negatively impact the performance, so only use it for debugging.
                Default: False.
            gradient_checkpointing (bool | None | Unset): Deprecated alias of `activation_checkpointing`, will be removed in
                v6.
            gradient_checkpointing_kwargs (GRPOTrainingArgsGradientCheckpointingKwargs | None | str | Unset): Deprecated
                alias of `activation_checkpointing_kwargs`, will be removed in v6.
            greater_is_better (bool | None | Unset): Whether higher metric values are better. Defaults based on
                `metric_for_best_model`.
            hub_always_push (bool | Unset): Unless `True`, the Trainer will skip pushes if the previous one wasn't finished
                yet. Default: False.
            hub_model_id (None | str | Unset): The name of the repository to keep in sync with the local `output_dir`.
            hub_private_repo (bool | None | Unset): Whether to make the repo private. If `None` (default), the repo will be
                public unless the organization's default is private. This value is ignored if the repo already exists. If
                reporting to Trackio Spaces created or synced (including on Hub push when `trackio_space_id` is None) use the
                same logic for whether the Space is private.
            hub_revision (None | str | Unset): The revision to use when pushing to the Hub. Can be a branch name, a tag, or
                a commit hash.
            hub_strategy (GRPOTrainingArgsHubStrategy | Unset): Defines what and when to push to Hub. Options: 'end',
                'every_save', 'checkpoint', 'all_checkpoints'. Default: 'every_save'.
            hub_token (None | str | Unset): The token to use to push the model to the Hub. Defaults to the token from `hf
                auth login`.
            ignore_data_skip (bool | Unset): When resuming training, skip fast-forwarding through the dataset to reach the
                previous state. If True, training starts from the beginning of the dataset. Default: False.
            include_for_metrics (list[str] | Unset): Include additional data in the `compute_metrics` function. Options:
                'inputs', 'loss'.
            include_num_input_tokens_seen (bool | str | Unset): Whether to track the number of input tokens seen. Must be
                one of [`all`, `non_padding`, `no`] or a boolean value which map to `all` or `no` Default: 'no'.
            label_names (list[str] | None | Unset): The list of keys in your dictionary of inputs that correspond to the
                labels.
            label_smoothing_factor (float | Unset): Label smoothing factor to prevent overconfidence. Zero means no
                smoothing. Default: 0.0.
            learning_rate (float | Unset): The initial learning rate for AdamW. Default: 1e-06.
            length_column_name (str | Unset): Column name for precomputed lengths. Ignored unless `train_sampling_strategy`
                is 'group_by_length' or 'batch_rebalance'. Default: 'length'.
            liger_kernel_config (GRPOTrainingArgsLigerKernelConfig | None | Unset): Configuration for Liger Kernel. Passed
                as kwargs to `_apply_liger_kernel_to_instance()`. If None, uses default configuration.
            load_best_model_at_end (bool | Unset): Load the best checkpoint at the end of training. Requires `eval_strategy`
                to be set. Default: False.
            log_level (str | Unset): Logging level for the main process. Options: 'debug', 'info', 'warning', 'error',
                'critical', 'passive'. Default: 'passive'.
            log_level_replica (str | Unset): Logging level for replica processes in distributed training. Same options as
                `log_level`. Default: 'warning'.
            log_on_each_node (bool | Unset): When doing a multinode distributed training, whether to log once per node or
                just once on the main node. Default: True.
            logging_first_step (bool | Unset): Whether to log the first `global_step` or not. Default: False.
            logging_nan_inf_filter (bool | Unset): Filter out NaN and Inf training and evaluation losses when logging. Does
                not affect gradient computation, only logging. Default: True.
            logging_steps (float | Unset): Log every X update steps (a whole number, or a fraction of the training steps
                below 1). Each log is a metrics event with the rewards, and a samples event with a few graded completions.
                Default: 10.0.
            logging_strategy (GRPOTrainingArgsLoggingStrategy | Unset): The logging strategy to adopt during training.
                Options: 'no', 'epoch', 'steps'. Default: 'steps'.
            lr_scheduler_kwargs (GRPOTrainingArgsLrSchedulerKwargs | None | str | Unset): The extra arguments for the
                lr_scheduler. See the documentation of each scheduler for possible values.
            lr_scheduler_type (GRPOTrainingArgsLrSchedulerType | Unset): The learning rate scheduler type to use. See
                `SchedulerType` for all possible values. Default: 'linear'.
            max_grad_norm (float | Unset): Maximum gradient norm for gradient clipping. Set to 0 to disable. Default: 1.0.
            max_steps (int | Unset): Overrides `num_train_epochs`. If set to a positive number, the total number of training
                steps to perform. Must be set when the training dataset does not implement `__len__` (e.g. a streaming dataset).
                Default: -1.
            metric_for_best_model (None | str | Unset): Metric to use for comparing models when
                `load_best_model_at_end=True`. Defaults to 'loss'.
            neftune_noise_alpha (float | None | Unset): If not None, activates NEFTune noise embeddings. Can drastically
                improve performance for instruction fine-tuning. Typical range: [5.0, 15.0].
            num_train_epochs (float | Unset): Total number of training epochs to perform. Default: 3.0.
            optim (GRPOTrainingArgsOptim | Unset): The optimizer to use. See `OptimizerNames` for the complete list.
                Default: 'adamw_torch_fused'.
            optim_args (None | str | Unset): Optional arguments supplied to optimizers such as AnyPrecisionAdamW, AdEMAMix,
                and GaLore.
            optim_target_modules (list[str] | None | str | Unset): The target modules to optimize. Currently used for the
                GaLore and APOLLO algorithms.
            output_dir (None | str | Unset): The output directory where the model predictions and checkpoints will be
                written.
            parallelism_config (GRPOTrainingArgsParallelismConfig | None | Unset): Parallelism configuration for the
                training run. Requires Accelerate `1.10.1`.
            prediction_loss_only (bool | Unset): When performing evaluation and generating predictions, only returns the
                loss. Default: False.
            project (str | Unset): The name of the project to use for logging. Currently, only used by Trackio. Default:
                'huggingface'.
            push_to_hub (bool | Unset): Whether or not to push the model to the Hub every time the model is saved. Default:
                False.
            remove_unused_columns (bool | Unset): Must stay false: the graders read the data rows' reference fields.
                Default: False.
            report_to (list[str] | None | str | Unset): The list of integrations to report the results and logs to. Use
                'all' for all installed integrations, 'none' for no integrations. Default: 'none'.
            restore_callback_states_from_checkpoint (bool | Unset): Whether to restore the callback states from the
                checkpoint. If `True`, will override callbacks passed to the `Trainer` if they exist in the checkpoint. Default:
                False.
            run_name (None | str | Unset): An optional descriptor for the run. Notably used for trackio, wandb, mlflow comet
                and swanlab logging.
            save_on_each_node (bool | Unset): When doing multi-node distributed training, whether to save models and
                checkpoints on each node, or only on the main one Default: False.
            save_only_model (bool | Unset): Save only model weights, not optimizer/scheduler/RNG state. Prevents resuming
                training from checkpoint. Default: False.
            save_steps (float | Unset): Save checkpoint every X updates steps. Should be an integer or a float in range
                `[0,1)`. If smaller than 1, will be interpreted as ratio of total training steps. Default: 500.0.
            save_strategy (GRPOTrainingArgsSaveStrategy | Unset): The checkpoint save strategy to adopt during training.
                Options: 'no', 'epoch', 'steps', 'best'. Default: 'steps'.
            save_total_limit (int | None | Unset): Maximum number of checkpoints to keep. Deletes older checkpoints in
                `output_dir`. The best checkpoint is always retained when `load_best_model_at_end=True`.
            seed (int | Unset): Random seed that will be set at the beginning of training. Default: 42.
            skip_memory_metrics (bool | Unset): Whether to skip adding memory profiler reports to metrics. Skipped by
                default because it slows down training. Default: True.
            tf32 (bool | None | Unset): Enable TF32 mode on Ampere and newer GPUs. Provides up to 8x speedup with negligible
                accuracy loss.
            torch_compile (bool | Unset): Compile the model using `torch.compile()` for faster training. Default: False.
            torch_compile_backend (None | str | Unset): Backend for `torch.compile()`. If set, automatically enables
                `torch_compile`.
            torch_compile_mode (None | str | Unset): Compilation mode for `torch.compile()`. If set, automatically enables
                `torch_compile`.
            torch_empty_cache_steps (int | None | Unset): Number of steps to wait before calling
                `torch.<device>.empty_cache()`. Helps avoid CUDA OOM at a cost of ~10%% slower performance. If None, cache will
                not be emptied.
            trackio_bucket_id (None | str | Unset): Optional HF Bucket id when using a Trackio Space; if unset, Trackio
                picks a default.
            trackio_space_id (None | str | Unset): Hugging Face Space id for live Gradio-based Trackio logging (read/write
                Bucket access). Use 'username/reponame', 'orgname/reponame', or 'reponame' (current user's namespace). None: log
                only locally, no Space. Prefer trackio_static_space_id for stable post-training dashboard links. Public unless
                hub_private_repo=True or org default.
            trackio_static_space_id (bool | None | str | Unset): Static read-only Trackio Space over the Bucket (stable
                model-card links). False: no static sync on Hub push and no freeze after training. None/str: allow static Space;
                for local-only logging, Hub push runs sync(static); after training, freeze runs only if trackio_space_id was set
                (Gradio Space). str sets explicit static Space id. Public unless hub_private_repo=True or org default.
            train_sampling_strategy (str | Unset): Sampler for training: 'random' (default), 'sequential',
                'group_by_length', or 'batch_rebalance'. Default: 'random'.
            use_cache (bool | Unset): Whether or not to use cache for the model For training, this is usually not needed
                apart from some PEFT methods that uses `cache`. Default: False.
            use_cpu (bool | Unset): Whether or not to use cpu. If set to False, we will use the available torch
                device/backend. Default: False.
            use_liger_kernel (bool | Unset): Enable Liger Kernel optimizations. Increases throughput by ~20%% and reduces
                memory by ~60%%. Default: False.
            warmup_steps (float | Unset): Number of steps for a linear warmup from 0 to `learning_rate`. Can be an integer
                (exact steps) or a float in [0, 1) (ratio of total steps). Default: 0.0.
            weight_decay (float | Unset): Weight decay coefficient applied by the optimizer. Automatically excluded from
                bias and LayerNorm parameters. Default: 0.0.
    """

    accelerator_config: GRPOTrainingArgsAcceleratorConfig | None | str | Unset = UNSET
    activation_checkpointing: bool | None | Unset = UNSET
    activation_checkpointing_kwargs: GRPOTrainingArgsActivationCheckpointingKwargs | None | str | Unset = UNSET
    adam_beta1: float | Unset = 0.9
    adam_beta2: float | Unset = 0.999
    adam_epsilon: float | Unset = 1e-08
    auto_find_batch_size: bool | Unset = False
    average_tokens_across_devices: bool | Unset = True
    batch_eval_metrics: bool | Unset = False
    bf16: bool | None | Unset = UNSET
    bf16_full_eval: bool | Unset = False
    data_seed: int | None | Unset = UNSET
    dataloader_drop_last: bool | Unset = False
    dataloader_in_order: bool | Unset = True
    dataloader_multiprocessing_context: None | str | Unset = UNSET
    dataloader_num_workers: int | Unset = 0
    dataloader_persistent_workers: bool | Unset = False
    dataloader_pin_memory: bool | Unset = True
    dataloader_prefetch_factor: int | None | Unset = UNSET
    ddp_backend: None | str | Unset = UNSET
    ddp_broadcast_buffers: bool | None | Unset = UNSET
    ddp_bucket_cap_mb: int | None | Unset = UNSET
    ddp_find_unused_parameters: bool | None | Unset = UNSET
    ddp_static_graph: bool | None | Unset = UNSET
    ddp_timeout: int | Unset = 1800
    debug: list[GRPOTrainingArgsDebugOption] | str | Unset = ""
    deepspeed: GRPOTrainingArgsDeepspeed | None | str | Unset = UNSET
    disable_tqdm: bool | None | Unset = UNSET
    do_eval: bool | Unset = False
    do_predict: bool | Unset = False
    do_train: bool | Unset = False
    enable_jit_checkpoint: bool | Unset = False
    eval_accumulation_steps: int | None | Unset = UNSET
    eval_delay: float | Unset = 0.0
    eval_do_concat_batches: bool | Unset = True
    eval_on_start: bool | Unset = False
    eval_steps: float | None | Unset = UNSET
    eval_strategy: GRPOTrainingArgsEvalStrategy | Unset = "no"
    eval_use_gather_object: bool | Unset = False
    fp16: bool | Unset = False
    fp16_full_eval: bool | Unset = False
    fsdp: None | str | Unset = UNSET
    fsdp_config: GRPOTrainingArgsFsdpConfig | None | str | Unset = UNSET
    full_determinism: bool | Unset = False
    gradient_checkpointing: bool | None | Unset = UNSET
    gradient_checkpointing_kwargs: GRPOTrainingArgsGradientCheckpointingKwargs | None | str | Unset = UNSET
    greater_is_better: bool | None | Unset = UNSET
    hub_always_push: bool | Unset = False
    hub_model_id: None | str | Unset = UNSET
    hub_private_repo: bool | None | Unset = UNSET
    hub_revision: None | str | Unset = UNSET
    hub_strategy: GRPOTrainingArgsHubStrategy | Unset = "every_save"
    hub_token: None | str | Unset = UNSET
    ignore_data_skip: bool | Unset = False
    include_for_metrics: list[str] | Unset = UNSET
    include_num_input_tokens_seen: bool | str | Unset = "no"
    label_names: list[str] | None | Unset = UNSET
    label_smoothing_factor: float | Unset = 0.0
    learning_rate: float | Unset = 1e-06
    length_column_name: str | Unset = "length"
    liger_kernel_config: GRPOTrainingArgsLigerKernelConfig | None | Unset = UNSET
    load_best_model_at_end: bool | Unset = False
    log_level: str | Unset = "passive"
    log_level_replica: str | Unset = "warning"
    log_on_each_node: bool | Unset = True
    logging_first_step: bool | Unset = False
    logging_nan_inf_filter: bool | Unset = True
    logging_steps: float | Unset = 10.0
    logging_strategy: GRPOTrainingArgsLoggingStrategy | Unset = "steps"
    lr_scheduler_kwargs: GRPOTrainingArgsLrSchedulerKwargs | None | str | Unset = UNSET
    lr_scheduler_type: GRPOTrainingArgsLrSchedulerType | Unset = "linear"
    max_grad_norm: float | Unset = 1.0
    max_steps: int | Unset = -1
    metric_for_best_model: None | str | Unset = UNSET
    neftune_noise_alpha: float | None | Unset = UNSET
    num_train_epochs: float | Unset = 3.0
    optim: GRPOTrainingArgsOptim | Unset = "adamw_torch_fused"
    optim_args: None | str | Unset = UNSET
    optim_target_modules: list[str] | None | str | Unset = UNSET
    output_dir: None | str | Unset = UNSET
    parallelism_config: GRPOTrainingArgsParallelismConfig | None | Unset = UNSET
    prediction_loss_only: bool | Unset = False
    project: str | Unset = "huggingface"
    push_to_hub: bool | Unset = False
    remove_unused_columns: bool | Unset = False
    report_to: list[str] | None | str | Unset = "none"
    restore_callback_states_from_checkpoint: bool | Unset = False
    run_name: None | str | Unset = UNSET
    save_on_each_node: bool | Unset = False
    save_only_model: bool | Unset = False
    save_steps: float | Unset = 500.0
    save_strategy: GRPOTrainingArgsSaveStrategy | Unset = "steps"
    save_total_limit: int | None | Unset = UNSET
    seed: int | Unset = 42
    skip_memory_metrics: bool | Unset = True
    tf32: bool | None | Unset = UNSET
    torch_compile: bool | Unset = False
    torch_compile_backend: None | str | Unset = UNSET
    torch_compile_mode: None | str | Unset = UNSET
    torch_empty_cache_steps: int | None | Unset = UNSET
    trackio_bucket_id: None | str | Unset = UNSET
    trackio_space_id: None | str | Unset = UNSET
    trackio_static_space_id: bool | None | str | Unset = UNSET
    train_sampling_strategy: str | Unset = "random"
    use_cache: bool | Unset = False
    use_cpu: bool | Unset = False
    use_liger_kernel: bool | Unset = False
    warmup_steps: float | Unset = 0.0
    weight_decay: float | Unset = 0.0

    def to_dict(self) -> dict[str, Any]:
        from ..models.grpo_training_args_accelerator_config import GRPOTrainingArgsAcceleratorConfig  # noqa: PLC0415
        from ..models.grpo_training_args_activation_checkpointing_kwargs import (
            GRPOTrainingArgsActivationCheckpointingKwargs,  # noqa: PLC0415
        )
        from ..models.grpo_training_args_deepspeed import GRPOTrainingArgsDeepspeed  # noqa: PLC0415
        from ..models.grpo_training_args_fsdp_config import GRPOTrainingArgsFsdpConfig  # noqa: PLC0415
        from ..models.grpo_training_args_gradient_checkpointing_kwargs import (
            GRPOTrainingArgsGradientCheckpointingKwargs,  # noqa: PLC0415
        )
        from ..models.grpo_training_args_liger_kernel_config import GRPOTrainingArgsLigerKernelConfig  # noqa: PLC0415
        from ..models.grpo_training_args_lr_scheduler_kwargs import GRPOTrainingArgsLrSchedulerKwargs  # noqa: PLC0415
        from ..models.grpo_training_args_parallelism_config import GRPOTrainingArgsParallelismConfig  # noqa: PLC0415

        accelerator_config: dict[str, Any] | None | str | Unset
        if isinstance(self.accelerator_config, Unset):
            accelerator_config = UNSET
        elif isinstance(self.accelerator_config, GRPOTrainingArgsAcceleratorConfig):
            accelerator_config = self.accelerator_config.to_dict()
        else:
            accelerator_config = self.accelerator_config

        activation_checkpointing: bool | None | Unset
        if isinstance(self.activation_checkpointing, Unset):
            activation_checkpointing = UNSET
        else:
            activation_checkpointing = self.activation_checkpointing

        activation_checkpointing_kwargs: dict[str, Any] | None | str | Unset
        if isinstance(self.activation_checkpointing_kwargs, Unset):
            activation_checkpointing_kwargs = UNSET
        elif isinstance(self.activation_checkpointing_kwargs, GRPOTrainingArgsActivationCheckpointingKwargs):
            activation_checkpointing_kwargs = self.activation_checkpointing_kwargs.to_dict()
        else:
            activation_checkpointing_kwargs = self.activation_checkpointing_kwargs

        adam_beta1 = self.adam_beta1

        adam_beta2 = self.adam_beta2

        adam_epsilon = self.adam_epsilon

        auto_find_batch_size = self.auto_find_batch_size

        average_tokens_across_devices = self.average_tokens_across_devices

        batch_eval_metrics = self.batch_eval_metrics

        bf16: bool | None | Unset
        if isinstance(self.bf16, Unset):
            bf16 = UNSET
        else:
            bf16 = self.bf16

        bf16_full_eval = self.bf16_full_eval

        data_seed: int | None | Unset
        if isinstance(self.data_seed, Unset):
            data_seed = UNSET
        else:
            data_seed = self.data_seed

        dataloader_drop_last = self.dataloader_drop_last

        dataloader_in_order = self.dataloader_in_order

        dataloader_multiprocessing_context: None | str | Unset
        if isinstance(self.dataloader_multiprocessing_context, Unset):
            dataloader_multiprocessing_context = UNSET
        else:
            dataloader_multiprocessing_context = self.dataloader_multiprocessing_context

        dataloader_num_workers = self.dataloader_num_workers

        dataloader_persistent_workers = self.dataloader_persistent_workers

        dataloader_pin_memory = self.dataloader_pin_memory

        dataloader_prefetch_factor: int | None | Unset
        if isinstance(self.dataloader_prefetch_factor, Unset):
            dataloader_prefetch_factor = UNSET
        else:
            dataloader_prefetch_factor = self.dataloader_prefetch_factor

        ddp_backend: None | str | Unset
        if isinstance(self.ddp_backend, Unset):
            ddp_backend = UNSET
        else:
            ddp_backend = self.ddp_backend

        ddp_broadcast_buffers: bool | None | Unset
        if isinstance(self.ddp_broadcast_buffers, Unset):
            ddp_broadcast_buffers = UNSET
        else:
            ddp_broadcast_buffers = self.ddp_broadcast_buffers

        ddp_bucket_cap_mb: int | None | Unset
        if isinstance(self.ddp_bucket_cap_mb, Unset):
            ddp_bucket_cap_mb = UNSET
        else:
            ddp_bucket_cap_mb = self.ddp_bucket_cap_mb

        ddp_find_unused_parameters: bool | None | Unset
        if isinstance(self.ddp_find_unused_parameters, Unset):
            ddp_find_unused_parameters = UNSET
        else:
            ddp_find_unused_parameters = self.ddp_find_unused_parameters

        ddp_static_graph: bool | None | Unset
        if isinstance(self.ddp_static_graph, Unset):
            ddp_static_graph = UNSET
        else:
            ddp_static_graph = self.ddp_static_graph

        ddp_timeout = self.ddp_timeout

        debug: list[str] | str | Unset
        if isinstance(self.debug, Unset):
            debug = UNSET
        elif isinstance(self.debug, list):
            debug = []
            for debug_type_1_item_data in self.debug:
                debug_type_1_item: str = debug_type_1_item_data
                debug.append(debug_type_1_item)

        else:
            debug = self.debug

        deepspeed: dict[str, Any] | None | str | Unset
        if isinstance(self.deepspeed, Unset):
            deepspeed = UNSET
        elif isinstance(self.deepspeed, GRPOTrainingArgsDeepspeed):
            deepspeed = self.deepspeed.to_dict()
        else:
            deepspeed = self.deepspeed

        disable_tqdm: bool | None | Unset
        if isinstance(self.disable_tqdm, Unset):
            disable_tqdm = UNSET
        else:
            disable_tqdm = self.disable_tqdm

        do_eval = self.do_eval

        do_predict = self.do_predict

        do_train = self.do_train

        enable_jit_checkpoint = self.enable_jit_checkpoint

        eval_accumulation_steps: int | None | Unset
        if isinstance(self.eval_accumulation_steps, Unset):
            eval_accumulation_steps = UNSET
        else:
            eval_accumulation_steps = self.eval_accumulation_steps

        eval_delay = self.eval_delay

        eval_do_concat_batches = self.eval_do_concat_batches

        eval_on_start = self.eval_on_start

        eval_steps: float | None | Unset
        if isinstance(self.eval_steps, Unset):
            eval_steps = UNSET
        else:
            eval_steps = self.eval_steps

        eval_strategy: str | Unset = UNSET
        if not isinstance(self.eval_strategy, Unset):
            eval_strategy = self.eval_strategy

        eval_use_gather_object = self.eval_use_gather_object

        fp16 = self.fp16

        fp16_full_eval = self.fp16_full_eval

        fsdp: None | str | Unset
        if isinstance(self.fsdp, Unset):
            fsdp = UNSET
        else:
            fsdp = self.fsdp

        fsdp_config: dict[str, Any] | None | str | Unset
        if isinstance(self.fsdp_config, Unset):
            fsdp_config = UNSET
        elif isinstance(self.fsdp_config, GRPOTrainingArgsFsdpConfig):
            fsdp_config = self.fsdp_config.to_dict()
        else:
            fsdp_config = self.fsdp_config

        full_determinism = self.full_determinism

        gradient_checkpointing: bool | None | Unset
        if isinstance(self.gradient_checkpointing, Unset):
            gradient_checkpointing = UNSET
        else:
            gradient_checkpointing = self.gradient_checkpointing

        gradient_checkpointing_kwargs: dict[str, Any] | None | str | Unset
        if isinstance(self.gradient_checkpointing_kwargs, Unset):
            gradient_checkpointing_kwargs = UNSET
        elif isinstance(self.gradient_checkpointing_kwargs, GRPOTrainingArgsGradientCheckpointingKwargs):
            gradient_checkpointing_kwargs = self.gradient_checkpointing_kwargs.to_dict()
        else:
            gradient_checkpointing_kwargs = self.gradient_checkpointing_kwargs

        greater_is_better: bool | None | Unset
        if isinstance(self.greater_is_better, Unset):
            greater_is_better = UNSET
        else:
            greater_is_better = self.greater_is_better

        hub_always_push = self.hub_always_push

        hub_model_id: None | str | Unset
        if isinstance(self.hub_model_id, Unset):
            hub_model_id = UNSET
        else:
            hub_model_id = self.hub_model_id

        hub_private_repo: bool | None | Unset
        if isinstance(self.hub_private_repo, Unset):
            hub_private_repo = UNSET
        else:
            hub_private_repo = self.hub_private_repo

        hub_revision: None | str | Unset
        if isinstance(self.hub_revision, Unset):
            hub_revision = UNSET
        else:
            hub_revision = self.hub_revision

        hub_strategy: str | Unset = UNSET
        if not isinstance(self.hub_strategy, Unset):
            hub_strategy = self.hub_strategy

        hub_token: None | str | Unset
        if isinstance(self.hub_token, Unset):
            hub_token = UNSET
        else:
            hub_token = self.hub_token

        ignore_data_skip = self.ignore_data_skip

        include_for_metrics: list[str] | Unset = UNSET
        if not isinstance(self.include_for_metrics, Unset):
            include_for_metrics = self.include_for_metrics

        include_num_input_tokens_seen: bool | str | Unset
        if isinstance(self.include_num_input_tokens_seen, Unset):
            include_num_input_tokens_seen = UNSET
        else:
            include_num_input_tokens_seen = self.include_num_input_tokens_seen

        label_names: list[str] | None | Unset
        if isinstance(self.label_names, Unset):
            label_names = UNSET
        elif isinstance(self.label_names, list):
            label_names = self.label_names

        else:
            label_names = self.label_names

        label_smoothing_factor = self.label_smoothing_factor

        learning_rate = self.learning_rate

        length_column_name = self.length_column_name

        liger_kernel_config: dict[str, Any] | None | Unset
        if isinstance(self.liger_kernel_config, Unset):
            liger_kernel_config = UNSET
        elif isinstance(self.liger_kernel_config, GRPOTrainingArgsLigerKernelConfig):
            liger_kernel_config = self.liger_kernel_config.to_dict()
        else:
            liger_kernel_config = self.liger_kernel_config

        load_best_model_at_end = self.load_best_model_at_end

        log_level = self.log_level

        log_level_replica = self.log_level_replica

        log_on_each_node = self.log_on_each_node

        logging_first_step = self.logging_first_step

        logging_nan_inf_filter = self.logging_nan_inf_filter

        logging_steps = self.logging_steps

        logging_strategy: str | Unset = UNSET
        if not isinstance(self.logging_strategy, Unset):
            logging_strategy = self.logging_strategy

        lr_scheduler_kwargs: dict[str, Any] | None | str | Unset
        if isinstance(self.lr_scheduler_kwargs, Unset):
            lr_scheduler_kwargs = UNSET
        elif isinstance(self.lr_scheduler_kwargs, GRPOTrainingArgsLrSchedulerKwargs):
            lr_scheduler_kwargs = self.lr_scheduler_kwargs.to_dict()
        else:
            lr_scheduler_kwargs = self.lr_scheduler_kwargs

        lr_scheduler_type: str | Unset = UNSET
        if not isinstance(self.lr_scheduler_type, Unset):
            lr_scheduler_type = self.lr_scheduler_type

        max_grad_norm = self.max_grad_norm

        max_steps = self.max_steps

        metric_for_best_model: None | str | Unset
        if isinstance(self.metric_for_best_model, Unset):
            metric_for_best_model = UNSET
        else:
            metric_for_best_model = self.metric_for_best_model

        neftune_noise_alpha: float | None | Unset
        if isinstance(self.neftune_noise_alpha, Unset):
            neftune_noise_alpha = UNSET
        else:
            neftune_noise_alpha = self.neftune_noise_alpha

        num_train_epochs = self.num_train_epochs

        optim: str | Unset = UNSET
        if not isinstance(self.optim, Unset):
            optim = self.optim

        optim_args: None | str | Unset
        if isinstance(self.optim_args, Unset):
            optim_args = UNSET
        else:
            optim_args = self.optim_args

        optim_target_modules: list[str] | None | str | Unset
        if isinstance(self.optim_target_modules, Unset):
            optim_target_modules = UNSET
        elif isinstance(self.optim_target_modules, list):
            optim_target_modules = self.optim_target_modules

        else:
            optim_target_modules = self.optim_target_modules

        output_dir: None | str | Unset
        if isinstance(self.output_dir, Unset):
            output_dir = UNSET
        else:
            output_dir = self.output_dir

        parallelism_config: dict[str, Any] | None | Unset
        if isinstance(self.parallelism_config, Unset):
            parallelism_config = UNSET
        elif isinstance(self.parallelism_config, GRPOTrainingArgsParallelismConfig):
            parallelism_config = self.parallelism_config.to_dict()
        else:
            parallelism_config = self.parallelism_config

        prediction_loss_only = self.prediction_loss_only

        project = self.project

        push_to_hub = self.push_to_hub

        remove_unused_columns = self.remove_unused_columns

        report_to: list[str] | None | str | Unset
        if isinstance(self.report_to, Unset):
            report_to = UNSET
        elif isinstance(self.report_to, list):
            report_to = self.report_to

        else:
            report_to = self.report_to

        restore_callback_states_from_checkpoint = self.restore_callback_states_from_checkpoint

        run_name: None | str | Unset
        if isinstance(self.run_name, Unset):
            run_name = UNSET
        else:
            run_name = self.run_name

        save_on_each_node = self.save_on_each_node

        save_only_model = self.save_only_model

        save_steps = self.save_steps

        save_strategy: str | Unset = UNSET
        if not isinstance(self.save_strategy, Unset):
            save_strategy = self.save_strategy

        save_total_limit: int | None | Unset
        if isinstance(self.save_total_limit, Unset):
            save_total_limit = UNSET
        else:
            save_total_limit = self.save_total_limit

        seed = self.seed

        skip_memory_metrics = self.skip_memory_metrics

        tf32: bool | None | Unset
        if isinstance(self.tf32, Unset):
            tf32 = UNSET
        else:
            tf32 = self.tf32

        torch_compile = self.torch_compile

        torch_compile_backend: None | str | Unset
        if isinstance(self.torch_compile_backend, Unset):
            torch_compile_backend = UNSET
        else:
            torch_compile_backend = self.torch_compile_backend

        torch_compile_mode: None | str | Unset
        if isinstance(self.torch_compile_mode, Unset):
            torch_compile_mode = UNSET
        else:
            torch_compile_mode = self.torch_compile_mode

        torch_empty_cache_steps: int | None | Unset
        if isinstance(self.torch_empty_cache_steps, Unset):
            torch_empty_cache_steps = UNSET
        else:
            torch_empty_cache_steps = self.torch_empty_cache_steps

        trackio_bucket_id: None | str | Unset
        if isinstance(self.trackio_bucket_id, Unset):
            trackio_bucket_id = UNSET
        else:
            trackio_bucket_id = self.trackio_bucket_id

        trackio_space_id: None | str | Unset
        if isinstance(self.trackio_space_id, Unset):
            trackio_space_id = UNSET
        else:
            trackio_space_id = self.trackio_space_id

        trackio_static_space_id: bool | None | str | Unset
        if isinstance(self.trackio_static_space_id, Unset):
            trackio_static_space_id = UNSET
        else:
            trackio_static_space_id = self.trackio_static_space_id

        train_sampling_strategy = self.train_sampling_strategy

        use_cache = self.use_cache

        use_cpu = self.use_cpu

        use_liger_kernel = self.use_liger_kernel

        warmup_steps = self.warmup_steps

        weight_decay = self.weight_decay

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if accelerator_config is not UNSET:
            field_dict["accelerator_config"] = accelerator_config
        if activation_checkpointing is not UNSET:
            field_dict["activation_checkpointing"] = activation_checkpointing
        if activation_checkpointing_kwargs is not UNSET:
            field_dict["activation_checkpointing_kwargs"] = activation_checkpointing_kwargs
        if adam_beta1 is not UNSET:
            field_dict["adam_beta1"] = adam_beta1
        if adam_beta2 is not UNSET:
            field_dict["adam_beta2"] = adam_beta2
        if adam_epsilon is not UNSET:
            field_dict["adam_epsilon"] = adam_epsilon
        if auto_find_batch_size is not UNSET:
            field_dict["auto_find_batch_size"] = auto_find_batch_size
        if average_tokens_across_devices is not UNSET:
            field_dict["average_tokens_across_devices"] = average_tokens_across_devices
        if batch_eval_metrics is not UNSET:
            field_dict["batch_eval_metrics"] = batch_eval_metrics
        if bf16 is not UNSET:
            field_dict["bf16"] = bf16
        if bf16_full_eval is not UNSET:
            field_dict["bf16_full_eval"] = bf16_full_eval
        if data_seed is not UNSET:
            field_dict["data_seed"] = data_seed
        if dataloader_drop_last is not UNSET:
            field_dict["dataloader_drop_last"] = dataloader_drop_last
        if dataloader_in_order is not UNSET:
            field_dict["dataloader_in_order"] = dataloader_in_order
        if dataloader_multiprocessing_context is not UNSET:
            field_dict["dataloader_multiprocessing_context"] = dataloader_multiprocessing_context
        if dataloader_num_workers is not UNSET:
            field_dict["dataloader_num_workers"] = dataloader_num_workers
        if dataloader_persistent_workers is not UNSET:
            field_dict["dataloader_persistent_workers"] = dataloader_persistent_workers
        if dataloader_pin_memory is not UNSET:
            field_dict["dataloader_pin_memory"] = dataloader_pin_memory
        if dataloader_prefetch_factor is not UNSET:
            field_dict["dataloader_prefetch_factor"] = dataloader_prefetch_factor
        if ddp_backend is not UNSET:
            field_dict["ddp_backend"] = ddp_backend
        if ddp_broadcast_buffers is not UNSET:
            field_dict["ddp_broadcast_buffers"] = ddp_broadcast_buffers
        if ddp_bucket_cap_mb is not UNSET:
            field_dict["ddp_bucket_cap_mb"] = ddp_bucket_cap_mb
        if ddp_find_unused_parameters is not UNSET:
            field_dict["ddp_find_unused_parameters"] = ddp_find_unused_parameters
        if ddp_static_graph is not UNSET:
            field_dict["ddp_static_graph"] = ddp_static_graph
        if ddp_timeout is not UNSET:
            field_dict["ddp_timeout"] = ddp_timeout
        if debug is not UNSET:
            field_dict["debug"] = debug
        if deepspeed is not UNSET:
            field_dict["deepspeed"] = deepspeed
        if disable_tqdm is not UNSET:
            field_dict["disable_tqdm"] = disable_tqdm
        if do_eval is not UNSET:
            field_dict["do_eval"] = do_eval
        if do_predict is not UNSET:
            field_dict["do_predict"] = do_predict
        if do_train is not UNSET:
            field_dict["do_train"] = do_train
        if enable_jit_checkpoint is not UNSET:
            field_dict["enable_jit_checkpoint"] = enable_jit_checkpoint
        if eval_accumulation_steps is not UNSET:
            field_dict["eval_accumulation_steps"] = eval_accumulation_steps
        if eval_delay is not UNSET:
            field_dict["eval_delay"] = eval_delay
        if eval_do_concat_batches is not UNSET:
            field_dict["eval_do_concat_batches"] = eval_do_concat_batches
        if eval_on_start is not UNSET:
            field_dict["eval_on_start"] = eval_on_start
        if eval_steps is not UNSET:
            field_dict["eval_steps"] = eval_steps
        if eval_strategy is not UNSET:
            field_dict["eval_strategy"] = eval_strategy
        if eval_use_gather_object is not UNSET:
            field_dict["eval_use_gather_object"] = eval_use_gather_object
        if fp16 is not UNSET:
            field_dict["fp16"] = fp16
        if fp16_full_eval is not UNSET:
            field_dict["fp16_full_eval"] = fp16_full_eval
        if fsdp is not UNSET:
            field_dict["fsdp"] = fsdp
        if fsdp_config is not UNSET:
            field_dict["fsdp_config"] = fsdp_config
        if full_determinism is not UNSET:
            field_dict["full_determinism"] = full_determinism
        if gradient_checkpointing is not UNSET:
            field_dict["gradient_checkpointing"] = gradient_checkpointing
        if gradient_checkpointing_kwargs is not UNSET:
            field_dict["gradient_checkpointing_kwargs"] = gradient_checkpointing_kwargs
        if greater_is_better is not UNSET:
            field_dict["greater_is_better"] = greater_is_better
        if hub_always_push is not UNSET:
            field_dict["hub_always_push"] = hub_always_push
        if hub_model_id is not UNSET:
            field_dict["hub_model_id"] = hub_model_id
        if hub_private_repo is not UNSET:
            field_dict["hub_private_repo"] = hub_private_repo
        if hub_revision is not UNSET:
            field_dict["hub_revision"] = hub_revision
        if hub_strategy is not UNSET:
            field_dict["hub_strategy"] = hub_strategy
        if hub_token is not UNSET:
            field_dict["hub_token"] = hub_token
        if ignore_data_skip is not UNSET:
            field_dict["ignore_data_skip"] = ignore_data_skip
        if include_for_metrics is not UNSET:
            field_dict["include_for_metrics"] = include_for_metrics
        if include_num_input_tokens_seen is not UNSET:
            field_dict["include_num_input_tokens_seen"] = include_num_input_tokens_seen
        if label_names is not UNSET:
            field_dict["label_names"] = label_names
        if label_smoothing_factor is not UNSET:
            field_dict["label_smoothing_factor"] = label_smoothing_factor
        if learning_rate is not UNSET:
            field_dict["learning_rate"] = learning_rate
        if length_column_name is not UNSET:
            field_dict["length_column_name"] = length_column_name
        if liger_kernel_config is not UNSET:
            field_dict["liger_kernel_config"] = liger_kernel_config
        if load_best_model_at_end is not UNSET:
            field_dict["load_best_model_at_end"] = load_best_model_at_end
        if log_level is not UNSET:
            field_dict["log_level"] = log_level
        if log_level_replica is not UNSET:
            field_dict["log_level_replica"] = log_level_replica
        if log_on_each_node is not UNSET:
            field_dict["log_on_each_node"] = log_on_each_node
        if logging_first_step is not UNSET:
            field_dict["logging_first_step"] = logging_first_step
        if logging_nan_inf_filter is not UNSET:
            field_dict["logging_nan_inf_filter"] = logging_nan_inf_filter
        if logging_steps is not UNSET:
            field_dict["logging_steps"] = logging_steps
        if logging_strategy is not UNSET:
            field_dict["logging_strategy"] = logging_strategy
        if lr_scheduler_kwargs is not UNSET:
            field_dict["lr_scheduler_kwargs"] = lr_scheduler_kwargs
        if lr_scheduler_type is not UNSET:
            field_dict["lr_scheduler_type"] = lr_scheduler_type
        if max_grad_norm is not UNSET:
            field_dict["max_grad_norm"] = max_grad_norm
        if max_steps is not UNSET:
            field_dict["max_steps"] = max_steps
        if metric_for_best_model is not UNSET:
            field_dict["metric_for_best_model"] = metric_for_best_model
        if neftune_noise_alpha is not UNSET:
            field_dict["neftune_noise_alpha"] = neftune_noise_alpha
        if num_train_epochs is not UNSET:
            field_dict["num_train_epochs"] = num_train_epochs
        if optim is not UNSET:
            field_dict["optim"] = optim
        if optim_args is not UNSET:
            field_dict["optim_args"] = optim_args
        if optim_target_modules is not UNSET:
            field_dict["optim_target_modules"] = optim_target_modules
        if output_dir is not UNSET:
            field_dict["output_dir"] = output_dir
        if parallelism_config is not UNSET:
            field_dict["parallelism_config"] = parallelism_config
        if prediction_loss_only is not UNSET:
            field_dict["prediction_loss_only"] = prediction_loss_only
        if project is not UNSET:
            field_dict["project"] = project
        if push_to_hub is not UNSET:
            field_dict["push_to_hub"] = push_to_hub
        if remove_unused_columns is not UNSET:
            field_dict["remove_unused_columns"] = remove_unused_columns
        if report_to is not UNSET:
            field_dict["report_to"] = report_to
        if restore_callback_states_from_checkpoint is not UNSET:
            field_dict["restore_callback_states_from_checkpoint"] = restore_callback_states_from_checkpoint
        if run_name is not UNSET:
            field_dict["run_name"] = run_name
        if save_on_each_node is not UNSET:
            field_dict["save_on_each_node"] = save_on_each_node
        if save_only_model is not UNSET:
            field_dict["save_only_model"] = save_only_model
        if save_steps is not UNSET:
            field_dict["save_steps"] = save_steps
        if save_strategy is not UNSET:
            field_dict["save_strategy"] = save_strategy
        if save_total_limit is not UNSET:
            field_dict["save_total_limit"] = save_total_limit
        if seed is not UNSET:
            field_dict["seed"] = seed
        if skip_memory_metrics is not UNSET:
            field_dict["skip_memory_metrics"] = skip_memory_metrics
        if tf32 is not UNSET:
            field_dict["tf32"] = tf32
        if torch_compile is not UNSET:
            field_dict["torch_compile"] = torch_compile
        if torch_compile_backend is not UNSET:
            field_dict["torch_compile_backend"] = torch_compile_backend
        if torch_compile_mode is not UNSET:
            field_dict["torch_compile_mode"] = torch_compile_mode
        if torch_empty_cache_steps is not UNSET:
            field_dict["torch_empty_cache_steps"] = torch_empty_cache_steps
        if trackio_bucket_id is not UNSET:
            field_dict["trackio_bucket_id"] = trackio_bucket_id
        if trackio_space_id is not UNSET:
            field_dict["trackio_space_id"] = trackio_space_id
        if trackio_static_space_id is not UNSET:
            field_dict["trackio_static_space_id"] = trackio_static_space_id
        if train_sampling_strategy is not UNSET:
            field_dict["train_sampling_strategy"] = train_sampling_strategy
        if use_cache is not UNSET:
            field_dict["use_cache"] = use_cache
        if use_cpu is not UNSET:
            field_dict["use_cpu"] = use_cpu
        if use_liger_kernel is not UNSET:
            field_dict["use_liger_kernel"] = use_liger_kernel
        if warmup_steps is not UNSET:
            field_dict["warmup_steps"] = warmup_steps
        if weight_decay is not UNSET:
            field_dict["weight_decay"] = weight_decay

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.grpo_training_args_accelerator_config import GRPOTrainingArgsAcceleratorConfig  # noqa: PLC0415
        from ..models.grpo_training_args_activation_checkpointing_kwargs import (
            GRPOTrainingArgsActivationCheckpointingKwargs,  # noqa: PLC0415
        )
        from ..models.grpo_training_args_deepspeed import GRPOTrainingArgsDeepspeed  # noqa: PLC0415
        from ..models.grpo_training_args_fsdp_config import GRPOTrainingArgsFsdpConfig  # noqa: PLC0415
        from ..models.grpo_training_args_gradient_checkpointing_kwargs import (
            GRPOTrainingArgsGradientCheckpointingKwargs,  # noqa: PLC0415
        )
        from ..models.grpo_training_args_liger_kernel_config import GRPOTrainingArgsLigerKernelConfig  # noqa: PLC0415
        from ..models.grpo_training_args_lr_scheduler_kwargs import GRPOTrainingArgsLrSchedulerKwargs  # noqa: PLC0415
        from ..models.grpo_training_args_parallelism_config import GRPOTrainingArgsParallelismConfig  # noqa: PLC0415

        d = dict(src_dict)

        def _parse_accelerator_config(data: object) -> GRPOTrainingArgsAcceleratorConfig | None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                accelerator_config_accelerator_config = GRPOTrainingArgsAcceleratorConfig.from_dict(data)

                return accelerator_config_accelerator_config
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(GRPOTrainingArgsAcceleratorConfig | None | str | Unset, data)

        accelerator_config = _parse_accelerator_config(d.pop("accelerator_config", UNSET))

        def _parse_activation_checkpointing(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        activation_checkpointing = _parse_activation_checkpointing(d.pop("activation_checkpointing", UNSET))

        def _parse_activation_checkpointing_kwargs(
            data: object,
        ) -> GRPOTrainingArgsActivationCheckpointingKwargs | None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                activation_checkpointing_kwargs_activation_checkpointing_kwargs = (
                    GRPOTrainingArgsActivationCheckpointingKwargs.from_dict(data)
                )

                return activation_checkpointing_kwargs_activation_checkpointing_kwargs
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(GRPOTrainingArgsActivationCheckpointingKwargs | None | str | Unset, data)

        activation_checkpointing_kwargs = _parse_activation_checkpointing_kwargs(
            d.pop("activation_checkpointing_kwargs", UNSET)
        )

        adam_beta1 = d.pop("adam_beta1", UNSET)

        adam_beta2 = d.pop("adam_beta2", UNSET)

        adam_epsilon = d.pop("adam_epsilon", UNSET)

        auto_find_batch_size = d.pop("auto_find_batch_size", UNSET)

        average_tokens_across_devices = d.pop("average_tokens_across_devices", UNSET)

        batch_eval_metrics = d.pop("batch_eval_metrics", UNSET)

        def _parse_bf16(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        bf16 = _parse_bf16(d.pop("bf16", UNSET))

        bf16_full_eval = d.pop("bf16_full_eval", UNSET)

        def _parse_data_seed(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        data_seed = _parse_data_seed(d.pop("data_seed", UNSET))

        dataloader_drop_last = d.pop("dataloader_drop_last", UNSET)

        dataloader_in_order = d.pop("dataloader_in_order", UNSET)

        def _parse_dataloader_multiprocessing_context(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        dataloader_multiprocessing_context = _parse_dataloader_multiprocessing_context(
            d.pop("dataloader_multiprocessing_context", UNSET)
        )

        dataloader_num_workers = d.pop("dataloader_num_workers", UNSET)

        dataloader_persistent_workers = d.pop("dataloader_persistent_workers", UNSET)

        dataloader_pin_memory = d.pop("dataloader_pin_memory", UNSET)

        def _parse_dataloader_prefetch_factor(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        dataloader_prefetch_factor = _parse_dataloader_prefetch_factor(d.pop("dataloader_prefetch_factor", UNSET))

        def _parse_ddp_backend(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        ddp_backend = _parse_ddp_backend(d.pop("ddp_backend", UNSET))

        def _parse_ddp_broadcast_buffers(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        ddp_broadcast_buffers = _parse_ddp_broadcast_buffers(d.pop("ddp_broadcast_buffers", UNSET))

        def _parse_ddp_bucket_cap_mb(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        ddp_bucket_cap_mb = _parse_ddp_bucket_cap_mb(d.pop("ddp_bucket_cap_mb", UNSET))

        def _parse_ddp_find_unused_parameters(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        ddp_find_unused_parameters = _parse_ddp_find_unused_parameters(d.pop("ddp_find_unused_parameters", UNSET))

        def _parse_ddp_static_graph(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        ddp_static_graph = _parse_ddp_static_graph(d.pop("ddp_static_graph", UNSET))

        ddp_timeout = d.pop("ddp_timeout", UNSET)

        def _parse_debug(data: object) -> list[GRPOTrainingArgsDebugOption] | str | Unset:
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                debug_type_1 = []
                _debug_type_1 = data
                for debug_type_1_item_data in _debug_type_1:
                    debug_type_1_item = check_grpo_training_args_debug_option(debug_type_1_item_data)

                    debug_type_1.append(debug_type_1_item)

                return debug_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[GRPOTrainingArgsDebugOption] | str | Unset, data)

        debug = _parse_debug(d.pop("debug", UNSET))

        def _parse_deepspeed(data: object) -> GRPOTrainingArgsDeepspeed | None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                deepspeed_type_0 = GRPOTrainingArgsDeepspeed.from_dict(data)

                return deepspeed_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(GRPOTrainingArgsDeepspeed | None | str | Unset, data)

        deepspeed = _parse_deepspeed(d.pop("deepspeed", UNSET))

        def _parse_disable_tqdm(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        disable_tqdm = _parse_disable_tqdm(d.pop("disable_tqdm", UNSET))

        do_eval = d.pop("do_eval", UNSET)

        do_predict = d.pop("do_predict", UNSET)

        do_train = d.pop("do_train", UNSET)

        enable_jit_checkpoint = d.pop("enable_jit_checkpoint", UNSET)

        def _parse_eval_accumulation_steps(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        eval_accumulation_steps = _parse_eval_accumulation_steps(d.pop("eval_accumulation_steps", UNSET))

        eval_delay = d.pop("eval_delay", UNSET)

        eval_do_concat_batches = d.pop("eval_do_concat_batches", UNSET)

        eval_on_start = d.pop("eval_on_start", UNSET)

        def _parse_eval_steps(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        eval_steps = _parse_eval_steps(d.pop("eval_steps", UNSET))

        _eval_strategy = d.pop("eval_strategy", UNSET)
        eval_strategy: GRPOTrainingArgsEvalStrategy | Unset
        if isinstance(_eval_strategy, Unset):
            eval_strategy = UNSET
        else:
            eval_strategy = check_grpo_training_args_eval_strategy(_eval_strategy)

        eval_use_gather_object = d.pop("eval_use_gather_object", UNSET)

        fp16 = d.pop("fp16", UNSET)

        fp16_full_eval = d.pop("fp16_full_eval", UNSET)

        def _parse_fsdp(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        fsdp = _parse_fsdp(d.pop("fsdp", UNSET))

        def _parse_fsdp_config(data: object) -> GRPOTrainingArgsFsdpConfig | None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                fsdp_config_fsdp_config = GRPOTrainingArgsFsdpConfig.from_dict(data)

                return fsdp_config_fsdp_config
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(GRPOTrainingArgsFsdpConfig | None | str | Unset, data)

        fsdp_config = _parse_fsdp_config(d.pop("fsdp_config", UNSET))

        full_determinism = d.pop("full_determinism", UNSET)

        def _parse_gradient_checkpointing(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        gradient_checkpointing = _parse_gradient_checkpointing(d.pop("gradient_checkpointing", UNSET))

        def _parse_gradient_checkpointing_kwargs(
            data: object,
        ) -> GRPOTrainingArgsGradientCheckpointingKwargs | None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                gradient_checkpointing_kwargs_gradient_checkpointing_kwargs = (
                    GRPOTrainingArgsGradientCheckpointingKwargs.from_dict(data)
                )

                return gradient_checkpointing_kwargs_gradient_checkpointing_kwargs
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(GRPOTrainingArgsGradientCheckpointingKwargs | None | str | Unset, data)

        gradient_checkpointing_kwargs = _parse_gradient_checkpointing_kwargs(
            d.pop("gradient_checkpointing_kwargs", UNSET)
        )

        def _parse_greater_is_better(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        greater_is_better = _parse_greater_is_better(d.pop("greater_is_better", UNSET))

        hub_always_push = d.pop("hub_always_push", UNSET)

        def _parse_hub_model_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        hub_model_id = _parse_hub_model_id(d.pop("hub_model_id", UNSET))

        def _parse_hub_private_repo(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        hub_private_repo = _parse_hub_private_repo(d.pop("hub_private_repo", UNSET))

        def _parse_hub_revision(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        hub_revision = _parse_hub_revision(d.pop("hub_revision", UNSET))

        _hub_strategy = d.pop("hub_strategy", UNSET)
        hub_strategy: GRPOTrainingArgsHubStrategy | Unset
        if isinstance(_hub_strategy, Unset):
            hub_strategy = UNSET
        else:
            hub_strategy = check_grpo_training_args_hub_strategy(_hub_strategy)

        def _parse_hub_token(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        hub_token = _parse_hub_token(d.pop("hub_token", UNSET))

        ignore_data_skip = d.pop("ignore_data_skip", UNSET)

        include_for_metrics = cast(list[str], d.pop("include_for_metrics", UNSET))

        def _parse_include_num_input_tokens_seen(data: object) -> bool | str | Unset:
            if isinstance(data, Unset):
                return data
            return cast(bool | str | Unset, data)

        include_num_input_tokens_seen = _parse_include_num_input_tokens_seen(
            d.pop("include_num_input_tokens_seen", UNSET)
        )

        def _parse_label_names(data: object) -> list[str] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                label_names_type_0 = cast(list[str], data)

                return label_names_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[str] | None | Unset, data)

        label_names = _parse_label_names(d.pop("label_names", UNSET))

        label_smoothing_factor = d.pop("label_smoothing_factor", UNSET)

        learning_rate = d.pop("learning_rate", UNSET)

        length_column_name = d.pop("length_column_name", UNSET)

        def _parse_liger_kernel_config(data: object) -> GRPOTrainingArgsLigerKernelConfig | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                liger_kernel_config_liger_kernel_config = GRPOTrainingArgsLigerKernelConfig.from_dict(data)

                return liger_kernel_config_liger_kernel_config
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(GRPOTrainingArgsLigerKernelConfig | None | Unset, data)

        liger_kernel_config = _parse_liger_kernel_config(d.pop("liger_kernel_config", UNSET))

        load_best_model_at_end = d.pop("load_best_model_at_end", UNSET)

        log_level = d.pop("log_level", UNSET)

        log_level_replica = d.pop("log_level_replica", UNSET)

        log_on_each_node = d.pop("log_on_each_node", UNSET)

        logging_first_step = d.pop("logging_first_step", UNSET)

        logging_nan_inf_filter = d.pop("logging_nan_inf_filter", UNSET)

        logging_steps = d.pop("logging_steps", UNSET)

        _logging_strategy = d.pop("logging_strategy", UNSET)
        logging_strategy: GRPOTrainingArgsLoggingStrategy | Unset
        if isinstance(_logging_strategy, Unset):
            logging_strategy = UNSET
        else:
            logging_strategy = check_grpo_training_args_logging_strategy(_logging_strategy)

        def _parse_lr_scheduler_kwargs(data: object) -> GRPOTrainingArgsLrSchedulerKwargs | None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                lr_scheduler_kwargs_lr_scheduler_kwargs = GRPOTrainingArgsLrSchedulerKwargs.from_dict(data)

                return lr_scheduler_kwargs_lr_scheduler_kwargs
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(GRPOTrainingArgsLrSchedulerKwargs | None | str | Unset, data)

        lr_scheduler_kwargs = _parse_lr_scheduler_kwargs(d.pop("lr_scheduler_kwargs", UNSET))

        _lr_scheduler_type = d.pop("lr_scheduler_type", UNSET)
        lr_scheduler_type: GRPOTrainingArgsLrSchedulerType | Unset
        if isinstance(_lr_scheduler_type, Unset):
            lr_scheduler_type = UNSET
        else:
            lr_scheduler_type = check_grpo_training_args_lr_scheduler_type(_lr_scheduler_type)

        max_grad_norm = d.pop("max_grad_norm", UNSET)

        max_steps = d.pop("max_steps", UNSET)

        def _parse_metric_for_best_model(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        metric_for_best_model = _parse_metric_for_best_model(d.pop("metric_for_best_model", UNSET))

        def _parse_neftune_noise_alpha(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        neftune_noise_alpha = _parse_neftune_noise_alpha(d.pop("neftune_noise_alpha", UNSET))

        num_train_epochs = d.pop("num_train_epochs", UNSET)

        _optim = d.pop("optim", UNSET)
        optim: GRPOTrainingArgsOptim | Unset
        if isinstance(_optim, Unset):
            optim = UNSET
        else:
            optim = check_grpo_training_args_optim(_optim)

        def _parse_optim_args(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        optim_args = _parse_optim_args(d.pop("optim_args", UNSET))

        def _parse_optim_target_modules(data: object) -> list[str] | None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                optim_target_modules_type_1 = cast(list[str], data)

                return optim_target_modules_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[str] | None | str | Unset, data)

        optim_target_modules = _parse_optim_target_modules(d.pop("optim_target_modules", UNSET))

        def _parse_output_dir(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        output_dir = _parse_output_dir(d.pop("output_dir", UNSET))

        def _parse_parallelism_config(data: object) -> GRPOTrainingArgsParallelismConfig | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                parallelism_config_parallelism_config = GRPOTrainingArgsParallelismConfig.from_dict(data)

                return parallelism_config_parallelism_config
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(GRPOTrainingArgsParallelismConfig | None | Unset, data)

        parallelism_config = _parse_parallelism_config(d.pop("parallelism_config", UNSET))

        prediction_loss_only = d.pop("prediction_loss_only", UNSET)

        project = d.pop("project", UNSET)

        push_to_hub = d.pop("push_to_hub", UNSET)

        remove_unused_columns = d.pop("remove_unused_columns", UNSET)

        def _parse_report_to(data: object) -> list[str] | None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                report_to_type_1 = cast(list[str], data)

                return report_to_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[str] | None | str | Unset, data)

        report_to = _parse_report_to(d.pop("report_to", UNSET))

        restore_callback_states_from_checkpoint = d.pop("restore_callback_states_from_checkpoint", UNSET)

        def _parse_run_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        run_name = _parse_run_name(d.pop("run_name", UNSET))

        save_on_each_node = d.pop("save_on_each_node", UNSET)

        save_only_model = d.pop("save_only_model", UNSET)

        save_steps = d.pop("save_steps", UNSET)

        _save_strategy = d.pop("save_strategy", UNSET)
        save_strategy: GRPOTrainingArgsSaveStrategy | Unset
        if isinstance(_save_strategy, Unset):
            save_strategy = UNSET
        else:
            save_strategy = check_grpo_training_args_save_strategy(_save_strategy)

        def _parse_save_total_limit(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        save_total_limit = _parse_save_total_limit(d.pop("save_total_limit", UNSET))

        seed = d.pop("seed", UNSET)

        skip_memory_metrics = d.pop("skip_memory_metrics", UNSET)

        def _parse_tf32(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        tf32 = _parse_tf32(d.pop("tf32", UNSET))

        torch_compile = d.pop("torch_compile", UNSET)

        def _parse_torch_compile_backend(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        torch_compile_backend = _parse_torch_compile_backend(d.pop("torch_compile_backend", UNSET))

        def _parse_torch_compile_mode(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        torch_compile_mode = _parse_torch_compile_mode(d.pop("torch_compile_mode", UNSET))

        def _parse_torch_empty_cache_steps(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        torch_empty_cache_steps = _parse_torch_empty_cache_steps(d.pop("torch_empty_cache_steps", UNSET))

        def _parse_trackio_bucket_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        trackio_bucket_id = _parse_trackio_bucket_id(d.pop("trackio_bucket_id", UNSET))

        def _parse_trackio_space_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        trackio_space_id = _parse_trackio_space_id(d.pop("trackio_space_id", UNSET))

        def _parse_trackio_static_space_id(data: object) -> bool | None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | str | Unset, data)

        trackio_static_space_id = _parse_trackio_static_space_id(d.pop("trackio_static_space_id", UNSET))

        train_sampling_strategy = d.pop("train_sampling_strategy", UNSET)

        use_cache = d.pop("use_cache", UNSET)

        use_cpu = d.pop("use_cpu", UNSET)

        use_liger_kernel = d.pop("use_liger_kernel", UNSET)

        warmup_steps = d.pop("warmup_steps", UNSET)

        weight_decay = d.pop("weight_decay", UNSET)

        grpo_training_args = cls(
            accelerator_config=accelerator_config,
            activation_checkpointing=activation_checkpointing,
            activation_checkpointing_kwargs=activation_checkpointing_kwargs,
            adam_beta1=adam_beta1,
            adam_beta2=adam_beta2,
            adam_epsilon=adam_epsilon,
            auto_find_batch_size=auto_find_batch_size,
            average_tokens_across_devices=average_tokens_across_devices,
            batch_eval_metrics=batch_eval_metrics,
            bf16=bf16,
            bf16_full_eval=bf16_full_eval,
            data_seed=data_seed,
            dataloader_drop_last=dataloader_drop_last,
            dataloader_in_order=dataloader_in_order,
            dataloader_multiprocessing_context=dataloader_multiprocessing_context,
            dataloader_num_workers=dataloader_num_workers,
            dataloader_persistent_workers=dataloader_persistent_workers,
            dataloader_pin_memory=dataloader_pin_memory,
            dataloader_prefetch_factor=dataloader_prefetch_factor,
            ddp_backend=ddp_backend,
            ddp_broadcast_buffers=ddp_broadcast_buffers,
            ddp_bucket_cap_mb=ddp_bucket_cap_mb,
            ddp_find_unused_parameters=ddp_find_unused_parameters,
            ddp_static_graph=ddp_static_graph,
            ddp_timeout=ddp_timeout,
            debug=debug,
            deepspeed=deepspeed,
            disable_tqdm=disable_tqdm,
            do_eval=do_eval,
            do_predict=do_predict,
            do_train=do_train,
            enable_jit_checkpoint=enable_jit_checkpoint,
            eval_accumulation_steps=eval_accumulation_steps,
            eval_delay=eval_delay,
            eval_do_concat_batches=eval_do_concat_batches,
            eval_on_start=eval_on_start,
            eval_steps=eval_steps,
            eval_strategy=eval_strategy,
            eval_use_gather_object=eval_use_gather_object,
            fp16=fp16,
            fp16_full_eval=fp16_full_eval,
            fsdp=fsdp,
            fsdp_config=fsdp_config,
            full_determinism=full_determinism,
            gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs=gradient_checkpointing_kwargs,
            greater_is_better=greater_is_better,
            hub_always_push=hub_always_push,
            hub_model_id=hub_model_id,
            hub_private_repo=hub_private_repo,
            hub_revision=hub_revision,
            hub_strategy=hub_strategy,
            hub_token=hub_token,
            ignore_data_skip=ignore_data_skip,
            include_for_metrics=include_for_metrics,
            include_num_input_tokens_seen=include_num_input_tokens_seen,
            label_names=label_names,
            label_smoothing_factor=label_smoothing_factor,
            learning_rate=learning_rate,
            length_column_name=length_column_name,
            liger_kernel_config=liger_kernel_config,
            load_best_model_at_end=load_best_model_at_end,
            log_level=log_level,
            log_level_replica=log_level_replica,
            log_on_each_node=log_on_each_node,
            logging_first_step=logging_first_step,
            logging_nan_inf_filter=logging_nan_inf_filter,
            logging_steps=logging_steps,
            logging_strategy=logging_strategy,
            lr_scheduler_kwargs=lr_scheduler_kwargs,
            lr_scheduler_type=lr_scheduler_type,
            max_grad_norm=max_grad_norm,
            max_steps=max_steps,
            metric_for_best_model=metric_for_best_model,
            neftune_noise_alpha=neftune_noise_alpha,
            num_train_epochs=num_train_epochs,
            optim=optim,
            optim_args=optim_args,
            optim_target_modules=optim_target_modules,
            output_dir=output_dir,
            parallelism_config=parallelism_config,
            prediction_loss_only=prediction_loss_only,
            project=project,
            push_to_hub=push_to_hub,
            remove_unused_columns=remove_unused_columns,
            report_to=report_to,
            restore_callback_states_from_checkpoint=restore_callback_states_from_checkpoint,
            run_name=run_name,
            save_on_each_node=save_on_each_node,
            save_only_model=save_only_model,
            save_steps=save_steps,
            save_strategy=save_strategy,
            save_total_limit=save_total_limit,
            seed=seed,
            skip_memory_metrics=skip_memory_metrics,
            tf32=tf32,
            torch_compile=torch_compile,
            torch_compile_backend=torch_compile_backend,
            torch_compile_mode=torch_compile_mode,
            torch_empty_cache_steps=torch_empty_cache_steps,
            trackio_bucket_id=trackio_bucket_id,
            trackio_space_id=trackio_space_id,
            trackio_static_space_id=trackio_static_space_id,
            train_sampling_strategy=train_sampling_strategy,
            use_cache=use_cache,
            use_cpu=use_cpu,
            use_liger_kernel=use_liger_kernel,
            warmup_steps=warmup_steps,
            weight_decay=weight_decay,
        )

        return grpo_training_args
