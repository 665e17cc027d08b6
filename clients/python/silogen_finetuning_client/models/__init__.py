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
from .grpo_args import GRPOArgs
from .grpo_args_importance_sampling_level import GRPOArgsImportanceSamplingLevel
from .grpo_args_loss_type import GRPOArgsLossType
from .grpo_args_multi_objective_aggregation import GRPOArgsMultiObjectiveAggregation
from .grpo_args_scale_rewards import GRPOArgsScaleRewards
from .grpo_config import GRPOConfig
from .grpo_training_args import GRPOTrainingArgs
from .grpo_training_args_accelerator_config import GRPOTrainingArgsAcceleratorConfig
from .grpo_training_args_activation_checkpointing_kwargs import GRPOTrainingArgsActivationCheckpointingKwargs
from .grpo_training_args_debug_option import GRPOTrainingArgsDebugOption
from .grpo_training_args_deepspeed import GRPOTrainingArgsDeepspeed
from .grpo_training_args_eval_strategy import GRPOTrainingArgsEvalStrategy
from .grpo_training_args_fsdp_config import GRPOTrainingArgsFsdpConfig
from .grpo_training_args_gradient_checkpointing_kwargs import GRPOTrainingArgsGradientCheckpointingKwargs
from .grpo_training_args_hub_strategy import GRPOTrainingArgsHubStrategy
from .grpo_training_args_liger_kernel_config import GRPOTrainingArgsLigerKernelConfig
from .grpo_training_args_logging_strategy import GRPOTrainingArgsLoggingStrategy
from .grpo_training_args_lr_scheduler_kwargs import GRPOTrainingArgsLrSchedulerKwargs
from .grpo_training_args_lr_scheduler_type import GRPOTrainingArgsLrSchedulerType
from .grpo_training_args_optim import GRPOTrainingArgsOptim
from .grpo_training_args_parallelism_config import GRPOTrainingArgsParallelismConfig
from .grpo_training_args_save_strategy import GRPOTrainingArgsSaveStrategy
from .health import Health
from .job_attempt import JobAttempt
from .job_error import JobError
from .job_input import JobInput
from .job_kind import JobKind
from .job_links import JobLinks
from .job_manifest import JobManifest
from .job_manifest_config import JobManifestConfig
from .job_manifest_determinism import JobManifestDeterminism
from .job_manifest_machine import JobManifestMachine
from .job_manifest_pins import JobManifestPins
from .job_manifest_resolved import JobManifestResolved
from .job_manifest_seeds import JobManifestSeeds
from .job_manifest_training_arguments import JobManifestTrainingArguments
from .job_manifest_versions import JobManifestVersions
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
from .json_schema_grader import JsonSchemaGrader
from .json_schema_grader_schema import JsonSchemaGraderSchema
from .length_grader import LengthGrader
from .length_grader_unit import LengthGraderUnit
from .lost_work import LostWork
from .lr_batch_size_scaling import LrBatchSizeScaling
from .manifest_input import ManifestInput
from .manifest_input_files import ManifestInputFiles
from .manifest_input_files_additional_property import ManifestInputFilesAdditionalProperty
from .merge_request import MergeRequest
from .merge_request_device_map import MergeRequestDeviceMap
from .metric_point import MetricPoint
from .missing_pad_token_strategy import MissingPadTokenStrategy
from .model_args import ModelArgs
from .model_args_device_map import ModelArgsDeviceMap
from .model_args_max_memory import ModelArgsMaxMemory
from .model_args_tp_plan import ModelArgsTpPlan
from .multi_grader import MultiGrader
from .multi_grader_aggregate import MultiGraderAggregate
from .no_peft_conf import NoPeftConf
from .no_quantization_conf import NoQuantizationConf
from .none_input import NoneInput
from .number_match_grader import NumberMatchGrader
from .open_input_prompt import OpenInputPrompt
from .overrides import Overrides
from .plan_problem_row import PlanProblemRow
from .plan_problems import PlanProblems
from .plan_problems_by_kind import PlanProblemsByKind
from .plan_report import PlanReport
from .plan_report_data import PlanReportData
from .plan_report_memory import PlanReportMemory
from .plan_report_model import PlanReportModel
from .plan_report_resolved import PlanReportResolved
from .plan_report_statistics import PlanReportStatistics
from .plan_report_steps import PlanReportSteps
from .plan_report_time import PlanReportTime
from .pretrained_peft_conf import PretrainedPeftConf
from .readiness import Readiness
from .readiness_checks import ReadinessChecks
from .resume_point import ResumePoint
from .rotate_secret import RotateSecret
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
from .string_check_grader import StringCheckGrader
from .string_check_grader_operation import StringCheckGraderOperation
from .superseded_series import SupersededSeries
from .superseded_series_eval import SupersededSeriesEval
from .superseded_series_train import SupersededSeriesTrain
from .text_similarity_grader import TextSimilarityGrader
from .text_similarity_grader_metric import TextSimilarityGraderMetric
from .tracking_conf import TrackingConf
from .webhook_attempt_read import WebhookAttemptRead
from .webhook_create import WebhookCreate
from .webhook_delivery_page import WebhookDeliveryPage
from .webhook_delivery_read import WebhookDeliveryRead
from .webhook_delivery_read_payload import WebhookDeliveryReadPayload
from .webhook_event_type import WebhookEventType
from .webhook_list import WebhookList
from .webhook_read import WebhookRead
from .webhook_update import WebhookUpdate
from .webhook_with_secret import WebhookWithSecret
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
    "GRPOArgs",
    "GRPOArgsImportanceSamplingLevel",
    "GRPOArgsLossType",
    "GRPOArgsMultiObjectiveAggregation",
    "GRPOArgsScaleRewards",
    "GRPOConfig",
    "GRPOTrainingArgs",
    "GRPOTrainingArgsAcceleratorConfig",
    "GRPOTrainingArgsActivationCheckpointingKwargs",
    "GRPOTrainingArgsDebugOption",
    "GRPOTrainingArgsDeepspeed",
    "GRPOTrainingArgsEvalStrategy",
    "GRPOTrainingArgsFsdpConfig",
    "GRPOTrainingArgsGradientCheckpointingKwargs",
    "GRPOTrainingArgsHubStrategy",
    "GRPOTrainingArgsLigerKernelConfig",
    "GRPOTrainingArgsLoggingStrategy",
    "GRPOTrainingArgsLrSchedulerKwargs",
    "GRPOTrainingArgsLrSchedulerType",
    "GRPOTrainingArgsOptim",
    "GRPOTrainingArgsParallelismConfig",
    "GRPOTrainingArgsSaveStrategy",
    "Health",
    "JobAttempt",
    "JobError",
    "JobInput",
    "JobKind",
    "JobLinks",
    "JobManifest",
    "JobManifestConfig",
    "JobManifestDeterminism",
    "JobManifestMachine",
    "JobManifestPins",
    "JobManifestResolved",
    "JobManifestSeeds",
    "JobManifestTrainingArguments",
    "JobManifestVersions",
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
    "JsonSchemaGrader",
    "JsonSchemaGraderSchema",
    "LengthGrader",
    "LengthGraderUnit",
    "LostWork",
    "LrBatchSizeScaling",
    "ManifestInput",
    "ManifestInputFiles",
    "ManifestInputFilesAdditionalProperty",
    "MergeRequest",
    "MergeRequestDeviceMap",
    "MetricPoint",
    "MissingPadTokenStrategy",
    "ModelArgs",
    "ModelArgsDeviceMap",
    "ModelArgsMaxMemory",
    "ModelArgsTpPlan",
    "MultiGrader",
    "MultiGraderAggregate",
    "NoneInput",
    "NoPeftConf",
    "NoQuantizationConf",
    "NumberMatchGrader",
    "OpenInputPrompt",
    "Overrides",
    "PlanProblemRow",
    "PlanProblems",
    "PlanProblemsByKind",
    "PlanReport",
    "PlanReportData",
    "PlanReportMemory",
    "PlanReportModel",
    "PlanReportResolved",
    "PlanReportStatistics",
    "PlanReportSteps",
    "PlanReportTime",
    "PretrainedPeftConf",
    "Readiness",
    "ReadinessChecks",
    "ResumePoint",
    "RotateSecret",
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
    "StringCheckGrader",
    "StringCheckGraderOperation",
    "SupersededSeries",
    "SupersededSeriesEval",
    "SupersededSeriesTrain",
    "TextSimilarityGrader",
    "TextSimilarityGraderMetric",
    "TrackingConf",
    "WebhookAttemptRead",
    "WebhookCreate",
    "WebhookDeliveryPage",
    "WebhookDeliveryRead",
    "WebhookDeliveryReadPayload",
    "WebhookEventType",
    "WebhookList",
    "WebhookRead",
    "WebhookUpdate",
    "WebhookWithSecret",
    "WeightedDatasetRef",
    "WeightedMixInput",
)
