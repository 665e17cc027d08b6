from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.manifest_input_files import ManifestInputFiles


T = TypeVar("T", bound="ManifestInput")


@_attrs_define
class ManifestInput:
    """One file or folder the run read, as it was when the run read it.

    Attributes:
        param (str): The config location that names it, e.g. `data_conf.training_data.datasets[0].path`.
        value (str): What the config names: a path, a hub id, or the `s3://` URI.
        bytes_ (int | None | Unset):
        error (None | str | Unset): Why it could not be hashed, if it could not.
        files (ManifestInputFiles | None | Unset): A folder's files: name -> sha256, bytes.
        kind (None | str | Unset): `file`, `folder` or `hub` (a hub model, from the hub cache).
        path (None | str | Unset): Where the run read it (a bucket input: its local copy).
        revision (None | str | Unset): A hub model's commit.
        sha256 (None | str | Unset): A file's SHA-256; a folder's: SHA-256 over `<name>\\0<sha256>\\n` of each file,
            sorted by name (hidden files left out).
        uri (None | str | Unset): The bucket object or prefix it was downloaded from.
    """

    param: str
    value: str
    bytes_: int | None | Unset = UNSET
    error: None | str | Unset = UNSET
    files: ManifestInputFiles | None | Unset = UNSET
    kind: None | str | Unset = UNSET
    path: None | str | Unset = UNSET
    revision: None | str | Unset = UNSET
    sha256: None | str | Unset = UNSET
    uri: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.manifest_input_files import ManifestInputFiles  # noqa: PLC0415

        param = self.param

        value = self.value

        bytes_: int | None | Unset
        if isinstance(self.bytes_, Unset):
            bytes_ = UNSET
        else:
            bytes_ = self.bytes_

        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        files: dict[str, Any] | None | Unset
        if isinstance(self.files, Unset):
            files = UNSET
        elif isinstance(self.files, ManifestInputFiles):
            files = self.files.to_dict()
        else:
            files = self.files

        kind: None | str | Unset
        if isinstance(self.kind, Unset):
            kind = UNSET
        else:
            kind = self.kind

        path: None | str | Unset
        if isinstance(self.path, Unset):
            path = UNSET
        else:
            path = self.path

        revision: None | str | Unset
        if isinstance(self.revision, Unset):
            revision = UNSET
        else:
            revision = self.revision

        sha256: None | str | Unset
        if isinstance(self.sha256, Unset):
            sha256 = UNSET
        else:
            sha256 = self.sha256

        uri: None | str | Unset
        if isinstance(self.uri, Unset):
            uri = UNSET
        else:
            uri = self.uri

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "param": param,
                "value": value,
            }
        )
        if bytes_ is not UNSET:
            field_dict["bytes"] = bytes_
        if error is not UNSET:
            field_dict["error"] = error
        if files is not UNSET:
            field_dict["files"] = files
        if kind is not UNSET:
            field_dict["kind"] = kind
        if path is not UNSET:
            field_dict["path"] = path
        if revision is not UNSET:
            field_dict["revision"] = revision
        if sha256 is not UNSET:
            field_dict["sha256"] = sha256
        if uri is not UNSET:
            field_dict["uri"] = uri

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.manifest_input_files import ManifestInputFiles  # noqa: PLC0415

        d = dict(src_dict)
        param = d.pop("param")

        value = d.pop("value")

        def _parse_bytes_(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        bytes_ = _parse_bytes_(d.pop("bytes", UNSET))

        def _parse_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        error = _parse_error(d.pop("error", UNSET))

        def _parse_files(data: object) -> ManifestInputFiles | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                files_type_0 = ManifestInputFiles.from_dict(data)

                return files_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(ManifestInputFiles | None | Unset, data)

        files = _parse_files(d.pop("files", UNSET))

        def _parse_kind(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        kind = _parse_kind(d.pop("kind", UNSET))

        def _parse_path(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        path = _parse_path(d.pop("path", UNSET))

        def _parse_revision(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        revision = _parse_revision(d.pop("revision", UNSET))

        def _parse_sha256(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        sha256 = _parse_sha256(d.pop("sha256", UNSET))

        def _parse_uri(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        uri = _parse_uri(d.pop("uri", UNSET))

        manifest_input = cls(
            param=param,
            value=value,
            bytes_=bytes_,
            error=error,
            files=files,
            kind=kind,
            path=path,
            revision=revision,
            sha256=sha256,
            uri=uri,
        )

        manifest_input.additional_properties = d
        return manifest_input

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
