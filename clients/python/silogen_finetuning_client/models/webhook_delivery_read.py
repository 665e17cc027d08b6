from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.webhook_attempt_read import WebhookAttemptRead
    from ..models.webhook_delivery_read_payload import WebhookDeliveryReadPayload


T = TypeVar("T", bound="WebhookDeliveryRead")


@_attrs_define
class WebhookDeliveryRead:
    """
    Attributes:
        attempts (list[WebhookAttemptRead]): Every attempt, oldest first.
        created_at (datetime.datetime):
        delivered_at (datetime.datetime | None):
        event_type (str):
        give_up_at (datetime.datetime | None): Retried until then (set by the first attempt).
        id (str): The message id, sent as `webhook-id` on every attempt (deduplicate on it).
        job_id (None | str):
        next_attempt_at (datetime.datetime | None): When a pending delivery is tried next (null: at once).
        payload (WebhookDeliveryReadPayload): The message, as sent.
        status (str): pending (being sent or waiting for a retry), succeeded or failed (given up).
    """

    attempts: list[WebhookAttemptRead]
    created_at: datetime.datetime
    delivered_at: datetime.datetime | None
    event_type: str
    give_up_at: datetime.datetime | None
    id: str
    job_id: None | str
    next_attempt_at: datetime.datetime | None
    payload: WebhookDeliveryReadPayload
    status: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        attempts = []
        for attempts_item_data in self.attempts:
            attempts_item = attempts_item_data.to_dict()
            attempts.append(attempts_item)

        created_at = self.created_at.isoformat()

        delivered_at: None | str
        if isinstance(self.delivered_at, datetime.datetime):
            delivered_at = self.delivered_at.isoformat()
        else:
            delivered_at = self.delivered_at

        event_type = self.event_type

        give_up_at: None | str
        if isinstance(self.give_up_at, datetime.datetime):
            give_up_at = self.give_up_at.isoformat()
        else:
            give_up_at = self.give_up_at

        id = self.id

        job_id: None | str
        job_id = self.job_id

        next_attempt_at: None | str
        if isinstance(self.next_attempt_at, datetime.datetime):
            next_attempt_at = self.next_attempt_at.isoformat()
        else:
            next_attempt_at = self.next_attempt_at

        payload = self.payload.to_dict()

        status = self.status

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "attempts": attempts,
                "created_at": created_at,
                "delivered_at": delivered_at,
                "event_type": event_type,
                "give_up_at": give_up_at,
                "id": id,
                "job_id": job_id,
                "next_attempt_at": next_attempt_at,
                "payload": payload,
                "status": status,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.webhook_attempt_read import WebhookAttemptRead  # noqa: PLC0415
        from ..models.webhook_delivery_read_payload import WebhookDeliveryReadPayload  # noqa: PLC0415

        d = dict(src_dict)
        attempts = []
        _attempts = d.pop("attempts")
        for attempts_item_data in _attempts:
            attempts_item = WebhookAttemptRead.from_dict(attempts_item_data)

            attempts.append(attempts_item)

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        def _parse_delivered_at(data: object) -> datetime.datetime | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                delivered_at_type_0 = datetime.datetime.fromisoformat(data)

                return delivered_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None, data)

        delivered_at = _parse_delivered_at(d.pop("delivered_at"))

        event_type = d.pop("event_type")

        def _parse_give_up_at(data: object) -> datetime.datetime | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                give_up_at_type_0 = datetime.datetime.fromisoformat(data)

                return give_up_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None, data)

        give_up_at = _parse_give_up_at(d.pop("give_up_at"))

        id = d.pop("id")

        def _parse_job_id(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        job_id = _parse_job_id(d.pop("job_id"))

        def _parse_next_attempt_at(data: object) -> datetime.datetime | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                next_attempt_at_type_0 = datetime.datetime.fromisoformat(data)

                return next_attempt_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None, data)

        next_attempt_at = _parse_next_attempt_at(d.pop("next_attempt_at"))

        payload = WebhookDeliveryReadPayload.from_dict(d.pop("payload"))

        status = d.pop("status")

        webhook_delivery_read = cls(
            attempts=attempts,
            created_at=created_at,
            delivered_at=delivered_at,
            event_type=event_type,
            give_up_at=give_up_at,
            id=id,
            job_id=job_id,
            next_attempt_at=next_attempt_at,
            payload=payload,
            status=status,
        )

        webhook_delivery_read.additional_properties = d
        return webhook_delivery_read

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
