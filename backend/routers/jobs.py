"""The jobs endpoints: one job, the caller's jobs, cancel, and a job's events (SSE).

With `MV_API_KEYS` set a caller sees only its own jobs; another caller's job is a 404, as
an unknown one is.
"""

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from backend.api.dependencies import JobStoreDep
from backend.api.errors import ErrorResponse, error_responses
from backend.api.middleware import CALLER_STATE
from backend.jobs import engine
from backend.jobs.model import FINAL_STATUSES, JOBS_PATH, Job, JobList, JobStatus, Progress, Stage
from backend.jobs.records import JobStore
from backend.jobs.submission import JOB_ID_HEADER, canceled_document, job_answer
from backend.mv.errors import Conflict, NotFound, ValidationFailed
from backend.mv.providers import Provider

KEEP_ALIVE_SECONDS = 15.0

router = APIRouter(
    prefix=JOBS_PATH,
    tags=["jobs"],
    responses={"4XX": {"model": ErrorResponse, "description": "Client error, in the error shape"}},
)


def _owner(request: Request) -> str:
    return getattr(request.state, CALLER_STATE, "")


async def _own_row(jobs: JobStore, job_id: str, request: Request) -> Any:
    row = await jobs.run(jobs.records.get, job_id[:64])
    if row is None or row.owner != _owner(request):
        raise NotFound(f"No job with id {job_id[:64]!r}")
    return row


def _encode_cursor(created_at: float, job_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, job_id]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created_at, job_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(created_at), str(job_id)
    except (ValueError, TypeError, binascii.Error):
        raise ValidationFailed.about("cursor", "not a cursor this API gave") from None


@router.get(
    "",
    name="mv_list_jobs",
    response_model=JobList,
    summary="The caller's jobs, newest first",
    responses=error_responses(400, 401),
)
async def list_jobs(
    request: Request,
    jobs: JobStoreDep,
    status: Annotated[JobStatus | None, Query()] = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> JobList:
    """Filter by `status` and `kind`; pass `next_cursor` back as `cursor` for the next page."""
    before = _decode_cursor(cursor) if cursor is not None else None
    page = await jobs.run(
        jobs.records.list_jobs,
        _owner(request),
        status=status,
        kind=kind,
        limit=limit + 1,
        before=before,
    )
    next_cursor = _encode_cursor(*page[limit - 1][:2]) if len(page) > limit else None
    return JobList(jobs=[job for _, _, job in page[:limit]], next_cursor=next_cursor)


@router.get(
    "/{job_id}",
    name="mv_get_job",
    response_model=Job,
    summary="One job: status, progress, result or error",
    responses=error_responses(401, 404),
)
async def get_job(job_id: str, request: Request, jobs: JobStoreDep) -> JSONResponse:
    await _own_row(jobs, job_id, request)
    job = await jobs.run(jobs.records.job, job_id)
    return JSONResponse(job.model_dump(mode="json"), headers={JOB_ID_HEADER: job_id})


@router.post(
    "/{job_id}/cancel",
    name="mv_cancel_job",
    status_code=202,
    response_model=Job,
    summary="Cancel a queued or running job",
    responses=error_responses(401, 404, 409),
)
async def cancel_job(job_id: str, request: Request, jobs: JobStoreDep) -> JSONResponse:
    """A queued job is canceled at once; a running one stops within 2 s and its provider job
    is canceled where the provider allows it (Replicate; the Gemini Developer API cannot,
    and the job's `error.message` says so). A finished job is a 409."""
    row = await _own_row(jobs, job_id, request)
    if row.status in FINAL_STATUSES:
        raise Conflict(f"Job {job_id} already ended {row.status}")
    row = await jobs.run(jobs.records.request_cancel, job_id)
    await engine.cancel(job_id)
    if row is not None and row.status == JobStatus.RUNNING:
        cancellable = row.backend == Provider.REPLICATE and row.provider_job_id is not None
        await jobs.run(
            jobs.records.change,
            job_id,
            status=JobStatus.CANCELED,
            progress=Progress(stage=Stage.DONE),
            webhook_event=JobStatus.CANCELED,
            error=canceled_document(row.backend, upstream_canceled=cancellable),
        )
        if cancellable:
            await engine.cancel_upstream(job_id, row.backend, row.provider_job_id)
    final = await jobs.run(jobs.records.get, job_id)
    return job_answer(final, status_code=202)


@router.get(
    "/{job_id}/events",
    name="mv_job_events",
    summary="The job's progress as Server-Sent Events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "One `job` event per change"},
        **error_responses(401, 404),
    },
)
async def job_events(
    job_id: str,
    request: Request,
    jobs: JobStoreDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> StreamingResponse:
    """The first event is the job as it is now (or, with `Last-Event-ID`, every event after
    that one); then one per change; the stream ends after the final status. A comment
    line every 15 s keeps proxies from closing it."""
    await _own_row(jobs, job_id, request)
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else None
    signals = request.app.state.jobs_signals
    return StreamingResponse(
        _stream(jobs, signals, job_id, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", JOB_ID_HEADER: job_id},
    )


async def _stream(
    jobs: JobStore, signals: Any, job_id: str, after: int | None
) -> AsyncIterator[str]:
    """`after` None: the latest event first; otherwise every event after it. A job that has
    ended always gets its final event, even to a client that says it saw it."""
    with signals.follow(job_id) as follower:
        events = await jobs.run(jobs.records.events_after, job_id, after or 0)
        if after is None:
            events = events[-1:]
        idle = 0.0
        while True:
            for seq, data in events:
                yield _event(seq, data)
                after = seq
                if json.loads(data)["status"] in FINAL_STATUSES:
                    return
            if not events and (last := await jobs.run(jobs.records.last_event, job_id)):
                seq, data = last
                if json.loads(data)["status"] in FINAL_STATUSES:
                    yield _event(seq, data)
                    return
            started = asyncio.get_running_loop().time()
            await follower.changed()
            idle += asyncio.get_running_loop().time() - started
            events = await jobs.run(jobs.records.events_after, job_id, after or 0)
            if events:
                idle = 0.0
            elif idle >= KEEP_ALIVE_SECONDS:
                idle = 0.0
                yield ": keep-alive\n\n"


def _event(seq: int, data: str) -> str:
    return f"id: {seq}\nevent: job\ndata: {data}\n\n"
