from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.webhook_event_type import WebhookEventType, check_webhook_event_type

T = TypeVar("T", bound="WebhookWithSecret")


@_attrs_define
class WebhookWithSecret:
    """
    Attributes:
        created_at (datetime.datetime):
        created_by (None | str): The API token (its name and first characters) that registered it.
        description (None | str):
        enabled (bool):
        event_types (list[WebhookEventType]):
        id (str):
        pending_deliveries (int): Deliveries waiting to be sent (or retried).
        previous_secret_expires_at (datetime.datetime | None): After a rotation, until when the previous secret also
            signs.
        secret (str): The signing secret (`whsec_` + base64): shown here once, never again. Verify each request's
            `webhook-signature` with it (Standard Webhooks).
        updated_at (datetime.datetime):
        url (str):
    """

    created_at: datetime.datetime
    created_by: None | str
    description: None | str
    enabled: bool
    event_types: list[WebhookEventType]
    id: str
    pending_deliveries: int
    previous_secret_expires_at: datetime.datetime | None
    secret: str
    updated_at: datetime.datetime
    url: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        created_at = self.created_at.isoformat()

        created_by: None | str
        created_by = self.created_by

        description: None | str
        description = self.description

        enabled = self.enabled

        event_types = []
        for event_types_item_data in self.event_types:
            event_types_item: str = event_types_item_data
            event_types.append(event_types_item)

        id = self.id

        pending_deliveries = self.pending_deliveries

        previous_secret_expires_at: None | str
        if isinstance(self.previous_secret_expires_at, datetime.datetime):
            previous_secret_expires_at = self.previous_secret_expires_at.isoformat()
        else:
            previous_secret_expires_at = self.previous_secret_expires_at

        secret = self.secret

        updated_at = self.updated_at.isoformat()

        url = self.url

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "created_at": created_at,
                "created_by": created_by,
                "description": description,
                "enabled": enabled,
                "event_types": event_types,
                "id": id,
                "pending_deliveries": pending_deliveries,
                "previous_secret_expires_at": previous_secret_expires_at,
                "secret": secret,
                "updated_at": updated_at,
                "url": url,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        def _parse_created_by(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        created_by = _parse_created_by(d.pop("created_by"))

        def _parse_description(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        description = _parse_description(d.pop("description"))

        enabled = d.pop("enabled")

        event_types = []
        _event_types = d.pop("event_types")
        for event_types_item_data in _event_types:
            event_types_item = check_webhook_event_type(event_types_item_data)

            event_types.append(event_types_item)

        id = d.pop("id")

        pending_deliveries = d.pop("pending_deliveries")

        def _parse_previous_secret_expires_at(data: object) -> datetime.datetime | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                previous_secret_expires_at_type_0 = datetime.datetime.fromisoformat(data)

                return previous_secret_expires_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None, data)

        previous_secret_expires_at = _parse_previous_secret_expires_at(d.pop("previous_secret_expires_at"))

        secret = d.pop("secret")

        updated_at = datetime.datetime.fromisoformat(d.pop("updated_at"))

        url = d.pop("url")

        webhook_with_secret = cls(
            created_at=created_at,
            created_by=created_by,
            description=description,
            enabled=enabled,
            event_types=event_types,
            id=id,
            pending_deliveries=pending_deliveries,
            previous_secret_expires_at=previous_secret_expires_at,
            secret=secret,
            updated_at=updated_at,
            url=url,
        )

        webhook_with_secret.additional_properties = d
        return webhook_with_secret

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
