"""How a generation request becomes a job, and how the request is answered.

Everything a client can be refused for before money is at stake (400, 404, 413, 503
`SERVER_BUSY`, 507) is checked here, before the job exists, so an asynchronous request is
refused with its status rather than answered 202 and failed later. Then the job is written
(with its Idempotency-Key, atomically) and enqueued on its lane, and the request either
answers 202 at once (`Prefer: respond-async`) or waits for the job's end and answers as the
synchronous endpoint always has, with `X-Job-ID`.
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from backend.api.errors import error_response, job_error
from backend.jobs import engine
from backend.jobs.kinds import KINDS, lanes
from backend.jobs.model import FINAL_STATUSES, JobStatus
from backend.jobs.records import (
    IdempotencyClaim,
    JobStore,
    NewJob,
    job_from_row,
    stored_headers,
)
from backend.jobs.signals import JobSignals
from backend.jobs.webhooks.targets import (
    WebhookFields,
    check_webhook_fields,
    effective_webhook_events,
)
from backend.logging_setup import request_id_var
from backend.mv.errors import ClientClosedRequest, Conflict, ServerBusy, ValidationFailed
from backend.mv.idempotency import MAX_KEY_LENGTH, key_sha256, request_fingerprint
from backend.mv.providers import Provider
from backend.mv.thread_pools import DECODING

logger = logging.getLogger(__name__)

JOB_ID_HEADER = "X-Job-ID"
RESPOND_ASYNC = "respond-async"
SHUTDOWN_RETRY_AFTER_SECONDS = 10
WEBHOOK_FIELDS = ("webhook_url", "webhook_events")


def wants_async(prefer: str | None) -> bool:
    """`Prefer: respond-async` (RFC 7240), among other preferences or alone."""
    if not prefer:
        return False
    return any(part.split(";")[0].strip().lower() == RESPOND_ASYNC for part in prefer.split(","))


def _check_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        message = f"must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        raise ValidationFailed.about("Idempotency-Key", message)


def job_answer(row: Any, status_code: int = 202) -> JSONResponse:
    job = job_from_row(row)
    return JSONResponse(
        job.model_dump(mode="json"),
        status_code=status_code,
        headers={JOB_ID_HEADER: row.job_id},
    )


def canceled_document(backend: str | None, upstream_canceled: bool) -> dict[str, Any]:
    """A canceled job's `error`: what happened to its provider job, said plainly."""
    if backend == Provider.GEMINI:
        message = (
            "The job was canceled. The Gemini Developer API cannot cancel a running "
            "operation: it may still finish, and be billed, upstream."
        )
    elif upstream_canceled:
        message = "The job was canceled, and its provider job with it."
    else:
        message = "The job was canceled before any provider job was started."
    return job_error(Conflict(message, backend=backend))


def final_answer(row: Any) -> JSONResponse:
    """The synchronous answer of a finished job: its result, or its error as the
    endpoint would have answered it (this request's id in it)."""
    headers = {JOB_ID_HEADER: row.job_id}
    job = job_from_row(row)
    if job.status == JobStatus.SUCCEEDED and job.result is not None:
        return JSONResponse(job.result, headers=headers)
    error = dict(job.error or canceled_document(row.backend, upstream_canceled=False))
    status = int(error.pop("status", 500))
    error["request_id"] = request_id_var.get()
    headers.update(stored_headers(row))
    return JSONResponse(error, status_code=status, headers=headers)


