from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.batchsize_conf import BatchsizeConf
    from ..models.bnb_quantization_conf import BnBQuantizationConf
    from ..models.data_conf import DataConf
    from ..models.generic_peft_conf import GenericPeftConf
    from ..models.grpo_args import GRPOArgs
    from ..models.grpo_training_args import GRPOTrainingArgs
    from ..models.json_schema_grader import JsonSchemaGrader
    from ..models.length_grader import LengthGrader
    from ..models.multi_grader import MultiGrader
    from ..models.no_peft_conf import NoPeftConf
    from ..models.no_quantization_conf import NoQuantizationConf
    from ..models.number_match_grader import NumberMatchGrader
    from ..models.overrides import Overrides
    from ..models.pretrained_peft_conf import PretrainedPeftConf
    from ..models.run_conf import RunConf
    from ..models.string_check_grader import StringCheckGrader
    from ..models.text_similarity_grader import TextSimilarityGrader
    from ..models.tracking_conf import TrackingConf


T = TypeVar("T", bound="GRPOConfig")


@_attrs_define
class GRPOConfig:
    """Reinforcement finetuning with GRPO (``finetuning grpo config.yaml``): for each prompt of the data the model
    samples ``grpo_args.num_generations`` answers, the built-in ``graders`` score each one, and the model learns from
    how each answer scored against the others for its prompt. Data rows hold ``messages`` (the prompt, rendered with
    ``data_conf.chat_template_name``) and any reference fields the graders read (``{{item.FIELD}}``).

        Attributes:
            batchsize_conf (BatchsizeConf):
            data_conf (DataConf):
            graders (list[JsonSchemaGrader | LengthGrader | MultiGrader | NumberMatchGrader | StringCheckGrader |
                TextSimilarityGrader]): How each answer is scored: the run's reward is the weighted sum (graders[].weight) of
                these graders' rewards, each in [0, 1].
            peft_conf (GenericPeftConf | NoPeftConf | PretrainedPeftConf):
            run_conf (RunConf):
            training_args (GRPOTrainingArgs): ``transformers.TrainingArguments`` for GRPO, with TRL's GRPO defaults
                (learning rate 1e-6, a log every 10
                steps, bf16 where the device has it). Batch sizes count completions: ``batchsize_conf.total_train_batch_size``
                completions per optimizer step, i.e. total / ``grpo_args.num_generations`` prompts.
            grpo_args (GRPOArgs | Unset): How GRPO samples and scores: ``num_generations`` completions per prompt, each
                graded by ``graders``; a
                completion's advantage is its reward against the others of its prompt. Fields of ``trl.GRPOConfig``.
            method (Literal['grpo'] | Unset):  Default: 'grpo'.
            overrides (Overrides | Unset):
            quant_conf (BnBQuantizationConf | NoQuantizationConf | Unset):
            tracking (None | TrackingConf | Unset):
    """

    batchsize_conf: BatchsizeConf
    data_conf: DataConf
    graders: list[
        JsonSchemaGrader | LengthGrader | MultiGrader | NumberMatchGrader | StringCheckGrader | TextSimilarityGrader
    ]
    peft_conf: GenericPeftConf | NoPeftConf | PretrainedPeftConf
    run_conf: RunConf
    training_args: GRPOTrainingArgs
    grpo_args: GRPOArgs | Unset = UNSET
    method: Literal["grpo"] | Unset = "grpo"
    overrides: Overrides | Unset = UNSET
    quant_conf: BnBQuantizationConf | NoQuantizationConf | Unset = UNSET
    tracking: None | TrackingConf | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.json_schema_grader import JsonSchemaGrader  # noqa: PLC0415
        from ..models.length_grader import LengthGrader  # noqa: PLC0415
        from ..models.no_peft_conf import NoPeftConf  # noqa: PLC0415
        from ..models.no_quantization_conf import NoQuantizationConf  # noqa: PLC0415
        from ..models.number_match_grader import NumberMatchGrader  # noqa: PLC0415
        from ..models.pretrained_peft_conf import PretrainedPeftConf  # noqa: PLC0415
        from ..models.string_check_grader import StringCheckGrader  # noqa: PLC0415
        from ..models.text_similarity_grader import TextSimilarityGrader  # noqa: PLC0415
        from ..models.tracking_conf import TrackingConf  # noqa: PLC0415

        batchsize_conf = self.batchsize_conf.to_dict()

        data_conf = self.data_conf.to_dict()

        graders = []
        for graders_item_data in self.graders:
            graders_item: dict[str, Any]
            if isinstance(graders_item_data, StringCheckGrader):
                graders_item = graders_item_data.to_dict()
            elif isinstance(graders_item_data, NumberMatchGrader):
                graders_item = graders_item_data.to_dict()
            elif isinstance(graders_item_data, JsonSchemaGrader):
                graders_item = graders_item_data.to_dict()
            elif isinstance(graders_item_data, TextSimilarityGrader):
                graders_item = graders_item_data.to_dict()
            elif isinstance(graders_item_data, LengthGrader):
                graders_item = graders_item_data.to_dict()
            else:
                graders_item = graders_item_data.to_dict()

            graders.append(graders_item)

        peft_conf: dict[str, Any]
        if isinstance(self.peft_conf, NoPeftConf):
            peft_conf = self.peft_conf.to_dict()
        elif isinstance(self.peft_conf, PretrainedPeftConf):
            peft_conf = self.peft_conf.to_dict()
        else:
            peft_conf = self.peft_conf.to_dict()

        run_conf = self.run_conf.to_dict()

        training_args = self.training_args.to_dict()

        grpo_args: dict[str, Any] | Unset = UNSET
        if not isinstance(self.grpo_args, Unset):
            grpo_args = self.grpo_args.to_dict()

        method = self.method

        overrides: dict[str, Any] | Unset = UNSET
        if not isinstance(self.overrides, Unset):
            overrides = self.overrides.to_dict()

        quant_conf: dict[str, Any] | Unset
        if isinstance(self.quant_conf, Unset):
            quant_conf = UNSET
        elif isinstance(self.quant_conf, NoQuantizationConf):
            quant_conf = self.quant_conf.to_dict()
        else:
            quant_conf = self.quant_conf.to_dict()

        tracking: dict[str, Any] | None | Unset
        if isinstance(self.tracking, Unset):
            tracking = UNSET
        elif isinstance(self.tracking, TrackingConf):
            tracking = self.tracking.to_dict()
        else:
            tracking = self.tracking

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "batchsize_conf": batchsize_conf,
                "data_conf": data_conf,
                "graders": graders,
                "peft_conf": peft_conf,
                "run_conf": run_conf,
                "training_args": training_args,
            }
        )
        if grpo_args is not UNSET:
            field_dict["grpo_args"] = grpo_args
        if method is not UNSET:
            field_dict["method"] = method
        if overrides is not UNSET:
            field_dict["overrides"] = overrides
        if quant_conf is not UNSET:
            field_dict["quant_conf"] = quant_conf
        if tracking is not UNSET:
            field_dict["tracking"] = tracking

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.batchsize_conf import BatchsizeConf  # noqa: PLC0415
        from ..models.bnb_quantization_conf import BnBQuantizationConf  # noqa: PLC0415
        from ..models.data_conf import DataConf  # noqa: PLC0415
        from ..models.generic_peft_conf import GenericPeftConf  # noqa: PLC0415
        from ..models.grpo_args import GRPOArgs  # noqa: PLC0415
        from ..models.grpo_training_args import GRPOTrainingArgs  # noqa: PLC0415
        from ..models.json_schema_grader import JsonSchemaGrader  # noqa: PLC0415
        from ..models.length_grader import LengthGrader  # noqa: PLC0415
        from ..models.multi_grader import MultiGrader  # noqa: PLC0415
        from ..models.no_peft_conf import NoPeftConf  # noqa: PLC0415
        from ..models.no_quantization_conf import NoQuantizationConf  # noqa: PLC0415
        from ..models.number_match_grader import NumberMatchGrader  # noqa: PLC0415
        from ..models.overrides import Overrides  # noqa: PLC0415
        from ..models.pretrained_peft_conf import PretrainedPeftConf  # noqa: PLC0415
        from ..models.run_conf import RunConf  # noqa: PLC0415
        from ..models.string_check_grader import StringCheckGrader  # noqa: PLC0415
        from ..models.text_similarity_grader import TextSimilarityGrader  # noqa: PLC0415
        from ..models.tracking_conf import TrackingConf  # noqa: PLC0415

        d = dict(src_dict)
        batchsize_conf = BatchsizeConf.from_dict(d.pop("batchsize_conf"))

        data_conf = DataConf.from_dict(d.pop("data_conf"))

        graders = []
        _graders = d.pop("graders")
        for graders_item_data in _graders:

            def _parse_graders_item(
                data: object,
            ) -> (
                JsonSchemaGrader
                | LengthGrader
                | MultiGrader
                | NumberMatchGrader
                | StringCheckGrader
                | TextSimilarityGrader
            ):
                try:
                    if not isinstance(data, dict):
                        raise TypeError()
                    graders_item_type_0 = StringCheckGrader.from_dict(data)

                    return graders_item_type_0
                except (TypeError, ValueError, AttributeError, KeyError):
                    pass
                try:
                    if not isinstance(data, dict):
                        raise TypeError()
                    graders_item_type_1 = NumberMatchGrader.from_dict(data)

                    return graders_item_type_1
                except (TypeError, ValueError, AttributeError, KeyError):
                    pass
                try:
                    if not isinstance(data, dict):
                        raise TypeError()
                    graders_item_type_2 = JsonSchemaGrader.from_dict(data)

                    return graders_item_type_2
                except (TypeError, ValueError, AttributeError, KeyError):
                    pass
                try:
                    if not isinstance(data, dict):
                        raise TypeError()
                    graders_item_type_3 = TextSimilarityGrader.from_dict(data)

                    return graders_item_type_3
                except (TypeError, ValueError, AttributeError, KeyError):
                    pass
                try:
                    if not isinstance(data, dict):
                        raise TypeError()
                    graders_item_type_4 = LengthGrader.from_dict(data)

                    return graders_item_type_4
                except (TypeError, ValueError, AttributeError, KeyError):
                    pass
                if not isinstance(data, dict):
                    raise TypeError()
                graders_item_type_5 = MultiGrader.from_dict(data)

                return graders_item_type_5

            graders_item = _parse_graders_item(graders_item_data)

            graders.append(graders_item)

        def _parse_peft_conf(data: object) -> GenericPeftConf | NoPeftConf | PretrainedPeftConf:
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                peft_conf_type_0 = NoPeftConf.from_dict(data)

                return peft_conf_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                peft_conf_type_1 = PretrainedPeftConf.from_dict(data)

                return peft_conf_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            if not isinstance(data, dict):
                raise TypeError()
            peft_conf_type_2 = GenericPeftConf.from_dict(data)

            return peft_conf_type_2

        peft_conf = _parse_peft_conf(d.pop("peft_conf"))

        run_conf = RunConf.from_dict(d.pop("run_conf"))

        training_args = GRPOTrainingArgs.from_dict(d.pop("training_args"))

        _grpo_args = d.pop("grpo_args", UNSET)
        grpo_args: GRPOArgs | Unset
        if isinstance(_grpo_args, Unset):
            grpo_args = UNSET
        else:
            grpo_args = GRPOArgs.from_dict(_grpo_args)

        method = cast(Literal["grpo"] | Unset, d.pop("method", UNSET))
        if method != "grpo" and not isinstance(method, Unset):
            raise ValueError(f"method must match const 'grpo', got '{method}'")

        _overrides = d.pop("overrides", UNSET)
        overrides: Overrides | Unset
        if isinstance(_overrides, Unset):
            overrides = UNSET
        else:
            overrides = Overrides.from_dict(_overrides)

        def _parse_quant_conf(data: object) -> BnBQuantizationConf | NoQuantizationConf | Unset:
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                quant_conf_type_0 = NoQuantizationConf.from_dict(data)

                return quant_conf_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            if not isinstance(data, dict):
                raise TypeError()
            quant_conf_type_1 = BnBQuantizationConf.from_dict(data)

            return quant_conf_type_1

        quant_conf = _parse_quant_conf(d.pop("quant_conf", UNSET))

        def _parse_tracking(data: object) -> None | TrackingConf | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                tracking_type_0 = TrackingConf.from_dict(data)

                return tracking_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | TrackingConf | Unset, data)

        tracking = _parse_tracking(d.pop("tracking", UNSET))

        grpo_config = cls(
            batchsize_conf=batchsize_conf,
            data_conf=data_conf,
            graders=graders,
            peft_conf=peft_conf,
            run_conf=run_conf,
            training_args=training_args,
            grpo_args=grpo_args,
            method=method,
            overrides=overrides,
            quant_conf=quant_conf,
            tracking=tracking,
        )

        return grpo_config
