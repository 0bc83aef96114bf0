"""The DBOS side of jobs: its lifecycle, one queue per lane, and the job workflow.

A job is one DBOS workflow (its id is the job id) of two checkpointed steps: `begin` (the
job is running) and `run` (the generation, start to stored result, ending in the job's
final state). Polling a provider job happens inside `run`, never as a step per poll. The
provider's job id is written to the job store by the tracker the moment the create call
answers, so the only window in which a crash can make a second provider job is between
that answer and that one write; a later attempt of `run` finds the id and polls it.

DBOS recovers workflows by their registered names, so the workflow functions are module
level and reach the service's collaborators through `_context`, set by `JobEngine.start`.
There is one engine per process (a DBOS instance is a process singleton).
"""

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dbos import DBOS, SetWorkflowID

from backend.api.errors import job_error
from backend.config import Settings
from backend.jobs.database import create_engine, database_url, one_process
from backend.jobs.kinds import KINDS, JobRun, lanes
from backend.jobs.model import JobStatus, Progress, Stage
from backend.jobs.outbox import WebhookOutbox
from backend.jobs.records import JobRecords, JobStore
from backend.jobs.signals import JobSignals
from backend.jobs.tracker import JobTracker
from backend.jobs.webhooks.sender import WebhookSender
from backend.logging_setup import redact, request_id_var
from backend.mv.errors import MVError
from backend.mv.limiter import AdmittedByQueue
from backend.mv.thread_pools import DECODING

logger = logging.getLogger(__name__)

JOBS_APPLICATION_VERSION = "mv-jobs-1"
"""DBOS recovers only workflows of the version it runs. It is fixed, not DBOS's hash of the
code: bump it only when the workflows' steps change in a way an old job cannot resume."""
QUEUE_POLL_SECONDS = 0.1
"""How often a lane's queue looks for jobs to start: about 50 ms added to each job."""
MAX_EXECUTOR_THREADS = 16
RETENTION_SWEEP_SECONDS = 3600.0
QUEUE_WORKERS_WAIT_SECONDS = 2.0


@dataclass
class JobContext:
    runtime: Any
    """The `Runtime` the generators take their collaborators from."""
    store: JobStore
    signals: JobSignals
    url_path_for: Callable[..., str]
    stopping: bool = False
    running: set[asyncio.Task[Any]] = field(default_factory=set)


_context: JobContext | None = None


def context() -> JobContext:
    if _context is None:
        raise RuntimeError("the job engine is not started")
    return _context


def _error_document(error: MVError) -> dict[str, Any]:
    """The body the synchronous call answers with, plus its `status`; provider text in it
    is scrubbed of our own keys, as the API's error handler does."""
    error.message = redact(error.message, context().runtime.settings.secrets)
    return job_error(error)


@DBOS.step(name="mv_job_begin")
async def _begin(job_id: str) -> bool:
    """The job is running; False when it was canceled (or ended) while queued."""
    jobs = context().store
    row = await jobs.run(
        jobs.records.change,
        job_id,
        status=JobStatus.RUNNING,
        progress=Progress(stage=Stage.SUBMITTING),
        webhook_event=JobStatus.RUNNING,
    )
    return row is not None


@DBOS.step(name="mv_job_run", preemptible=True)
async def _run(job_id: str) -> str:
    """The generation, from its (resumed) provider job to its final state in the store."""
    jobs = context().store
    row = await jobs.run(jobs.records.get, job_id)
    if row is None or row.status != JobStatus.RUNNING:
        return row.status if row is not None else JobStatus.FAILED
    request_id_var.set(row.request_id)
    kind = KINDS[row.kind]
    tracker = JobTracker(job_id, row.provider_job_id, context())
    run = JobRun(
        artifact_id=row.artifact_id,
        tracker=tracker,
        slots=AdmittedByQueue(round((row.started_at or row.created_at) - row.created_at, 3)),
        url_path_for=context().url_path_for,
    )
    try:
        request = await DECODING.run(kind.parse, row.request)
        response = await kind.run(request, context().runtime, run)
    except MVError as error:
        if error.status_code >= 500:
            logger.warning(
                "job %s failed: %s: %s",
                job_id,
                error.error_code,
                error.message,
                exc_info=error.__cause__,
            )
        else:
            logger.info("job %s failed: %s: %s", job_id, error.error_code, error.message)
        return await _end_failed(job_id, _error_document(error), error.answer_headers())
    except Exception:
        logger.exception("job %s failed unexpectedly", job_id)
        return await _end_failed(job_id, _error_document(MVError("Unexpected server error")), {})
    result = response.model_dump(mode="json", by_alias=True)
    await jobs.run(
        jobs.records.change,
        job_id,
        status=JobStatus.SUCCEEDED,
        progress=Progress(stage=Stage.DONE, percent=100),
        webhook_event=JobStatus.SUCCEEDED,
        result=result,
    )
    return JobStatus.SUCCEEDED


async def _end_failed(job_id: str, document: dict[str, Any], headers: dict[str, str]) -> str:
    jobs = context().store
    await jobs.run(
        jobs.records.change,
        job_id,
        status=JobStatus.FAILED,
        progress=Progress(stage=Stage.DONE),
        webhook_event=JobStatus.FAILED,
        error=document,
        error_headers=headers,
    )
    return JobStatus.FAILED


@DBOS.workflow(name="mv_job")
async def job_workflow(job_id: str) -> str:
    task = asyncio.current_task()
    if task is not None:
        context().running.add(task)
    try:
        if not await _begin(job_id):
            return JobStatus.CANCELED
        return await _run(job_id)
    finally:
        if task is not None:
            context().running.discard(task)


