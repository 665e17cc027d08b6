from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..models.grpo_args_importance_sampling_level import (
    GRPOArgsImportanceSamplingLevel,
    check_grpo_args_importance_sampling_level,
)
from ..models.grpo_args_loss_type import GRPOArgsLossType, check_grpo_args_loss_type
from ..models.grpo_args_multi_objective_aggregation import (
    GRPOArgsMultiObjectiveAggregation,
    check_grpo_args_multi_objective_aggregation,
)
from ..models.grpo_args_scale_rewards import GRPOArgsScaleRewards, check_grpo_args_scale_rewards
from ..types import UNSET, Unset

T = TypeVar("T", bound="GRPOArgs")


@_attrs_define
class GRPOArgs:
    """How GRPO samples and scores: ``num_generations`` completions per prompt, each graded by ``graders``; a
    completion's advantage is its reward against the others of its prompt. Fields of ``trl.GRPOConfig``.

        Attributes:
            beta (float | Unset): KL coefficient: how strongly the policy is held to the model it started from. 0 (TRL's
                default) loads no reference and reports no KL; DeepSeek-R1 used 0.001, older GRPO recipes 0.04. Default: 0.0.
            epsilon (float | Unset): Clipping range of the policy ratio. Default: 0.2.
            epsilon_high (float | None | Unset): Upper clipping bound; null: epsilon.
            importance_sampling_level (GRPOArgsImportanceSamplingLevel | Unset):  Default: 'token'.
            loss_type (GRPOArgsLossType | Unset): TRL's GRPO loss variant: dapo (tokens normalised over the global batch, no
                length bias), grpo (per-sequence normalisation, the original), dr_grpo, bnpo, cispo, sapo, luspo (needs
                importance_sampling_level: sequence), vespo. Default: 'dapo'.
            mask_truncated_completions (bool | Unset): Leave completions cut at max_completion_length out of the loss.
                Default: False.
            max_completion_length (int | Unset): Tokens a completion may have at most. Default: 512.
            multi_objective_aggregation (GRPOArgsMultiObjectiveAggregation | Unset): With several graders: normalise their
                weighted sum, or normalise each grader's reward first. Default: 'sum_then_normalize'.
            num_generations (int | Unset): Completions sampled per prompt (the group its rewards are compared within);
                batchsize_conf.total_train_batch_size must be a multiple of it. Default: 8.
            num_iterations (int | Unset): Optimisation passes over each batch of generations. Default: 1.
            samples_per_log (int | Unset): Completions, with their prompt and rewards, reported in a samples event at each
                log. Default: 4.
            save_name_if_new_basemodel (str | Unset):  Default: 'checkpoint-new-basemodel'.
            scale_rewards (GRPOArgsScaleRewards | Unset): Divide advantages by the reward spread of the group, of the batch,
                or not. Default: 'group'.
            temperature (float | Unset): Sampling temperature. Default: 1.0.
            top_k (int | Unset): 0: no top-k filtering. Default: 0.
            top_p (float | Unset):  Default: 1.0.
            use_vllm (bool | Literal['auto'] | Unset): Generate with vLLM (TRL's vLLM path): auto uses it where vLLM is
                installed and the run trains on a CUDA GPU, and transformers' generate elsewhere. Default: 'auto'.
            vllm_gpu_memory_utilization (float | Unset): The GPU memory share of vLLM, which runs inside the training
                processes (TRL's colocate mode). Default: 0.3.
    """

    beta: float | Unset = 0.0
    epsilon: float | Unset = 0.2
    epsilon_high: float | None | Unset = UNSET
    importance_sampling_level: GRPOArgsImportanceSamplingLevel | Unset = "token"
    loss_type: GRPOArgsLossType | Unset = "dapo"
    mask_truncated_completions: bool | Unset = False
    max_completion_length: int | Unset = 512
    multi_objective_aggregation: GRPOArgsMultiObjectiveAggregation | Unset = "sum_then_normalize"
    num_generations: int | Unset = 8
    num_iterations: int | Unset = 1
    samples_per_log: int | Unset = 4
    save_name_if_new_basemodel: str | Unset = "checkpoint-new-basemodel"
    scale_rewards: GRPOArgsScaleRewards | Unset = "group"
    temperature: float | Unset = 1.0
    top_k: int | Unset = 0
    top_p: float | Unset = 1.0
    use_vllm: bool | Literal["auto"] | Unset = "auto"
    vllm_gpu_memory_utilization: float | Unset = 0.3

    def to_dict(self) -> dict[str, Any]:
        beta = self.beta

        epsilon = self.epsilon

        epsilon_high: float | None | Unset
        if isinstance(self.epsilon_high, Unset):
            epsilon_high = UNSET
        else:
            epsilon_high = self.epsilon_high

        importance_sampling_level: str | Unset = UNSET
        if not isinstance(self.importance_sampling_level, Unset):
            importance_sampling_level = self.importance_sampling_level

        loss_type: str | Unset = UNSET
        if not isinstance(self.loss_type, Unset):
            loss_type = self.loss_type

        mask_truncated_completions = self.mask_truncated_completions

        max_completion_length = self.max_completion_length

        multi_objective_aggregation: str | Unset = UNSET
        if not isinstance(self.multi_objective_aggregation, Unset):
            multi_objective_aggregation = self.multi_objective_aggregation

        num_generations = self.num_generations

        num_iterations = self.num_iterations

        samples_per_log = self.samples_per_log

        save_name_if_new_basemodel = self.save_name_if_new_basemodel

        scale_rewards: str | Unset = UNSET
        if not isinstance(self.scale_rewards, Unset):
            scale_rewards = self.scale_rewards

        temperature = self.temperature

        top_k = self.top_k

        top_p = self.top_p

        use_vllm: bool | Literal["auto"] | Unset
        if isinstance(self.use_vllm, Unset):
            use_vllm = UNSET
        else:
            use_vllm = self.use_vllm

        vllm_gpu_memory_utilization = self.vllm_gpu_memory_utilization

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if beta is not UNSET:
            field_dict["beta"] = beta
        if epsilon is not UNSET:
            field_dict["epsilon"] = epsilon
        if epsilon_high is not UNSET:
            field_dict["epsilon_high"] = epsilon_high
        if importance_sampling_level is not UNSET:
            field_dict["importance_sampling_level"] = importance_sampling_level
        if loss_type is not UNSET:
            field_dict["loss_type"] = loss_type
        if mask_truncated_completions is not UNSET:
            field_dict["mask_truncated_completions"] = mask_truncated_completions
        if max_completion_length is not UNSET:
            field_dict["max_completion_length"] = max_completion_length
        if multi_objective_aggregation is not UNSET:
            field_dict["multi_objective_aggregation"] = multi_objective_aggregation
        if num_generations is not UNSET:
            field_dict["num_generations"] = num_generations
        if num_iterations is not UNSET:
            field_dict["num_iterations"] = num_iterations
        if samples_per_log is not UNSET:
            field_dict["samples_per_log"] = samples_per_log
        if save_name_if_new_basemodel is not UNSET:
            field_dict["save_name_if_new_basemodel"] = save_name_if_new_basemodel
        if scale_rewards is not UNSET:
            field_dict["scale_rewards"] = scale_rewards
        if temperature is not UNSET:
            field_dict["temperature"] = temperature
        if top_k is not UNSET:
            field_dict["top_k"] = top_k
        if top_p is not UNSET:
            field_dict["top_p"] = top_p
        if use_vllm is not UNSET:
            field_dict["use_vllm"] = use_vllm
        if vllm_gpu_memory_utilization is not UNSET:
            field_dict["vllm_gpu_memory_utilization"] = vllm_gpu_memory_utilization

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        beta = d.pop("beta", UNSET)

        epsilon = d.pop("epsilon", UNSET)

        def _parse_epsilon_high(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        epsilon_high = _parse_epsilon_high(d.pop("epsilon_high", UNSET))

        _importance_sampling_level = d.pop("importance_sampling_level", UNSET)
        importance_sampling_level: GRPOArgsImportanceSamplingLevel | Unset
        if isinstance(_importance_sampling_level, Unset):
            importance_sampling_level = UNSET
        else:
            importance_sampling_level = check_grpo_args_importance_sampling_level(_importance_sampling_level)

        _loss_type = d.pop("loss_type", UNSET)
        loss_type: GRPOArgsLossType | Unset
        if isinstance(_loss_type, Unset):
            loss_type = UNSET
        else:
            loss_type = check_grpo_args_loss_type(_loss_type)

        mask_truncated_completions = d.pop("mask_truncated_completions", UNSET)

        max_completion_length = d.pop("max_completion_length", UNSET)

        _multi_objective_aggregation = d.pop("multi_objective_aggregation", UNSET)
        multi_objective_aggregation: GRPOArgsMultiObjectiveAggregation | Unset
        if isinstance(_multi_objective_aggregation, Unset):
            multi_objective_aggregation = UNSET
        else:
            multi_objective_aggregation = check_grpo_args_multi_objective_aggregation(_multi_objective_aggregation)

        num_generations = d.pop("num_generations", UNSET)

        num_iterations = d.pop("num_iterations", UNSET)

        samples_per_log = d.pop("samples_per_log", UNSET)

        save_name_if_new_basemodel = d.pop("save_name_if_new_basemodel", UNSET)

        _scale_rewards = d.pop("scale_rewards", UNSET)
        scale_rewards: GRPOArgsScaleRewards | Unset
        if isinstance(_scale_rewards, Unset):
            scale_rewards = UNSET
        else:
            scale_rewards = check_grpo_args_scale_rewards(_scale_rewards)

        temperature = d.pop("temperature", UNSET)

        top_k = d.pop("top_k", UNSET)

        top_p = d.pop("top_p", UNSET)

        def _parse_use_vllm(data: object) -> bool | Literal["auto"] | Unset:
            if isinstance(data, Unset):
                return data
            use_vllm_type_1 = cast(Literal["auto"], data)
            if use_vllm_type_1 != "auto":
                raise ValueError(f"use_vllm_type_1 must match const 'auto', got '{use_vllm_type_1}'")
            return use_vllm_type_1
            return cast(bool | Literal["auto"] | Unset, data)

        use_vllm = _parse_use_vllm(d.pop("use_vllm", UNSET))

        vllm_gpu_memory_utilization = d.pop("vllm_gpu_memory_utilization", UNSET)

        grpo_args = cls(
            beta=beta,
            epsilon=epsilon,
            epsilon_high=epsilon_high,
            importance_sampling_level=importance_sampling_level,
            loss_type=loss_type,
            mask_truncated_completions=mask_truncated_completions,
            max_completion_length=max_completion_length,
            multi_objective_aggregation=multi_objective_aggregation,
            num_generations=num_generations,
            num_iterations=num_iterations,
            samples_per_log=samples_per_log,
            save_name_if_new_basemodel=save_name_if_new_basemodel,
            scale_rewards=scale_rewards,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            use_vllm=use_vllm,
            vllm_gpu_memory_utilization=vllm_gpu_memory_utilization,
        )

        return grpo_args