@dataclass
class Submission:
    """One generation request on its way to becoming a job."""

    http_request: Request
    runtime: Any
    jobs: JobStore
    signals: JobSignals
    owner: str
    key: str | None
    respond_async: bool
    shutdown: Any

    async def submit(self, kind_name: str, request: BaseModel) -> Response:
        kind = KINDS[kind_name]
        runtime = self.runtime
        await kind.check(request, runtime)
        webhook_events = await self._accept_webhook(request)
        await runtime.store.check_writable(runtime.settings.mv_min_free_bytes)
        lane = kind.lane(request, runtime)
        await self._admit(lane)
        body = await DECODING.run(lambda: request.model_dump(mode="json"))
        fingerprint = await DECODING.run(request_fingerprint, body)
        claim = None
        if self.key is not None:
            _check_key(self.key)
            claim = IdempotencyClaim(self.owner, kind_name, key_sha256(self.key))
        new = NewJob(
            kind=kind_name,
            owner=self.owner,
            lane=lane,
            request=body,
            request_sha256=fingerprint,
            request_id=request_id_var.get(),
            backend=kind.backend(request, runtime),
            webhook_url=getattr(request, "webhook_url", None),
            webhook_events=webhook_events,
        )
        submitted = await self.jobs.run(self.jobs.records.submit, new, claim)
        row = submitted.row
        if not submitted.created and row.request_sha256 != fingerprint:
            raise Conflict("This Idempotency-Key was already used with a different request body")
        if submitted.created:
            await engine.enqueue(row.job_id, lane)
        if self.respond_async:
            answer = job_answer(row)
            answer.headers["Location"] = job_from_row(row).urls.self
            answer.headers["Preference-Applied"] = RESPOND_ASYNC
            return answer
        return await self._wait(row.job_id, keyed=claim is not None)

    async def _accept_webhook(self, request: BaseModel) -> list[str] | None:
        """The events to deliver, or None without a webhook; 400 for a target or a server
        that cannot take one."""
        if not isinstance(request, WebhookFields) or request.webhook_url is None:
            return None
        settings = self.runtime.settings
        await check_webhook_fields(
            request,
            secret_configured=bool(settings.mv_webhook_secret),
            allow_private=settings.mv_webhook_allow_private,
        )
        return list(effective_webhook_events(request.webhook_events))

    async def _admit(self, lane: str) -> None:
        """At most `cap + MV_MAX_QUEUED_GENERATIONS` jobs of a lane unfinished at once."""
        unfinished = await self.jobs.run(self.jobs.records.unfinished_in_lane, lane)
        limit = lanes(self.runtime)[lane] + self.runtime.settings.mv_max_queued_generations
        if unfinished >= limit:
            raise ServerBusy(
                f"The {lane} queue is full ({unfinished} jobs waiting or running); "
                "try again shortly"
            )

    async def _wait(self, job_id: str, *, keyed: bool) -> Response:
        """Until the job ends. A client that leaves while its unkeyed job still waits for
        a slot has the job canceled (nobody could collect it); a job already running goes
        on, found later by its id or its key."""
        departed = asyncio.ensure_future(self._departure())
        try:
            with self.signals.follow(job_id) as follower:
                while True:
                    row = await self.jobs.run(self.jobs.records.get, job_id)
                    if row.status in FINAL_STATUSES:
                        return final_answer(row)
                    if departed.done():
                        return await self._client_left(row, keyed=keyed)
                    if self.shutdown.grace_over():
                        return self._shutting_down(job_id)
                    waiting = asyncio.ensure_future(follower.changed())
                    await asyncio.wait({waiting, departed}, return_when=asyncio.FIRST_COMPLETED)
                    waiting.cancel()
        finally:
            departed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await departed

    async def _departure(self) -> None:
        while (await self.http_request.receive())["type"] != "http.disconnect":
            pass

    async def _client_left(self, row: Any, *, keyed: bool) -> JSONResponse:
        """The answer nobody will read (logged as a 499), after deciding the job's fate."""
        if row.status == JobStatus.QUEUED and not keyed:
            logger.info("client left while job %s waited for a slot; dropped unpaid", row.job_id)
            await self.jobs.run(self.jobs.records.request_cancel, row.job_id)
            await engine.cancel(row.job_id)
        else:
            logger.info("client left; job %s goes on", row.job_id)
        answer = error_response(ClientClosedRequest("The client left before the job ended"))
        answer.headers[JOB_ID_HEADER] = row.job_id
        return answer

    def _shutting_down(self, job_id: str) -> JSONResponse:
        error = ServerBusy(
            "The server is restarting; the job goes on after the restart: follow it with "
            f"GET /api/mv/jobs/{job_id}",
            retry_after_seconds=SHUTDOWN_RETRY_AFTER_SECONDS,
        )
        answer = error_response(error)
        answer.headers[JOB_ID_HEADER] = job_id
        return answer


class Shutdown:
    """When the server began to stop, so that waiting requests answer before the grace
    period ends instead of being cut off."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.began_at: float | None = None

    def begin(self) -> None:
        if self.began_at is None:
            self.began_at = time.monotonic()

    def grace_over(self, margin_seconds: float = 1.0) -> bool:
        if self.began_at is None:
            return False
        return time.monotonic() - self.began_at >= self.grace_seconds - margin_seconds

    def remaining(self) -> float:
        if self.began_at is None:
            return self.grace_seconds
        return max(0.0, self.grace_seconds - (time.monotonic() - self.began_at))