@DBOS.step(name="mv_cancel_upstream", retries_allowed=True, max_attempts=5)
async def _cancel_upstream(backend: str, provider_job_id: str) -> None:
    await context().runtime.cancel_upstream(backend, provider_job_id)


@DBOS.workflow(name="mv_cancel_upstream")
async def cancel_upstream_workflow(backend: str, provider_job_id: str) -> None:
    """Cancel a provider job durably: a crash before the cancel reached the provider runs
    it again at the next start."""
    await _cancel_upstream(backend, provider_job_id)


async def _queue_workers_started(names: set[str]) -> None:
    """DBOS's queue manager starts a worker for a queue registered after launch within a
    second; jobs submitted before that would wait for it, so startup waits instead. The
    workers are found by their thread names (`queue-worker-<name>`, DBOS 3.4), and the wait
    is bounded, so a later DBOS naming them otherwise only costs a slower start."""
    deadline = time.monotonic() + QUEUE_WORKERS_WAIT_SECONDS
    wanted = {f"queue-worker-{name}" for name in names}
    while time.monotonic() < deadline:
        if wanted <= {thread.name for thread in threading.enumerate()}:
            return
        await asyncio.sleep(0.02)
    logger.warning("queue workers not seen after %.1f s", QUEUE_WORKERS_WAIT_SECONDS)


def _quiet_dbos_logs() -> None:
    """DBOS logs through its own console handler; route it through ours (which scrubs keys
    and adds the request id) and keep only its warnings."""
    dbos_logger = logging.getLogger("dbos")
    for handler in list(dbos_logger.handlers):
        dbos_logger.removeHandler(handler)
    for handler in logging.getLogger("backend").handlers:
        dbos_logger.addHandler(handler)
    dbos_logger.propagate = False
    dbos_logger.setLevel(logging.WARNING)


class JobEngine:
    """Starts DBOS on the running loop, with the job store beside it; stops it at shutdown
    leaving unfinished jobs to resume at the next start."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = database_url(settings)
        self._exit = contextlib.ExitStack()
        self._sweeper: asyncio.Task[None] | None = None
        self.store: JobStore | None = None
        self.signals: JobSignals | None = None
        self._outbox: WebhookOutbox | None = None
        self._outbox_task: asyncio.Task[None] | None = None

    async def start(self, runtime: Any, url_path_for: Callable[..., str]) -> JobStore:
        global _context
        self._exit.enter_context(one_process(self.url))
        signals = JobSignals(asyncio.get_running_loop())
        records = JobRecords(create_engine(self.url), signals.notify)
        store = JobStore(records)
        await store.run(records.create_tables)
        _context = JobContext(runtime, store, signals, url_path_for)
        self.signals = signals
        DBOS(
            config={
                "name": "mv-backend",
                "system_database_url": self.url,
                "application_version": JOBS_APPLICATION_VERSION,
                "executor_id": self.settings.mv_instance_id or socket.gethostname(),
                "max_executor_threads": MAX_EXECUTOR_THREADS,
                "log_level": "WARNING",
            }
        )
        DBOS.launch()
        _quiet_dbos_logs()
        for lane, cap in lanes(runtime).items():
            await DBOS.register_queue_async(
                lane, worker_concurrency=cap, polling_interval_sec=QUEUE_POLL_SECONDS
            )
        await _queue_workers_started(set(lanes(runtime)))
        await self._requeue_unfinished(store)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_old_jobs(store))
        if self.settings.mv_webhook_secret:
            sender = WebhookSender(
                self.settings.mv_webhook_secret,
                allow_private=self.settings.mv_webhook_allow_private,
            )
            self._outbox = WebhookOutbox(store, signals, sender, self.settings)
            self._outbox_task = asyncio.get_running_loop().create_task(self._outbox.run())
        self.store = store
        return store

    async def _requeue_unfinished(self, store: JobStore) -> None:
        """A job written to the store whose enqueue a crash cut off is enqueued now; one
        DBOS knows is left alone (same workflow id)."""
        for row in await store.run(store.records.unfinished):
            await enqueue(row.job_id, row.lane)

    async def _sweep_old_jobs(self, store: JobStore) -> None:
        retention = self.settings.mv_job_retention_hours * 3600
        while True:
            deleted = await store.run(store.records.delete_finished_before, time.time() - retention)
            if deleted:
                await DBOS.delete_workflows_async(deleted)
                logger.info("deleted %d jobs older than the retention", len(deleted))
            await asyncio.sleep(RETENTION_SWEEP_SECONDS)

    async def stop(self, *, drain_seconds: float) -> None:
        """Running jobs get `drain_seconds` to finish; those still running then stay
        `running` in the store (no upstream cancel: `stopping`) and are recovered by DBOS
        at the next start."""
        global _context
        for task in (self._sweeper, self._outbox_task):
            if task is not None:
                task.cancel()
        if self._outbox is not None:
            await self._outbox.aclose()
        if _context is not None:
            if _context.running:
                await asyncio.wait(set(_context.running), timeout=drain_seconds)
            _context.stopping = True
            running = list(_context.running)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        await asyncio.to_thread(DBOS.destroy)
        if self.store is not None:
            self.store.records.engine.dispose()
        _context = None
        self._exit.close()


async def enqueue(job_id: str, lane: str) -> None:
    with SetWorkflowID(job_id):
        await DBOS.enqueue_workflow_async(lane, job_workflow, job_id)


async def cancel(job_id: str) -> None:
    await DBOS.cancel_workflow_async(job_id)


async def cancel_upstream(job_id: str, backend: str, provider_job_id: str) -> None:
    with SetWorkflowID(f"cancel:{job_id}"):
        await DBOS.start_workflow_async(cancel_upstream_workflow, backend, provider_job_id)
