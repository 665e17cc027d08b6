"""Contains all the data models used in inputs/outputs"""

from .adapter_conversion_request import AdapterConversionRequest
from .auto_split_input import AutoSplitInput
from .batchsize_conf import BatchsizeConf
from .bnb_quantization_conf import BnBQuantizationConf
from .bnb_quantization_conf_bnb_4bit_quant_type import BnBQuantizationConfBnb4BitQuantType
from .chat_template_name import ChatTemplateName
from .checkpoint_page import CheckpointPage
from .checkpoint_read import CheckpointRead
from .checkpoint_read_metrics import CheckpointReadMetrics
from .checkpoint_read_metrics_additional_property import CheckpointReadMetricsAdditionalProperty
from .concatenation_input import ConcatenationInput
from .data_conf import DataConf
from .data_conf_padding_side import DataConfPaddingSide
from .data_type import DataType
from .dataset_ref import DatasetRef
from .determinism import Determinism
from .dpo_config import DPOConfig
from .dpo_training_args import DPOTrainingArgs
from .dpo_training_args_accelerator_config import DPOTrainingArgsAcceleratorConfig
from .dpo_training_args_activation_checkpointing_kwargs import DPOTrainingArgsActivationCheckpointingKwargs
from .dpo_training_args_debug_option import DPOTrainingArgsDebugOption
from .dpo_training_args_deepspeed import DPOTrainingArgsDeepspeed
from .dpo_training_args_eval_strategy import DPOTrainingArgsEvalStrategy
from .dpo_training_args_fsdp_config import DPOTrainingArgsFsdpConfig
from .dpo_training_args_gradient_checkpointing_kwargs import DPOTrainingArgsGradientCheckpointingKwargs
from .dpo_training_args_hub_strategy import DPOTrainingArgsHubStrategy
from .dpo_training_args_liger_kernel_config import DPOTrainingArgsLigerKernelConfig
from .dpo_training_args_logging_strategy import DPOTrainingArgsLoggingStrategy
from .dpo_training_args_lr_scheduler_kwargs import DPOTrainingArgsLrSchedulerKwargs
from .dpo_training_args_lr_scheduler_type import DPOTrainingArgsLrSchedulerType
from .dpo_training_args_optim import DPOTrainingArgsOptim
from .dpo_training_args_parallelism_config import DPOTrainingArgsParallelismConfig
from .dpo_training_args_save_strategy import DPOTrainingArgsSaveStrategy
from .error_body import ErrorBody
from .error_issue import ErrorIssue
from .error_response import ErrorResponse
from .eval_data_prompt import EvalDataPrompt
from .eval_data_ref import EvalDataRef
from .event_page import EventPage
from .event_read import EventRead
from .event_read_data import EventReadData
from .generate_config import GenerateConfig
from .generate_config_hf_gen_params import GenerateConfigHfGenParams
from .generate_model_conf import GenerateModelConf
from .generated_answer import GeneratedAnswer
from .generic_peft_conf import GenericPeftConf
from .generic_peft_conf_peft_kwargs import GenericPeftConfPeftKwargs
from .generic_peft_conf_peft_type import GenericPeftConfPeftType
from .health import Health
from .job_attempt import JobAttempt
from .job_error import JobError
from .job_input import JobInput
from .job_kind import JobKind
from .job_links import JobLinks
from .job_metrics import JobMetrics
from .job_metrics_eval import JobMetricsEval
from .job_metrics_summary import JobMetricsSummary
from .job_metrics_train import JobMetricsTrain
from .job_page import JobPage
from .job_progress import JobProgress
from .job_read import JobRead
from .job_read_artifacts import JobReadArtifacts
from .job_read_config import JobReadConfig
from .job_read_inputs import JobReadInputs
from .job_read_labels import JobReadLabels
from .job_read_metrics import JobReadMetrics
from .job_read_resolved import JobReadResolved
from .job_status import JobStatus
from .lost_work import LostWork
from .lr_batch_size_scaling import LrBatchSizeScaling
from .merge_request import MergeRequest
from .merge_request_device_map import MergeRequestDeviceMap
from .metric_point import MetricPoint
from .missing_pad_token_strategy import MissingPadTokenStrategy
from .model_args import ModelArgs
from .model_args_device_map import ModelArgsDeviceMap
from .model_args_max_memory import ModelArgsMaxMemory
from .model_args_tp_plan import ModelArgsTpPlan
from .no_peft_conf import NoPeftConf
from .no_quantization_conf import NoQuantizationConf
from .none_input import NoneInput
from .open_input_prompt import OpenInputPrompt
from .overrides import Overrides
from .pretrained_peft_conf import PretrainedPeftConf
from .readiness import Readiness
from .readiness_checks import ReadinessChecks
from .resume_point import ResumePoint
from .run_conf import RunConf
from .secret_list import SecretList
from .secret_read import SecretRead
from .secret_value import SecretValue
from .secret_write import SecretWrite
from .sft_args import SFTArgs
from .sft_args_length_handling import SFTArgsLengthHandling
from .sft_config import SFTConfig
from .sft_training_args import SFTTrainingArgs
from .sft_training_args_accelerator_config import SFTTrainingArgsAcceleratorConfig
from .sft_training_args_activation_checkpointing_kwargs import SFTTrainingArgsActivationCheckpointingKwargs
from .sft_training_args_debug_option import SFTTrainingArgsDebugOption
from .sft_training_args_deepspeed import SFTTrainingArgsDeepspeed
from .sft_training_args_eval_strategy import SFTTrainingArgsEvalStrategy
from .sft_training_args_fsdp_config import SFTTrainingArgsFsdpConfig
from .sft_training_args_gradient_checkpointing_kwargs import SFTTrainingArgsGradientCheckpointingKwargs
from .sft_training_args_hub_strategy import SFTTrainingArgsHubStrategy
from .sft_training_args_liger_kernel_config import SFTTrainingArgsLigerKernelConfig
from .sft_training_args_logging_strategy import SFTTrainingArgsLoggingStrategy
from .sft_training_args_lr_scheduler_kwargs import SFTTrainingArgsLrSchedulerKwargs
from .sft_training_args_lr_scheduler_type import SFTTrainingArgsLrSchedulerType
from .sft_training_args_optim import SFTTrainingArgsOptim
from .sft_training_args_parallelism_config import SFTTrainingArgsParallelismConfig
from .sft_training_args_save_strategy import SFTTrainingArgsSaveStrategy
from .superseded_series import SupersededSeries
from .superseded_series_eval import SupersededSeriesEval
from .superseded_series_train import SupersededSeriesTrain
from .tracking_conf import TrackingConf
from .weighted_dataset_ref import WeightedDatasetRef
from .weighted_mix_input import WeightedMixInput

