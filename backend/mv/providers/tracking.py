"""Where a generation reports the provider job it paid for, the moment that job exists.

A job that outlives its process needs the provider's job id in durable storage before
anything else happens: after a crash it polls that job instead of paying for a second one.
Generators take an `UpstreamTracker`; the job engine's records every id and stage in the
job store, and `UNTRACKED` is for callers without a job (a script, a unit test).
"""

from dataclasses import dataclass
from typing import Protocol


class UpstreamTracker(Protocol):
    @property
    def job_id(self) -> str | None:
        """The job this generation belongs to, reported in its answer and sidecar."""
        ...

    @property
    def resume_id(self) -> str | None:
        """The provider job an earlier attempt of this job created, to poll instead of
        creating one; None when none was recorded."""
        ...

    @property
    def stopping(self) -> bool:
        """True while the process shuts down: an interrupted provider job is then left
        running upstream, for the next start to resume, instead of being cancelled."""
        ...

    async def created(self, provider_job_id: str) -> None:
        """Record the provider's job id; called right after the create call answered."""
        ...

    async def stage(self, stage: str) -> None:
        """The generation moved on (`downloading`, `storing`)."""
        ...


@dataclass(frozen=True)
class Untracked:
    job_id: None = None
    resume_id: None = None
    stopping: bool = False

    async def created(self, provider_job_id: str) -> None:  # noqa: ARG002 - nowhere to keep it
        return None

    async def stage(self, stage: str) -> None:  # noqa: ARG002 - nobody follows it
        return None


UNTRACKED = Untracked()
