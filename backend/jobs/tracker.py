"""The job engine's `UpstreamTracker`: a generation's provider job id and stages, written
to the job store as they happen."""

from typing import TYPE_CHECKING

from backend.jobs.model import Progress, Stage

if TYPE_CHECKING:
    from backend.jobs.engine import JobContext

PROGRESS_EVENT = "progress"


class JobTracker:
    def __init__(self, job_id: str, resume_id: str | None, context: "JobContext") -> None:
        self._job_id = job_id
        self._resume_id = resume_id
        self._context = context

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
        await self._change(Stage.GENERATING, provider_job_id=provider_job_id)

    async def stage(self, stage: str) -> None:
        await self._change(stage)

    async def _change(self, stage: str, **values: str) -> None:
        jobs = self._context.store
        await jobs.run(
            jobs.records.change,
            self._job_id,
            progress=Progress(stage=stage),
            webhook_event=PROGRESS_EVENT,
            **values,
        )