__all__ = (
    "AdapterConversionRequest",
    "AutoSplitInput",
    "BatchsizeConf",
    "BnBQuantizationConf",
    "BnBQuantizationConfBnb4BitQuantType",
    "ChatTemplateName",
    "CheckpointPage",
    "CheckpointRead",
    "CheckpointReadMetrics",
    "CheckpointReadMetricsAdditionalProperty",
    "ConcatenationInput",
    "DataConf",
    "DataConfPaddingSide",
    "DatasetRef",
    "DataType",
    "Determinism",
    "DPOConfig",
    "DPOTrainingArgs",
    "DPOTrainingArgsAcceleratorConfig",
    "DPOTrainingArgsActivationCheckpointingKwargs",
    "DPOTrainingArgsDebugOption",
    "DPOTrainingArgsDeepspeed",
    "DPOTrainingArgsEvalStrategy",
    "DPOTrainingArgsFsdpConfig",
    "DPOTrainingArgsGradientCheckpointingKwargs",
    "DPOTrainingArgsHubStrategy",
    "DPOTrainingArgsLigerKernelConfig",
    "DPOTrainingArgsLoggingStrategy",
    "DPOTrainingArgsLrSchedulerKwargs",
    "DPOTrainingArgsLrSchedulerType",
    "DPOTrainingArgsOptim",
    "DPOTrainingArgsParallelismConfig",
    "DPOTrainingArgsSaveStrategy",
    "ErrorBody",
    "ErrorIssue",
    "ErrorResponse",
    "EvalDataPrompt",
    "EvalDataRef",
    "EventPage",
    "EventRead",
    "EventReadData",
    "GenerateConfig",
    "GenerateConfigHfGenParams",
    "GeneratedAnswer",
    "GenerateModelConf",
    "GenericPeftConf",
    "GenericPeftConfPeftKwargs",
    "GenericPeftConfPeftType",
    "Health",
    "JobAttempt",
    "JobError",
    "JobInput",
    "JobKind",
    "JobLinks",
    "JobMetrics",
    "JobMetricsEval",
    "JobMetricsSummary",
    "JobMetricsTrain",
    "JobPage",
    "JobProgress",
    "JobRead",
    "JobReadArtifacts",
    "JobReadConfig",
    "JobReadInputs",
    "JobReadLabels",
    "JobReadMetrics",
    "JobReadResolved",
    "JobStatus",
    "LostWork",
    "LrBatchSizeScaling",
    "MergeRequest",
    "MergeRequestDeviceMap",
    "MetricPoint",
    "MissingPadTokenStrategy",
    "ModelArgs",
    "ModelArgsDeviceMap",
    "ModelArgsMaxMemory",
    "ModelArgsTpPlan",
    "NoneInput",
    "NoPeftConf",
    "NoQuantizationConf",
    "OpenInputPrompt",
    "Overrides",
    "PretrainedPeftConf",
    "Readiness",
    "ReadinessChecks",
    "ResumePoint",
    "RunConf",
    "SecretList",
    "SecretRead",
    "SecretValue",
    "SecretWrite",
    "SFTArgs",
    "SFTArgsLengthHandling",
    "SFTConfig",
    "SFTTrainingArgs",
    "SFTTrainingArgsAcceleratorConfig",
    "SFTTrainingArgsActivationCheckpointingKwargs",
    "SFTTrainingArgsDebugOption",
    "SFTTrainingArgsDeepspeed",
    "SFTTrainingArgsEvalStrategy",
    "SFTTrainingArgsFsdpConfig",
    "SFTTrainingArgsGradientCheckpointingKwargs",
    "SFTTrainingArgsHubStrategy",
    "SFTTrainingArgsLigerKernelConfig",
    "SFTTrainingArgsLoggingStrategy",
    "SFTTrainingArgsLrSchedulerKwargs",
    "SFTTrainingArgsLrSchedulerType",
    "SFTTrainingArgsOptim",
    "SFTTrainingArgsParallelismConfig",
    "SFTTrainingArgsSaveStrategy",
    "SupersededSeries",
    "SupersededSeriesEval",
    "SupersededSeriesTrain",
    "TrackingConf",
    "WeightedDatasetRef",
    "WeightedMixInput",
)
