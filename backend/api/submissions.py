"""What every route that submits a job shares: its headers (`Idempotency-Key`,
`Prefer`), the `Submission` built from them, and the statuses such a route can answer."""

from typing import Annotated

from fastapi import Depends, Header, Request

from backend.api.dependencies import JobStoreDep, RuntimeDep
from backend.api.errors import error_responses
from backend.api.middleware import CALLER_STATE
from backend.jobs.model import Job
from backend.jobs.submission import Submission, wants_async
from backend.mv.idempotency import MAX_KEY_LENGTH

GENERATION_ERRORS = {
    202: {"model": Job, "description": "With `Prefer: respond-async`: the job, at once"},
    **error_responses(400, 401, 409, 413, 422, 429, 502, 503, 504, 507),
}


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=MAX_KEY_LENGTH,
        description=(
            "Send the same key again (with the same body) to get the same job back instead "
            "of paying twice, across restarts; another body with a used key is a 409. A key "
            "whose job failed or was canceled may be used again."
        ),
    ),
]
Prefer = Annotated[
    str | None,
    Header(
        description=(
            "`respond-async`: answer 202 at once with the job (follow it at `Location`, "
            "its events, or a webhook) instead of waiting for the result"
        ),
    ),
]


async def _submission(
    http_request: Request,
    runtime: RuntimeDep,
    jobs: JobStoreDep,
    idempotency_key: IdempotencyKey = None,
    prefer: Prefer = None,
) -> Submission:
    return Submission(
        http_request=http_request,
        runtime=runtime,
        jobs=jobs,
        signals=http_request.app.state.jobs_signals,
        owner=getattr(http_request.state, CALLER_STATE, ""),
        key=idempotency_key,
        respond_async=wants_async(prefer),
        shutdown=http_request.app.state.shutdown,
    )


SubmissionDep = Annotated[Submission, Depends(_submission)]
