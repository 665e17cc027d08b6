from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.determinism import Determinism, check_determinism
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.model_args import ModelArgs


T = TypeVar("T", bound="RunConf")


@_attrs_define
class RunConf:
    """
    Attributes:
        determinism (Determinism | Unset):
        final_checkpoint_name (str | Unset):  Default: 'checkpoint-final'.
        model (str | Unset): A local folder or a hub id. Default: '/local_resources/basemodel'.
        model_args (ModelArgs | Unset): Keyword arguments for ``AutoModelForCausalLM.from_pretrained``; other keys pass
            through unchanged.
        resume_from_checkpoint (bool | str | Unset): true/false, a checkpoint folder, or "auto": the last checkpoint in
            output_dir if there is one. Default: False.
        tokenizer (None | str | Unset): Defaults to `model`.
        use_fast_tokenizer (bool | Unset):  Default: True.
    """

    determinism: Determinism | Unset = UNSET
    final_checkpoint_name: str | Unset = "checkpoint-final"
    model: str | Unset = "/local_resources/basemodel"
    model_args: ModelArgs | Unset = UNSET
    resume_from_checkpoint: bool | str | Unset = False
    tokenizer: None | str | Unset = UNSET
    use_fast_tokenizer: bool | Unset = True

    def to_dict(self) -> dict[str, Any]:
        determinism: str | Unset = UNSET
        if not isinstance(self.determinism, Unset):
            determinism = self.determinism

        final_checkpoint_name = self.final_checkpoint_name

        model = self.model

        model_args: dict[str, Any] | Unset = UNSET
        if not isinstance(self.model_args, Unset):
            model_args = self.model_args.to_dict()

        resume_from_checkpoint: bool | str | Unset
        if isinstance(self.resume_from_checkpoint, Unset):
            resume_from_checkpoint = UNSET
        else:
            resume_from_checkpoint = self.resume_from_checkpoint

        tokenizer: None | str | Unset
        if isinstance(self.tokenizer, Unset):
            tokenizer = UNSET
        else:
            tokenizer = self.tokenizer

        use_fast_tokenizer = self.use_fast_tokenizer

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if determinism is not UNSET:
            field_dict["determinism"] = determinism
        if final_checkpoint_name is not UNSET:
            field_dict["final_checkpoint_name"] = final_checkpoint_name
        if model is not UNSET:
            field_dict["model"] = model
        if model_args is not UNSET:
            field_dict["model_args"] = model_args
        if resume_from_checkpoint is not UNSET:
            field_dict["resume_from_checkpoint"] = resume_from_checkpoint
        if tokenizer is not UNSET:
            field_dict["tokenizer"] = tokenizer
        if use_fast_tokenizer is not UNSET:
            field_dict["use_fast_tokenizer"] = use_fast_tokenizer

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.model_args import ModelArgs  # noqa: PLC0415

        d = dict(src_dict)
        _determinism = d.pop("determinism", UNSET)
        determinism: Determinism | Unset
        if isinstance(_determinism, Unset):
            determinism = UNSET
        else:
            determinism = check_determinism(_determinism)

        final_checkpoint_name = d.pop("final_checkpoint_name", UNSET)

        model = d.pop("model", UNSET)

        _model_args = d.pop("model_args", UNSET)
        model_args: ModelArgs | Unset
        if isinstance(_model_args, Unset):
            model_args = UNSET
        else:
            model_args = ModelArgs.from_dict(_model_args)

        def _parse_resume_from_checkpoint(data: object) -> bool | str | Unset:
            if isinstance(data, Unset):
                return data
            return cast(bool | str | Unset, data)

        resume_from_checkpoint = _parse_resume_from_checkpoint(d.pop("resume_from_checkpoint", UNSET))

        def _parse_tokenizer(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        tokenizer = _parse_tokenizer(d.pop("tokenizer", UNSET))

        use_fast_tokenizer = d.pop("use_fast_tokenizer", UNSET)

        run_conf = cls(
            determinism=determinism,
            final_checkpoint_name=final_checkpoint_name,
            model=model,
            model_args=model_args,
            resume_from_checkpoint=resume_from_checkpoint,
            tokenizer=tokenizer,
            use_fast_tokenizer=use_fast_tokenizer,
        )

        return run_conf
