from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.batchsize_conf import BatchsizeConf
    from ..models.bnb_quantization_conf import BnBQuantizationConf
    from ..models.data_conf import DataConf
    from ..models.dpo_training_args import DPOTrainingArgs
    from ..models.generic_peft_conf import GenericPeftConf
    from ..models.no_peft_conf import NoPeftConf
    from ..models.no_quantization_conf import NoQuantizationConf
    from ..models.overrides import Overrides
    from ..models.pretrained_peft_conf import PretrainedPeftConf
    from ..models.run_conf import RunConf
    from ..models.tracking_conf import TrackingConf


T = TypeVar("T", bound="DPOConfig")


@_attrs_define
class DPOConfig:
    """Preference optimization (``finetuning dpo config.yaml``); DPO knobs live in ``training_args``, and
    ``training_args.loss_type`` also selects the related methods (KTO, ORPO, SimPO/CPO).

        Attributes:
            batchsize_conf (BatchsizeConf):
            data_conf (DataConf):
            peft_conf (GenericPeftConf | NoPeftConf | PretrainedPeftConf):
            run_conf (RunConf):
            training_args (DPOTrainingArgs): ``trl.DPOConfig`` fields; the loss variant (sigmoid, ipo, hinge, ...) comes
                from ``loss_type``.
            method (Literal['dpo'] | Unset):  Default: 'dpo'.
            overrides (Overrides | Unset):
            quant_conf (BnBQuantizationConf | NoQuantizationConf | Unset):
            tracking (None | TrackingConf | Unset):
    """

    batchsize_conf: BatchsizeConf
    data_conf: DataConf
    peft_conf: GenericPeftConf | NoPeftConf | PretrainedPeftConf
    run_conf: RunConf
    training_args: DPOTrainingArgs
    method: Literal["dpo"] | Unset = "dpo"
    overrides: Overrides | Unset = UNSET
    quant_conf: BnBQuantizationConf | NoQuantizationConf | Unset = UNSET
    tracking: None | TrackingConf | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.no_peft_conf import NoPeftConf  # noqa: PLC0415
        from ..models.no_quantization_conf import NoQuantizationConf  # noqa: PLC0415
        from ..models.pretrained_peft_conf import PretrainedPeftConf  # noqa: PLC0415
        from ..models.tracking_conf import TrackingConf  # noqa: PLC0415

        batchsize_conf = self.batchsize_conf.to_dict()

        data_conf = self.data_conf.to_dict()

        peft_conf: dict[str, Any]
        if isinstance(self.peft_conf, NoPeftConf):
            peft_conf = self.peft_conf.to_dict()
        elif isinstance(self.peft_conf, PretrainedPeftConf):
            peft_conf = self.peft_conf.to_dict()
        else:
            peft_conf = self.peft_conf.to_dict()

        run_conf = self.run_conf.to_dict()

        training_args = self.training_args.to_dict()

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
                "peft_conf": peft_conf,
                "run_conf": run_conf,
                "training_args": training_args,
            }
        )
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
        from ..models.dpo_training_args import DPOTrainingArgs  # noqa: PLC0415
        from ..models.generic_peft_conf import GenericPeftConf  # noqa: PLC0415
        from ..models.no_peft_conf import NoPeftConf  # noqa: PLC0415
        from ..models.no_quantization_conf import NoQuantizationConf  # noqa: PLC0415
        from ..models.overrides import Overrides  # noqa: PLC0415
        from ..models.pretrained_peft_conf import PretrainedPeftConf  # noqa: PLC0415
        from ..models.run_conf import RunConf  # noqa: PLC0415
        from ..models.tracking_conf import TrackingConf  # noqa: PLC0415

        d = dict(src_dict)
        batchsize_conf = BatchsizeConf.from_dict(d.pop("batchsize_conf"))

        data_conf = DataConf.from_dict(d.pop("data_conf"))

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

        training_args = DPOTrainingArgs.from_dict(d.pop("training_args"))

        method = cast(Literal["dpo"] | Unset, d.pop("method", UNSET))
        if method != "dpo" and not isinstance(method, Unset):
            raise ValueError(f"method must match const 'dpo', got '{method}'")

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

        dpo_config = cls(
            batchsize_conf=batchsize_conf,
            data_conf=data_conf,
            peft_conf=peft_conf,
            run_conf=run_conf,
            training_args=training_args,
            method=method,
            overrides=overrides,
            quant_conf=quant_conf,
            tracking=tracking,
        )

        return dpo_config
