"""The job engine's `UpstreamTracker`: a generation's provider job id and stages, written
to the job store as they happen."""

import time
from typing import TYPE_CHECKING, Any

from backend.jobs.model import Progress, Stage

if TYPE_CHECKING:
    from backend.jobs.engine import JobContext

PROGRESS_EVENT = "progress"
PROGRESS_EVENT_SECONDS = 1.0


class JobTracker:
    def __init__(self, job_id: str, resume_id: str | None, context: "JobContext") -> None:
        self._job_id = job_id
        self._resume_id = resume_id
        self._context = context
        self._last_stage: str | None = None
        self._last_report = 0.0

    @property
    def job_id(self) -> str:
        return self._job_id

    @property
    def resume_id(self) -> str | None:
        return self._resume_id

    @property
    def stopping(self) -> bool:
        return self._context.stopping

    async def created(self, provider_job_id: str) -> None:
        """One write: from here on a crash resumes this provider job instead of paying for
        another."""
        self._resume_id = provider_job_id
        await self._change(Progress(stage=Stage.GENERATING), provider_job_id=provider_job_id)

    async def stage(self, stage: str) -> None:
        await self._change(Progress(stage=stage))

    async def report(self, stage: str, percent: int | None, detail: dict[str, Any] | None) -> None:
        """A step of progress within a stage (a render's percent): at most one event a
        second, but always the first of a stage and the last (100)."""
        now = time.monotonic()
        same_stage = stage == self._last_stage
        if same_stage and percent != 100 and now - self._last_report < PROGRESS_EVENT_SECONDS:
            return
        self._last_report = now
        await self._change(Progress(stage=stage, percent=percent, detail=detail))

    async def _change(self, progress: Progress, **values: str) -> None:
        self._last_stage = progress.stage
        jobs = self._context.store
        await jobs.run(
            jobs.records.change,
            self._job_id,
            progress=progress,
            webhook_event=PROGRESS_EVENT,
            **values,
        )
