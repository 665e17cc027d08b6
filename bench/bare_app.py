"""The benchmark's anchor: the least an HTTP job service can do per submission, on the same stack.

FastAPI, the token looked up by hash, a pydantic body, one SQLAlchemy INSERT and one Redis push, no more. The
service benchmark serves it next to the real API, in the same run, on the same body: the real routes are measured
as a ratio of it. Run as ``uvicorn --factory bench.bare_app:create_app`` with ``FINETUNING_DATABASE_URL`` and
``FINETUNING_BROKER_URL`` set.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any

import redis
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Column, MetaData, String, Table, create_engine, insert, select
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
bare_jobs = Table("bench_bare_jobs", metadata, Column("id", String(36), primary_key=True), Column("config", JSONB))
api_tokens = Table("api_tokens", MetaData(), Column("token_hash", String), Column("project", String))


class Body(BaseModel):
    model_config = ConfigDict(extra="allow")

    data_conf: dict[str, Any]
    training_args: dict[str, Any]
    batchsize_conf: dict[str, Any]
    peft_conf: dict[str, Any]
    run_conf: dict[str, Any]


def create_app() -> FastAPI:
    engine = create_engine(os.environ["FINETUNING_DATABASE_URL"], pool_size=10, max_overflow=0, pool_pre_ping=True)
    metadata.create_all(engine)
    queue = redis.Redis.from_url(os.environ["FINETUNING_BROKER_URL"])
    app = FastAPI()

    @app.post("/bare/jobs", status_code=201)
    def submit(body: Body, authorization: str = Header()) -> dict[str, str]:
        digest = hashlib.sha256(authorization.removeprefix("Bearer ").encode()).hexdigest()
        job_id = str(uuid.uuid4())
        with engine.begin() as connection:
            if connection.scalar(select(api_tokens.c.project).where(api_tokens.c.token_hash == digest)) is None:
                raise HTTPException(401)
            connection.execute(insert(bare_jobs).values(id=job_id, config=body.model_dump()))
        queue.lpush("bench-bare", job_id)
        return {"id": job_id, "status": "queued"}

    return app
