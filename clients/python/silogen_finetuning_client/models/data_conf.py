from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..models.chat_template_name import ChatTemplateName, check_chat_template_name
from ..models.data_conf_padding_side import DataConfPaddingSide, check_data_conf_padding_side
from ..models.missing_pad_token_strategy import MissingPadTokenStrategy, check_missing_pad_token_strategy
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.auto_split_input import AutoSplitInput
    from ..models.concatenation_input import ConcatenationInput
    from ..models.none_input import NoneInput
    from ..models.weighted_mix_input import WeightedMixInput


T = TypeVar("T", bound="DataConf")


@_attrs_define
class DataConf:
    """
    Attributes:
        training_data (ConcatenationInput | WeightedMixInput):
        validation_data (AutoSplitInput | ConcatenationInput | NoneInput):
        chat_template_name (ChatTemplateName | Unset):
        max_bad_rows (int | Unset): Records that are not valid (not JSON, not a record of data_type, not renderable by
            the chat template) skipped across all data files before the run fails; 0 fails on the first one. Every bad row
            is named by file and line. Default: 0.
        missing_pad_token_strategy (MissingPadTokenStrategy | Unset):
        padding_side (DataConfPaddingSide | Unset):  Default: 'right'.
    """

    training_data: ConcatenationInput | WeightedMixInput
    validation_data: AutoSplitInput | ConcatenationInput | NoneInput
    chat_template_name: ChatTemplateName | Unset = UNSET
    max_bad_rows: int | Unset = 0
    missing_pad_token_strategy: MissingPadTokenStrategy | Unset = UNSET
    padding_side: DataConfPaddingSide | Unset = "right"

    def to_dict(self) -> dict[str, Any]:
        from ..models.auto_split_input import AutoSplitInput  # noqa: PLC0415
        from ..models.concatenation_input import ConcatenationInput  # noqa: PLC0415

        training_data: dict[str, Any]
        if isinstance(self.training_data, ConcatenationInput):
            training_data = self.training_data.to_dict()
        else:
            training_data = self.training_data.to_dict()

        validation_data: dict[str, Any]
        if isinstance(self.validation_data, ConcatenationInput):
            validation_data = self.validation_data.to_dict()
        elif isinstance(self.validation_data, AutoSplitInput):
            validation_data = self.validation_data.to_dict()
        else:
            validation_data = self.validation_data.to_dict()

        chat_template_name: str | Unset = UNSET
        if not isinstance(self.chat_template_name, Unset):
            chat_template_name = self.chat_template_name

        max_bad_rows = self.max_bad_rows

        missing_pad_token_strategy: str | Unset = UNSET
        if not isinstance(self.missing_pad_token_strategy, Unset):
            missing_pad_token_strategy = self.missing_pad_token_strategy

        padding_side: str | Unset = UNSET
        if not isinstance(self.padding_side, Unset):
            padding_side = self.padding_side

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "training_data": training_data,
                "validation_data": validation_data,
            }
        )
        if chat_template_name is not UNSET:
            field_dict["chat_template_name"] = chat_template_name
        if max_bad_rows is not UNSET:
            field_dict["max_bad_rows"] = max_bad_rows
        if missing_pad_token_strategy is not UNSET:
            field_dict["missing_pad_token_strategy"] = missing_pad_token_strategy
        if padding_side is not UNSET:
            field_dict["padding_side"] = padding_side

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.auto_split_input import AutoSplitInput  # noqa: PLC0415
        from ..models.concatenation_input import ConcatenationInput  # noqa: PLC0415
        from ..models.none_input import NoneInput  # noqa: PLC0415
        from ..models.weighted_mix_input import WeightedMixInput  # noqa: PLC0415

        d = dict(src_dict)

        def _parse_training_data(data: object) -> ConcatenationInput | WeightedMixInput:
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                training_data_type_0 = ConcatenationInput.from_dict(data)

                return training_data_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            if not isinstance(data, dict):
                raise TypeError()
            training_data_type_1 = WeightedMixInput.from_dict(data)

            return training_data_type_1

        training_data = _parse_training_data(d.pop("training_data"))

        def _parse_validation_data(data: object) -> AutoSplitInput | ConcatenationInput | NoneInput:
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                validation_data_type_0 = ConcatenationInput.from_dict(data)

                return validation_data_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                validation_data_type_1 = AutoSplitInput.from_dict(data)

                return validation_data_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            if not isinstance(data, dict):
                raise TypeError()
            validation_data_type_2 = NoneInput.from_dict(data)

            return validation_data_type_2

        validation_data = _parse_validation_data(d.pop("validation_data"))

        _chat_template_name = d.pop("chat_template_name", UNSET)
        chat_template_name: ChatTemplateName | Unset
        if isinstance(_chat_template_name, Unset):
            chat_template_name = UNSET
        else:
            chat_template_name = check_chat_template_name(_chat_template_name)

        max_bad_rows = d.pop("max_bad_rows", UNSET)

        _missing_pad_token_strategy = d.pop("missing_pad_token_strategy", UNSET)
        missing_pad_token_strategy: MissingPadTokenStrategy | Unset
        if isinstance(_missing_pad_token_strategy, Unset):
            missing_pad_token_strategy = UNSET
        else:
            missing_pad_token_strategy = check_missing_pad_token_strategy(_missing_pad_token_strategy)

        _padding_side = d.pop("padding_side", UNSET)
        padding_side: DataConfPaddingSide | Unset
        if isinstance(_padding_side, Unset):
            padding_side = UNSET
        else:
            padding_side = check_data_conf_padding_side(_padding_side)

        data_conf = cls(
            training_data=training_data,
            validation_data=validation_data,
            chat_template_name=chat_template_name,
            max_bad_rows=max_bad_rows,
            missing_pad_token_strategy=missing_pad_token_strategy,
            padding_side=padding_side,
        )

        return data_conf
