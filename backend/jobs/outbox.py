"""Webhook deliveries: a durable outbox in the job store, emptied by one loop per process.

A delivery row is written in the same transaction as the job change it reports, so a
change is never committed without its webhook, and a crash at any point leaves the row to
be sent by the next start (at least once: receivers deduplicate on `webhook-id`, the same
on every attempt). The loop leases due rows before sending them, so two processes sharing
a database never send one attempt twice at the same time; a lease a dead process held runs
out and the row is due again.
"""

import asyncio
import json
import logging
import time
from typing import Any

from backend.config import Settings
from backend.jobs.records import JobStore
from backend.jobs.signals import JobSignals
from backend.jobs.webhooks.schedule import retry_delay_seconds, should_retry
from backend.jobs.webhooks.sender import WebhookSender

logger = logging.getLogger(__name__)

LEASE_SECONDS = 30.0
"""Longer than one attempt (10 s) with room to record it."""
IDLE_POLL_SECONDS = 0.5
DELIVERIES_AT_ONCE = 16


class WebhookOutbox:
    def __init__(
        self, jobs: JobStore, signals: JobSignals, sender: WebhookSender, settings: Settings
    ) -> None:
        self._jobs = jobs
        self._signals = signals
        self._sender = sender
        self._max_attempts = settings.mv_webhook_max_attempts
        self._retry_base_seconds = settings.mv_webhook_retry_base_seconds
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Until cancelled: send what is due, then sleep until a job changes (a new
        delivery may be due) or `IDLE_POLL_SECONDS` pass (retries come due by time)."""
        records = self._jobs.records
        while True:
            room = DELIVERIES_AT_ONCE - len(self._in_flight)
            if room > 0:
                due = await self._jobs.run(
                    records.claim_due_deliveries, time.time(), LEASE_SECONDS, room
                )
                for delivery in due:
                    task = asyncio.create_task(self._deliver(delivery))
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)
            self._signals.any_change.clear()
            try:
                async with asyncio.timeout(IDLE_POLL_SECONDS):
                    await self._signals.any_change.wait()
            except TimeoutError:
                pass

    async def _deliver(self, delivery: Any) -> None:
        result = await self._sender.send(
            delivery.url,
            webhook_id=delivery.webhook_id,
            event_type=delivery.event,
            data=json.loads(delivery.data),
        )
        attempt = delivery.attempts + 1
        next_attempt_at = None
        if not result.ok and should_retry(attempt, self._max_attempts):
            next_attempt_at = time.time() + retry_delay_seconds(attempt, self._retry_base_seconds)
        if not result.ok:
            logger.info(
                "webhook %s for job %s: attempt %d failed (%s); %s",
                delivery.webhook_id,
                delivery.job_id,
                attempt,
                result.error or result.status,
                "will retry" if next_attempt_at else "giving up",
            )
        await self._jobs.run(
            self._jobs.records.record_attempt,
            delivery.webhook_id,
            status=result.status,
            error=result.error,
            delivered=result.ok,
            next_attempt_at=next_attempt_at,
        )

    async def aclose(self) -> None:
        """In-flight attempts are abandoned: their leases run out and they are sent again."""
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self._sender.aclose()
