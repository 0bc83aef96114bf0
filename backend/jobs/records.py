"""The service's tables in the job store, and every write that changes a job.

A job's status only moves forward (`queued` → `running` → a final status); each change is
one transaction that updates the row, appends the job's next event (the job JSON as it now
is) and queues its webhook deliveries, so what a stream replays, what a webhook carries and
what `GET` answers always agree. An Idempotency-Key is a row with a primary key: two
requests with one key cannot both create a job, under any interleaving or on any number of
processes.

The methods are blocking (SQLAlchemy); `JobStore` runs each on the job-store thread pool.
"""

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa

from backend.jobs.model import (
    FINAL_STATUSES,
    REUSABLE_KEY_STATUSES,
    Delivery,
    Job,
    JobStatus,
    Progress,
    Stage,
    Webhook,
    iso,
    job_urls,
)
from backend.mv.thread_pools import ThreadPool

T = TypeVar("T")

JOB_STORE_POOL = ThreadPool("job_store", threads=8)
SUBMIT_ATTEMPTS = 3

metadata = sa.MetaData()

jobs = sa.Table(
    "mv_jobs",
    metadata,
    sa.Column("job_id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("lane", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("progress", sa.Text, nullable=False),
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("request_sha256", sa.String(64), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("artifact_id", sa.String(36), nullable=False),
    sa.Column("keyed", sa.Boolean, nullable=False, default=False),
    sa.Column("result", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("error_headers", sa.Text),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("backend", sa.String(32)),
    sa.Column("provider_job_id", sa.String(512)),
    sa.Column("parent_job_id", sa.String(36)),
    sa.Column("retry_of", sa.String(36)),
    sa.Column("cost_usd", sa.Float),
    sa.Column("webhook_url", sa.Text),
    sa.Column("webhook_events", sa.Text),
    sa.Column("event_seq", sa.Integer, nullable=False, default=0),
    sa.Index("mv_jobs_owner_created", "owner", "created_at"),
    sa.Index("mv_jobs_lane_status", "lane", "status"),
)

job_events = sa.Table(
    "mv_job_events",
    metadata,
    sa.Column("job_id", sa.String(36), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
)

idempotency_keys = sa.Table(
    "mv_idempotency_keys",
    metadata,
    sa.Column("owner", sa.String(64), primary_key=True),
    sa.Column("endpoint", sa.String(64), primary_key=True),
    sa.Column("key_sha256", sa.String(64), primary_key=True),
    sa.Column("job_id", sa.String(36), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

webhook_deliveries = sa.Table(
    "mv_webhook_deliveries",
    metadata,
    sa.Column("webhook_id", sa.String(64), primary_key=True),
    sa.Column("job_id", sa.String(36), nullable=False, index=True),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("next_attempt_at", sa.Float),
    sa.Column("delivered_at", sa.Float),
    sa.Column("claimed_until", sa.Float),
    sa.Index("mv_webhook_due", "delivered_at", "next_attempt_at"),
)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@dataclass(frozen=True)
class NewJob:
    """What a request asks for, before it is a job."""

    kind: str
    owner: str
    lane: str
    request: dict[str, Any]
    request_sha256: str
    request_id: str
    backend: str | None = None
    webhook_url: str | None = None
    webhook_events: list[str] | None = None
    parent_job_id: str | None = None
    retry_of: str | None = None
    job_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    artifact_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class IdempotencyClaim:
    owner: str
    endpoint: str
    key_sha256: str


@dataclass(frozen=True)
class Submitted:
    """The job a request maps to; `created` is False when its key named an existing job."""

    row: sa.Row[Any]
    created: bool


def stored_headers(row: sa.Row[Any]) -> dict[str, str]:
    """The headers a failed job's synchronous answer carries (`Retry-After`)."""
    return _loads(row.error_headers) or {}


def job_from_row(row: sa.Row[Any], deliveries: Sequence[sa.Row[Any]] = ()) -> Job:
    webhook = None
    if row.webhook_url is not None:
        webhook = Webhook(
            url=row.webhook_url,
            events=_loads(row.webhook_events) or [],
            deliveries=[
                Delivery(
                    event=delivery.event,
                    webhook_id=delivery.webhook_id,
                    attempts=delivery.attempts,
                    last_status=delivery.last_status,
                    delivered_at=iso(delivery.delivered_at),
                )
                for delivery in deliveries
            ],
        )
    return Job(
        job_id=row.job_id,
        kind=row.kind,
        status=JobStatus(row.status),
        created_at=iso(row.created_at) or "",
        started_at=iso(row.started_at),
        finished_at=iso(row.finished_at),
        progress=Progress.model_validate_json(row.progress),
        result=_loads(row.result),
        error=_loads(row.error),
        cancel_requested=bool(row.cancel_requested),
        provider_job_id=row.provider_job_id,
        parent_job_id=row.parent_job_id,
        retry_of=row.retry_of,
        cost_usd=row.cost_usd,
        webhook=webhook,
        urls=job_urls(row.job_id),
    )


class JobRecords:
    """The blocking half: one method per transaction. `notify(job_id)` is called after
    every committed change of a job, from the thread that made it."""

    def __init__(self, engine: sa.Engine, notify: Callable[[str], None]) -> None:
        self.engine = engine
        self._notify = notify

    def create_tables(self) -> None:
        metadata.create_all(self.engine)

    def submit(self, new: NewJob, claim: IdempotencyClaim | None) -> Submitted:
        """Insert the job, or find the one its Idempotency-Key already names. A key whose
        job failed or was canceled moves to the new job (compare-and-set on the key row).

        Two requests racing with one new key both read no key row; the key's primary key
        lets one insert win, and the loser reads again and finds the winner's job."""
        for _ in range(SUBMIT_ATTEMPTS - 1):
            try:
                return self._submit_once(new, claim)
            except sa.exc.IntegrityError:
                continue
        return self._submit_once(new, claim)

    def _submit_once(self, new: NewJob, claim: IdempotencyClaim | None) -> Submitted:
        now = time.time()
        with self.engine.begin() as connection:
            if claim is not None:
                key_row = connection.execute(
                    sa.select(idempotency_keys.c.job_id).where(
                        idempotency_keys.c.owner == claim.owner,
                        idempotency_keys.c.endpoint == claim.endpoint,
                        idempotency_keys.c.key_sha256 == claim.key_sha256,
                    )
                ).first()
                if key_row is None:
                    connection.execute(
                        idempotency_keys.insert().values(
                            owner=claim.owner,
                            endpoint=claim.endpoint,
                            key_sha256=claim.key_sha256,
                            job_id=new.job_id,
                            created_at=now,
                        )
                    )
                else:
                    existing = self._row(connection, key_row.job_id)
                    if existing is not None and existing.status not in REUSABLE_KEY_STATUSES:
                        return Submitted(existing, created=False)
                    moved = connection.execute(
                        idempotency_keys.update()
                        .where(
                            idempotency_keys.c.owner == claim.owner,
                            idempotency_keys.c.endpoint == claim.endpoint,
                            idempotency_keys.c.key_sha256 == claim.key_sha256,
                            idempotency_keys.c.job_id == key_row.job_id,
                        )
                        .values(job_id=new.job_id, created_at=now)
                    ).rowcount
                    if not moved:
                        raise sa.exc.IntegrityError("key moved meanwhile", None, ValueError())
            connection.execute(
                jobs.insert().values(
                    job_id=new.job_id,
                    kind=new.kind,
                    owner=new.owner,
                    lane=new.lane,
                    status=JobStatus.QUEUED,
                    created_at=now,
                    progress=Progress(stage=Stage.QUEUED).model_dump_json(),
                    request=_dumps(new.request),
                    request_sha256=new.request_sha256,
                    request_id=new.request_id,
                    artifact_id=new.artifact_id,
                    keyed=claim is not None,
                    backend=new.backend,
                    parent_job_id=new.parent_job_id,
                    retry_of=new.retry_of,
                    webhook_url=new.webhook_url,
                    webhook_events=_dumps(new.webhook_events),
                    event_seq=0,
                    cancel_requested=False,
                )
            )
            row = self._append_event(connection, new.job_id, now, webhook_event=None)
        self._notify(new.job_id)
        return Submitted(row, created=True)

    def get(self, job_id: str) -> sa.Row[Any] | None:
        with self.engine.connect() as connection:
            return self._row(connection, job_id)

    def job(self, job_id: str) -> Job | None:
        with self.engine.connect() as connection:
            row = self._row(connection, job_id)
            return None if row is None else job_from_row(row, self._deliveries(connection, job_id))

    def list_jobs(
        self,
        owner: str | None,
        *,
        status: str | None,
        kind: str | None,
        limit: int,
        before: tuple[float, str] | None,
    ) -> list[tuple[float, str, Job]]:
        """Newest first, each with its (created_at, job_id) sort key; `before` is the key
        of the last job already seen."""
        query = sa.select(jobs)
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        if status is not None:
            query = query.where(jobs.c.status == status)
        if kind is not None:
            query = query.where(jobs.c.kind == kind)
        if before is not None:
            created_at, job_id = before
            query = query.where(
                sa.or_(
                    jobs.c.created_at < created_at,
                    sa.and_(jobs.c.created_at == created_at, jobs.c.job_id < job_id),
                )
            )
        query = query.order_by(jobs.c.created_at.desc(), jobs.c.job_id.desc()).limit(limit)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
            return [
                (
                    row.created_at,
                    row.job_id,
                    job_from_row(row, self._deliveries(connection, row.job_id)),
                )
                for row in rows
            ]

    def unfinished_in_lane(self, lane: str) -> int:
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(sa.func.count())
                .select_from(jobs)
                .where(jobs.c.lane == lane, jobs.c.status.not_in(list(FINAL_STATUSES)))
            ).scalar_one()

    def change(
        self,
        job_id: str,
        *,
        status: JobStatus | None = None,
        progress: Progress | None = None,
        webhook_event: str | None = None,
        **values: Any,
    ) -> sa.Row[Any] | None:
        """Apply one change to a job that has not finished, append its event, queue its
        webhook; None (nothing written) when the job is unknown or already final."""
        now = time.time()
        updates: dict[str, Any] = dict(values)
        if status is not None:
            updates["status"] = status
            if status == JobStatus.RUNNING:
                updates["started_at"] = now
            if status in FINAL_STATUSES:
                updates["finished_at"] = now
        if progress is not None:
            updates["progress"] = progress.model_dump_json()
        for name in ("result", "error", "error_headers"):
            if name in updates:
                updates[name] = _dumps(updates[name])
        with self.engine.begin() as connection:
            changed = connection.execute(
                jobs.update()
                .where(jobs.c.job_id == job_id, jobs.c.status.not_in(list(FINAL_STATUSES)))
                .values(**updates)
            ).rowcount
            if not changed:
                return None
            row = self._append_event(connection, job_id, now, webhook_event=webhook_event)
        self._notify(job_id)
        return row

    def request_cancel(self, job_id: str) -> sa.Row[Any] | None:
        """Mark the cancel; a queued job is canceled at once. None when already final."""
        row = self.get(job_id)
        if row is None or row.status in FINAL_STATUSES:
            return None
        if row.status == JobStatus.QUEUED:
            return self.change(
                job_id,
                status=JobStatus.CANCELED,
                progress=Progress(stage=Stage.DONE),
                webhook_event=JobStatus.CANCELED,
                cancel_requested=True,
            ) or self.get(job_id)
        return self.change(job_id, cancel_requested=True) or self.get(job_id)

    def events_after(self, job_id: str, seq: int) -> list[tuple[int, str]]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(job_events.c.seq, job_events.c.data)
                .where(job_events.c.job_id == job_id, job_events.c.seq > seq)
                .order_by(job_events.c.seq)
            ).all()
        return [(row.seq, row.data) for row in rows]

    def last_event(self, job_id: str) -> tuple[int, str] | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(job_events.c.seq, job_events.c.data)
                .where(job_events.c.job_id == job_id)
                .order_by(job_events.c.seq.desc())
                .limit(1)
            ).first()
        return None if row is None else (row.seq, row.data)

    def unfinished(self) -> list[sa.Row[Any]]:
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(jobs.c.job_id, jobs.c.lane, jobs.c.status).where(
                    jobs.c.status.not_in(list(FINAL_STATUSES))
                )
            ).all()

    def delete_finished_before(self, cutoff: float) -> list[str]:
        """Jobs that ended before `cutoff`, with their events, keys and deliveries."""
        with self.engine.begin() as connection:
            ids = list(
                connection.execute(
                    sa.select(jobs.c.job_id).where(
                        jobs.c.status.in_(list(FINAL_STATUSES)), jobs.c.finished_at < cutoff
                    )
                ).scalars()
            )
            for table in (job_events, idempotency_keys, webhook_deliveries, jobs):
                connection.execute(table.delete().where(table.c.job_id.in_(ids)))
        return ids

    def claim_due_deliveries(self, now: float, lease_seconds: float, limit: int) -> list[Any]:
        """Deliveries due now, leased to this process for `lease_seconds`."""
        with self.engine.begin() as connection:
            due = connection.execute(
                sa.select(webhook_deliveries)
                .where(
                    webhook_deliveries.c.delivered_at.is_(None),
                    webhook_deliveries.c.next_attempt_at.is_not(None),
                    webhook_deliveries.c.next_attempt_at <= now,
                    sa.or_(
                        webhook_deliveries.c.claimed_until.is_(None),
                        webhook_deliveries.c.claimed_until < now,
                    ),
                )
                .order_by(webhook_deliveries.c.next_attempt_at)
                .limit(limit)
            ).all()
            for delivery in due:
                connection.execute(
                    webhook_deliveries.update()
                    .where(webhook_deliveries.c.webhook_id == delivery.webhook_id)
                    .values(claimed_until=now + lease_seconds)
                )
        return due

    def record_attempt(
        self,
        webhook_id: str,
        *,
        status: int | None,
        error: str | None,
        delivered: bool,
        next_attempt_at: float | None,
    ) -> None:
        now = time.time()
        with self.engine.begin() as connection:
            connection.execute(
                webhook_deliveries.update()
                .where(webhook_deliveries.c.webhook_id == webhook_id)
                .values(
                    attempts=webhook_deliveries.c.attempts + 1,
                    last_status=status,
                    last_error=error,
                    delivered_at=now if delivered else None,
                    next_attempt_at=None if delivered else next_attempt_at,
                    claimed_until=None,
                )
            )

    def next_delivery_due(self) -> float | None:
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(sa.func.min(webhook_deliveries.c.next_attempt_at)).where(
                    webhook_deliveries.c.delivered_at.is_(None)
                )
            ).scalar_one()

    @staticmethod
    def _row(connection: sa.Connection, job_id: str) -> sa.Row[Any] | None:
        return connection.execute(sa.select(jobs).where(jobs.c.job_id == job_id)).first()

    @staticmethod
    def _deliveries(connection: sa.Connection, job_id: str) -> Sequence[sa.Row[Any]]:
        return connection.execute(
            sa.select(webhook_deliveries)
            .where(webhook_deliveries.c.job_id == job_id)
            .order_by(webhook_deliveries.c.created_at)
        ).all()

    def _append_event(
        self, connection: sa.Connection, job_id: str, now: float, *, webhook_event: str | None
    ) -> sa.Row[Any]:
        """The job's next event, and its webhook delivery when the job subscribed to it."""
        connection.execute(
            jobs.update().where(jobs.c.job_id == job_id).values(event_seq=jobs.c.event_seq + 1)
        )
        row = self._row(connection, job_id)
        assert row is not None
        subscribed = (
            webhook_event is not None
            and row.webhook_url is not None
            and webhook_event in (_loads(row.webhook_events) or [])
        )
        webhook_id = f"msg_{uuid.uuid4().hex}"
        if subscribed:
            connection.execute(
                webhook_deliveries.insert().values(
                    webhook_id=webhook_id,
                    job_id=job_id,
                    event=webhook_event,
                    url=row.webhook_url,
                    data="",
                    created_at=now,
                    attempts=0,
                    next_attempt_at=now,
                )
            )
        data = job_from_row(row, self._deliveries(connection, job_id)).model_dump_json()
        connection.execute(
            job_events.insert().values(job_id=job_id, seq=row.event_seq, created_at=now, data=data)
        )
        if subscribed:
            connection.execute(
                webhook_deliveries.update()
                .where(webhook_deliveries.c.webhook_id == webhook_id)
                .values(data=data)
            )
        return row


class JobStore:
    """The job records, each call on the job-store thread pool (never on the event loop)."""

    def __init__(self, records: JobRecords) -> None:
        self.records = records

    async def run(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await JOB_STORE_POOL.run(lambda: method(*args, **kwargs))
