"""HTTP routes: thin handlers that call ``api.services``."""

from fastapi import APIRouter

from api.routes import events, health, jobs, secrets, ui, webhooks

v1_router = APIRouter(prefix="/v1")
v1_router.include_router(jobs.router)
v1_router.include_router(events.router)
v1_router.include_router(secrets.router)
v1_router.include_router(webhooks.router)

__all__ = ["health", "ui", "v1_router"]
