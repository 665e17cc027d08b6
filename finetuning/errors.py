"""Errors the engine reports to people and to the service: a code, a message that says what to do, a field path."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FinetuningError(Exception):
    """A failure the user can act on. ``param`` is the config path at fault (``run_conf.model``), if any."""

    message: str
    code: str = "invalid_request"
    param: str | None = None

    def __str__(self) -> str:
        return f"{self.param}: {self.message}" if self.param else self.message

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "param": self.param}


class ModelNotFoundError(FinetuningError):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(message, "model_not_found", param)


class UnsupportedHardwareError(FinetuningError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message, "unsupported_hardware", param)
