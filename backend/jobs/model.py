"""The job as clients see it: one JSON shape on every route that returns a job.

A job row in the store (`records`) becomes this shape here, and only here, so the event
stream, the webhooks, `GET /api/mv/jobs/{id}` and the 202 of an asynchronous request can
never disagree about a field.
"""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

JOBS_PATH = "/api/mv/jobs"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})
REUSABLE_KEY_STATUSES = frozenset({JobStatus.FAILED, JobStatus.CANCELED})
"""A job whose Idempotency-Key may start a new job."""


class Stage(StrEnum):
    QUEUED = "queued"
    SUBMITTING = "submitting"
    GENERATING = "generating"
    DOWNLOADING = "downloading"
    STORING = "storing"
    RENDERING = "rendering"
    DONE = "done"


class Progress(BaseModel):
    stage: str
    percent: int | None = Field(default=None, ge=0, le=100)
    detail: dict[str, Any] | None = None


class Delivery(BaseModel):
    event: str
    webhook_id: str
    attempts: int
    last_status: int | None
    delivered_at: str | None


class Webhook(BaseModel):
    url: str
    events: list[str]
    deliveries: list[Delivery]


class JobUrls(BaseModel):
    self: str
    events: str
    cancel: str


class Job(BaseModel):
    job_id: str
    kind: str
    status: JobStatus
    created_at: str
    started_at: str | None
    finished_at: str | None
    progress: Progress
    result: dict[str, Any] | None
    error: dict[str, Any] | None = Field(
        description="The error body the synchronous call would answer, plus its `status`"
    )
    cancel_requested: bool
    provider_job_id: str | None
    parent_job_id: str | None
    retry_of: str | None
    cost_usd: float | None
    webhook: Webhook | None
    urls: JobUrls


class JobList(BaseModel):
    jobs: list[Job]
    next_cursor: str | None


def iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def job_urls(job_id: str) -> JobUrls:
    own = f"{JOBS_PATH}/{job_id}"
    return JobUrls(self=own, events=f"{own}/events", cancel=f"{own}/cancel")
