from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="TrackingConf")


@_attrs_define
class TrackingConf:
    """
    Attributes:
        experiment_name (str | Unset):  Default: 'default'.
        hf_mlflow_log_artifacts (str | Unset): "True" or "1" copies checkpoints to MLflow. Default: 'False'.
        mlflow_server_uri (None | str | Unset): Tracking URI, e.g. "file:///home/me/mlruns", "sqlite:///mlflow.db" or
            "http://mlflow:5000". Empty or null: the config does not set up MLflow.
    """

    experiment_name: str | Unset = "default"
    hf_mlflow_log_artifacts: str | Unset = "False"
    mlflow_server_uri: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        experiment_name = self.experiment_name

        hf_mlflow_log_artifacts = self.hf_mlflow_log_artifacts

        mlflow_server_uri: None | str | Unset
        if isinstance(self.mlflow_server_uri, Unset):
            mlflow_server_uri = UNSET
        else:
            mlflow_server_uri = self.mlflow_server_uri

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if experiment_name is not UNSET:
            field_dict["experiment_name"] = experiment_name
        if hf_mlflow_log_artifacts is not UNSET:
            field_dict["hf_mlflow_log_artifacts"] = hf_mlflow_log_artifacts
        if mlflow_server_uri is not UNSET:
            field_dict["mlflow_server_uri"] = mlflow_server_uri

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        experiment_name = d.pop("experiment_name", UNSET)

        hf_mlflow_log_artifacts = d.pop("hf_mlflow_log_artifacts", UNSET)

        def _parse_mlflow_server_uri(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        mlflow_server_uri = _parse_mlflow_server_uri(d.pop("mlflow_server_uri", UNSET))

        tracking_conf = cls(
            experiment_name=experiment_name,
            hf_mlflow_log_artifacts=hf_mlflow_log_artifacts,
            mlflow_server_uri=mlflow_server_uri,
        )

        return tracking_conf
