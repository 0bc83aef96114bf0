"""Runs one Replicate prediction to completion under the request's deadline.

The SDK's `async_wait` polls forever and its create is never retried, so the service owns
both: the create is retried only on errors that prove no prediction exists, the create is
never held open (no `Prefer: wait`: the prediction id comes back at once, is recorded and
cancellable, so a crash after that never pays for a second prediction), polling survives
transient errors without giving up the job, and a prediction still running at the deadline
or at a cancel is cancelled upstream (not at shutdown: the next start resumes it).
"""

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx
import replicate
from replicate.exceptions import ReplicateError
from replicate.prediction import Prediction

from backend.mv.errors import (
    ContentPolicyViolation,
    GenerationFailed,
    MVError,
)
from backend.mv.providers import JobPolicy, Provider
from backend.mv.providers.deadline import Deadline
from backend.mv.providers.downloads import Downloader
from backend.mv.providers.replicate.errors import REPLICATE_ERRORS
from backend.mv.providers.retries import call_with_retries, read_status_tolerantly
from backend.mv.providers.tracking import UpstreamTracker
from backend.mv.storage.base import ArtifactStore
from backend.mv.storage.files import FileDigest

logger = logging.getLogger(__name__)

CANCEL_TIMEOUT_SECONDS = 10.0
TERMINAL_STATUSES = {"succeeded", "failed", "canceled"}
CONTENT_POLICY_MARKERS = ("flagged as sensitive", "(E005)", "content policy", "safety filter")

_cancellations: set[asyncio.Task[None]] = set()


async def _cancel_quietly(client: replicate.Client, prediction_id: str) -> None:
    try:
        async with asyncio.timeout(CANCEL_TIMEOUT_SECONDS):
            await client.predictions.async_cancel(prediction_id)
        logger.info("cancelled prediction %s upstream", prediction_id)
    except (TimeoutError, ReplicateError, httpx.HTTPError, RuntimeError) as exc:
        logger.warning("could not cancel prediction %s: %r", prediction_id, exc)


def _cancel_in_background(client: replicate.Client, prediction_id: str) -> None:
    """Cancel without delaying the caller's error answer; the task is kept until done."""
    task = asyncio.get_running_loop().create_task(_cancel_quietly(client, prediction_id))
    _cancellations.add(task)
    task.add_done_callback(_cancellations.discard)


async def finish_cancellations() -> None:
    """Let cancels already sent on their way finish (each is bounded by its own timeout);
    the lifespan awaits this before closing the clients, so no paid job is left running."""
    if _cancellations:
        await asyncio.gather(*_cancellations)


def _failure(prediction: Prediction, backend: str) -> MVError:
    reason = str(prediction.error or f"prediction ended {prediction.status}")
    if any(marker.lower() in reason.lower() for marker in CONTENT_POLICY_MARKERS):
        return ContentPolicyViolation(
            f"The provider refused the content: {reason}", backend=backend
        )
    return GenerationFailed(f"The model failed: {reason}", backend=backend)


def _output_url(prediction: Prediction, backend: str) -> str:
    output: Any = prediction.output
    if isinstance(output, list) and output:
        output = output[0]
    if not isinstance(output, str) or not output.startswith(("https://", "http://")):
        raise GenerationFailed("The prediction succeeded without an output file", backend=backend)
    return output


async def _create_or_resume(
    client: replicate.Client,
    *,
    model: str,
    model_input: dict[str, Any],
    deadline: Deadline,
    policy: JobPolicy,
    backend: str,
    tracker: UpstreamTracker,
) -> Prediction:
    """The prediction an earlier attempt recorded, or a new one, recorded at once."""
    if (resume_id := tracker.resume_id) is not None:
        prediction = await call_with_retries(
            lambda: client.predictions.async_get(resume_id),
            errors=REPLICATE_ERRORS,
            backend=backend,
            max_attempts=policy.max_attempts,
            deadline=deadline,
        )
        logger.info("resuming prediction %s, status %s", prediction.id, prediction.status)
        return prediction
    prediction = await call_with_retries(
        lambda: client.models.predictions.async_create(model=model, input=model_input),
        errors=REPLICATE_ERRORS,
        backend=backend,
        max_attempts=policy.max_attempts,
        deadline=deadline,
    )
    logger.info("prediction %s created, status %s", prediction.id, prediction.status)
    await tracker.created(prediction.id)
    return prediction


async def run_prediction(
    client: replicate.Client,
    *,
    model: str,
    model_input: dict[str, Any],
    deadline: Deadline,
    policy: JobPolicy,
    backend: str,
    tracker: UpstreamTracker,
) -> tuple[Prediction, str]:
    """Create the prediction (or resume the recorded one) and wait for it; returns it and
    its output file's URL.

    Must run inside `deadline.enforced(...)`: when the deadline fires, a prediction that is
    still running is cancelled upstream before the timeout propagates.
    """
    prediction = await _create_or_resume(
        client,
        model=model,
        model_input=model_input,
        deadline=deadline,
        policy=policy,
        backend=backend,
        tracker=tracker,
    )
    try:
        while prediction.status not in TERMINAL_STATUSES:
            await asyncio.sleep(policy.poll_interval_seconds)
            prediction = await read_status_tolerantly(
                lambda current: client.predictions.async_get(current.id),
                prediction,
                errors=REPLICATE_ERRORS,
                backend=backend,
                job=f"prediction {prediction.id}",
            )
    except BaseException:
        if not tracker.stopping:
            _cancel_in_background(client, prediction.id)
        raise
    if prediction.status != "succeeded":
        raise _failure(prediction, backend)
    return prediction, _output_url(prediction, backend)


async def predict_into_store(
    client: replicate.Client,
    downloader: Downloader,
    *,
    model: str,
    model_input: dict[str, Any],
    policy: JobPolicy,
    store: ArtifactStore,
    key: str,
    log_response: Callable[[Prediction], None],
    tracker: UpstreamTracker,
    deadline: Deadline | None = None,
) -> tuple[Prediction, FileDigest]:
    """One prediction under its own deadline (or `deadline`, when the caller's work before
    it counts too), its output file streamed into `store` as `key`; what Replicate's image
    and video paths share. `log_response` is the endpoint's debug log of the finished
    prediction."""
    deadline = deadline or Deadline(policy.timeout_seconds)
    async with deadline.enforced(Provider.REPLICATE):
        prediction, output_url = await run_prediction(
            client,
            model=model,
            model_input=model_input,
            deadline=deadline,
            policy=policy,
            backend=Provider.REPLICATE,
            tracker=tracker,
        )
        log_response(prediction)
        await tracker.stage("downloading")
        written = await downloader.fetch(
            output_url, store, key, backend=Provider.REPLICATE, deadline=deadline
        )
    return prediction, written
