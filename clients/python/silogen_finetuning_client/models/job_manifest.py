from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.job_kind import JobKind, check_job_kind
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.job_manifest_config import JobManifestConfig
    from ..models.job_manifest_determinism import JobManifestDeterminism
    from ..models.job_manifest_machine import JobManifestMachine
    from ..models.job_manifest_pins import JobManifestPins
    from ..models.job_manifest_resolved import JobManifestResolved
    from ..models.job_manifest_seeds import JobManifestSeeds
    from ..models.job_manifest_training_arguments import JobManifestTrainingArguments
    from ..models.job_manifest_versions import JobManifestVersions
    from ..models.manifest_input import ManifestInput


T = TypeVar("T", bound="JobManifest")


@_attrs_define
class JobManifest:
    """A job's reproducibility manifest: what its engine run recorded once its data and model were loaded.

    Attributes:
        config (JobManifestConfig): The config as run, in its YAML form, with every value the engine chose made concrete
            (seeds, a hub model's commit, `auto` values, the training arguments it picks for the machine). Secrets are
            masked.
        inputs (list[ManifestInput]):
        job_id (str):
        kind (JobKind):
        machine (JobManifestMachine): hostname, image (`FINETUNING_IMAGE`, `FINETUNING_IMAGE_REVISION`,
            `FINETUNING_IMAGE_DIGEST`), world_size, processes_per_node, cuda / hip / cudnn versions, gpu_count and gpus
            (name, memory, capability).
        method (str): sft, dpo or generate.
        pins (JobManifestPins): Config location -> the value made concrete in `config`.
        recorded_at (datetime.datetime):
        resolved (JobManifestResolved): What the engine computed: per-device batch sizes, accumulation, learning rate,
            output folder, the checkpoint resumed (generate: its generation config).
        seeds (JobManifestSeeds): Config location -> seed (training, data order, data mixing, split).
        versions (JobManifestVersions): Python, torch, transformers, trl, peft, accelerate, bitsandbytes, datasets, ...
            and silogen-finetuning; null when not installed.
        attempt (int | None | Unset): The run of the job that wrote it (the newest run's).
        determinism (JobManifestDeterminism | Unset):
        rerun_of (None | str | Unset): The job this one reruns (`POST /v1/jobs/{kind}?from_manifest=<id>`).
        training_arguments (JobManifestTrainingArguments | None | Unset): The trainer's arguments as it ran with them
            (sft, dpo).
        warnings (list[str] | Unset): Where the job's runs disagree (an input, a version or the machine changed between
            attempts), and where a rerun differs from the job it reruns.
    """

    config: JobManifestConfig
    inputs: list[ManifestInput]
    job_id: str
    kind: JobKind
    machine: JobManifestMachine
    method: str
    pins: JobManifestPins
    recorded_at: datetime.datetime
    resolved: JobManifestResolved
    seeds: JobManifestSeeds
    versions: JobManifestVersions
    attempt: int | None | Unset = UNSET
    determinism: JobManifestDeterminism | Unset = UNSET
    rerun_of: None | str | Unset = UNSET
    training_arguments: JobManifestTrainingArguments | None | Unset = UNSET
    warnings: list[str] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.job_manifest_training_arguments import JobManifestTrainingArguments  # noqa: PLC0415

        config = self.config.to_dict()

        inputs = []
        for inputs_item_data in self.inputs:
            inputs_item = inputs_item_data.to_dict()
            inputs.append(inputs_item)

        job_id = self.job_id

        kind: str = self.kind

        machine = self.machine.to_dict()

        method = self.method

        pins = self.pins.to_dict()

        recorded_at = self.recorded_at.isoformat()

        resolved = self.resolved.to_dict()

        seeds = self.seeds.to_dict()

        versions = self.versions.to_dict()

        attempt: int | None | Unset
        if isinstance(self.attempt, Unset):
            attempt = UNSET
        else:
            attempt = self.attempt

        determinism: dict[str, Any] | Unset = UNSET
        if not isinstance(self.determinism, Unset):
            determinism = self.determinism.to_dict()

        rerun_of: None | str | Unset
        if isinstance(self.rerun_of, Unset):
            rerun_of = UNSET
        else:
            rerun_of = self.rerun_of

        training_arguments: dict[str, Any] | None | Unset
        if isinstance(self.training_arguments, Unset):
            training_arguments = UNSET
        elif isinstance(self.training_arguments, JobManifestTrainingArguments):
            training_arguments = self.training_arguments.to_dict()
        else:
            training_arguments = self.training_arguments

        warnings: list[str] | Unset = UNSET
        if not isinstance(self.warnings, Unset):
            warnings = self.warnings

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "config": config,
                "inputs": inputs,
                "job_id": job_id,
                "kind": kind,
                "machine": machine,
                "method": method,
                "pins": pins,
                "recorded_at": recorded_at,
                "resolved": resolved,
                "seeds": seeds,
                "versions": versions,
            }
        )
        if attempt is not UNSET:
            field_dict["attempt"] = attempt
        if determinism is not UNSET:
            field_dict["determinism"] = determinism
        if rerun_of is not UNSET:
            field_dict["rerun_of"] = rerun_of
        if training_arguments is not UNSET:
            field_dict["training_arguments"] = training_arguments
        if warnings is not UNSET:
            field_dict["warnings"] = warnings

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.job_manifest_config import JobManifestConfig  # noqa: PLC0415
        from ..models.job_manifest_determinism import JobManifestDeterminism  # noqa: PLC0415
        from ..models.job_manifest_machine import JobManifestMachine  # noqa: PLC0415
        from ..models.job_manifest_pins import JobManifestPins  # noqa: PLC0415
        from ..models.job_manifest_resolved import JobManifestResolved  # noqa: PLC0415
        from ..models.job_manifest_seeds import JobManifestSeeds  # noqa: PLC0415
        from ..models.job_manifest_training_arguments import JobManifestTrainingArguments  # noqa: PLC0415
        from ..models.job_manifest_versions import JobManifestVersions  # noqa: PLC0415
        from ..models.manifest_input import ManifestInput  # noqa: PLC0415

        d = dict(src_dict)
        config = JobManifestConfig.from_dict(d.pop("config"))

        inputs = []
        _inputs = d.pop("inputs")
        for inputs_item_data in _inputs:
            inputs_item = ManifestInput.from_dict(inputs_item_data)

            inputs.append(inputs_item)

        job_id = d.pop("job_id")

        kind = check_job_kind(d.pop("kind"))

        machine = JobManifestMachine.from_dict(d.pop("machine"))

        method = d.pop("method")

        pins = JobManifestPins.from_dict(d.pop("pins"))

        recorded_at = datetime.datetime.fromisoformat(d.pop("recorded_at"))

        resolved = JobManifestResolved.from_dict(d.pop("resolved"))

        seeds = JobManifestSeeds.from_dict(d.pop("seeds"))

        versions = JobManifestVersions.from_dict(d.pop("versions"))

        def _parse_attempt(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        attempt = _parse_attempt(d.pop("attempt", UNSET))

        _determinism = d.pop("determinism", UNSET)
        determinism: JobManifestDeterminism | Unset
        if isinstance(_determinism, Unset):
            determinism = UNSET
        else:
            determinism = JobManifestDeterminism.from_dict(_determinism)

        def _parse_rerun_of(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        rerun_of = _parse_rerun_of(d.pop("rerun_of", UNSET))

        def _parse_training_arguments(data: object) -> JobManifestTrainingArguments | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                training_arguments_training_arguments = JobManifestTrainingArguments.from_dict(data)

                return training_arguments_training_arguments
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(JobManifestTrainingArguments | None | Unset, data)

        training_arguments = _parse_training_arguments(d.pop("training_arguments", UNSET))

        warnings = cast(list[str], d.pop("warnings", UNSET))

        job_manifest = cls(
            config=config,
            inputs=inputs,
            job_id=job_id,
            kind=kind,
            machine=machine,
            method=method,
            pins=pins,
            recorded_at=recorded_at,
            resolved=resolved,
            seeds=seeds,
            versions=versions,
            attempt=attempt,
            determinism=determinism,
            rerun_of=rerun_of,
            training_arguments=training_arguments,
            warnings=warnings,
        )

        job_manifest.additional_properties = d
        return job_manifest

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
