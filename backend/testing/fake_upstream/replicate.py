"""Replicate's HTTP API as the `replicate` SDK calls it, and Replicate's error answers.

A prediction on an `imagen` model yields a small real image, one on a `veo` model a clip;
either is done `latency_seconds` after it was created. `Prefer: wait` holds the create
call until then (or the wait runs out), as the real API does. Files uploaded through the
files API (`POST /v1/files`, multipart) can be given to a model by their `urls.get`; a
prediction whose input names a file URL of this API that does not exist (never uploaded,
or deleted) is refused, as the model could not fetch it.
"""

import base64
import hashlib
import io
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.routing import Route as StarletteRoute

from backend.testing.fake_upstream.faults import (
    ANY_ROUTE,
    DropConnection,
    HttpError,
    PauseDownload,
    PredictionFailed,
    SlowGeneration,
    hold,
)
from backend.testing.fake_upstream.provider import Interrupt, Provider
from backend.testing.fake_upstream.records import UploadedFile

if TYPE_CHECKING:
    from backend.testing.fake_upstream.server import FakeUpstream

ReplicateRoute = Literal[
    "replicate.create",
    "replicate.get",
    "replicate.cancel",
    "replicate.download",
    "replicate.files.create",
    "replicate.files.get",
    "replicate.files.delete",
]

IMAGE_SHORT_SIDE_PX = 64
REPLICATE_MAX_WAIT_SECONDS = 60
SENSITIVE_CONTENT_ERROR = (
    "Prediction failed: The input or output was flagged as sensitive. "
    "Please try again with different inputs. (E005)"
)


def _problem(status: int, title: str, detail: str) -> dict[str, Any]:
    """Replicate's RFC 7807 problem body."""
    return {"title": title, "detail": detail, "status": status}


def replicate_unauthenticated() -> HttpError:
    """Replicate's answer to a missing or revoked API token."""
    return HttpError(
        401,
        _problem(401, "Unauthenticated", "You did not pass a valid authentication token"),
    )


def replicate_rate_limited(retry_after_seconds: int = 7) -> HttpError:
    """Replicate's throttling answer; the SDK's ReplicateError keeps the body, not headers."""
    detail = f"Request was throttled. Expected available in {retry_after_seconds} seconds."
    return HttpError(
        429,
        _problem(429, "Request was throttled.", detail),
        {"Retry-After": str(retry_after_seconds)},
    )


def replicate_server_error(status: int = 500) -> HttpError:
    """A Replicate 5xx (500 Internal Server Error, 503 Service Unavailable, ...)."""
    titles = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
    title = titles.get(status, "Server Error")
    return HttpError(status, _problem(status, title, f"{title}. Please try again later."))


def prediction_flagged_sensitive() -> PredictionFailed:
    """Replicate's content-policy refusal (E005)."""
    return PredictionFailed(SENSITIVE_CONTENT_ERROR)


@dataclass
class _Prediction:
    id: str
    model: str
    input: dict[str, Any]
    created_at: str
    ready_at: float
    outcome: PredictionFailed | None
    canceled: bool = False
    completed_at: str | None = None
    output: str | None = None


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _new_replicate_id() -> str:
    """26 lower-case base32 characters, the shape of Replicate prediction ids."""
    return base64.b32encode(uuid.uuid4().bytes).decode().lower().rstrip("=")


def _image_size(aspect_ratio: object) -> tuple[int, int]:
    """Pixel size for an "W:H" aspect ratio, IMAGE_SHORT_SIDE_PX on the short side."""
    match = re.fullmatch(r"(\d+):(\d+)", str(aspect_ratio))
    ratio_w, ratio_h = (int(match[1]), int(match[2])) if match else (1, 1)
    if ratio_w == 0 or ratio_h == 0:
        ratio_w = ratio_h = 1
    if ratio_w >= ratio_h:
        return round(IMAGE_SHORT_SIDE_PX * ratio_w / ratio_h), IMAGE_SHORT_SIDE_PX
    return IMAGE_SHORT_SIDE_PX, round(IMAGE_SHORT_SIDE_PX * ratio_h / ratio_w)


def _render_image(file_id: str, model_input: Mapping[str, Any]) -> tuple[bytes, str, str]:
    """A small real image as Imagen on Replicate would return: (bytes, content type, suffix)."""
    width, height = _image_size(model_input.get("aspect_ratio", "1:1"))
    colour = tuple(hashlib.sha256(file_id.encode()).digest()[:3])
    image = Image.new("RGB", (width, height), colour)
    buffer = io.BytesIO()
    if str(model_input.get("output_format", "png")).lower() in {"jpg", "jpeg"}:
        image.save(buffer, format="JPEG")
        return buffer.getvalue(), "image/jpeg", "jpg"
    image.save(buffer, format="PNG")
    return buffer.getvalue(), "image/png", "png"


def _prefer_wait_seconds(prefer: str | None) -> float | None:
    """Seconds a `Prefer: wait` / `Prefer: wait=N` header asks the create call to hold."""
    if prefer is None:
        return None
    match = re.search(r"\bwait(?:=(\d+))?", prefer)
    if match is None:
        return None
    seconds = int(match[1]) if match[1] else REPLICATE_MAX_WAIT_SECONDS
    return float(min(seconds, REPLICATE_MAX_WAIT_SECONDS))


class Replicate(Provider):
    """Replicate's API: a bearer token on every call, none on the file URLs it hands out."""

    faults_by_route: ClassVar[Mapping[str, tuple[type, ...]]] = {
        "replicate.create": (*ANY_ROUTE, SlowGeneration, PredictionFailed),
        "replicate.get": ANY_ROUTE,
        "replicate.cancel": ANY_ROUTE,
        "replicate.download": (*ANY_ROUTE, PauseDownload),
        "replicate.files.create": ANY_ROUTE,
        "replicate.files.get": ANY_ROUTE,
        "replicate.files.delete": ANY_ROUTE,
    }
    download_routes: ClassVar[frozenset[str]] = frozenset({"replicate.download"})

    def __init__(self, upstream: "FakeUpstream") -> None:
        super().__init__(upstream)
        self._predictions: dict[str, _Prediction] = {}
        self._uploads: dict[str, UploadedFile] = {}

    def routes(self) -> list[BaseRoute]:
        return [
            StarletteRoute(
                "/v1/models/{owner}/{name}/predictions", self._create_prediction, methods=["POST"]
            ),
            StarletteRoute("/v1/predictions/{prediction_id}", self._get_prediction),
            StarletteRoute(
                "/v1/predictions/{prediction_id}/cancel",
                self._cancel_prediction,
                methods=["POST"],
            ),
            StarletteRoute("/replicate-files/{name}", self._download),
            StarletteRoute("/v1/files", self._create_file, methods=["POST"]),
            StarletteRoute("/v1/files/{file_id}", self._get_file, methods=["GET"]),
            StarletteRoute("/v1/files/{file_id}", self._delete_file, methods=["DELETE"]),
            StarletteRoute("/v1/files/{file_id}/download", self._download_file, methods=["GET"]),
        ]

    def check_auth(self, request: Request, route: str) -> None:
        if route != "replicate.download":
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                body = _problem(401, "Unauthenticated", "You did not pass an authentication token")
                raise Interrupt(self.error_response(body, 401))

    def error_response(
        self, body: Any, status: int, headers: Mapping[str, str] | None = None
    ) -> Response:
        """Replicate labels its error bodies `application/problem+json` (RFC 7807)."""
        return JSONResponse(
            body,
            status_code=status,
            headers=dict(headers or {}),
            media_type="application/problem+json",
        )

    def reset(self) -> None:
        self._predictions.clear()
        self._uploads.clear()

    def _settle(self, prediction: _Prediction) -> str:
        """Complete the prediction (creating its output) if due; return its status now."""
        if (
            prediction.completed_at is None
            and not prediction.canceled
            and time.monotonic() >= prediction.ready_at
        ):
            prediction.completed_at = _now_iso()
            if prediction.outcome is None:
                prediction.output = self._create_output(prediction)
        if prediction.canceled:
            return "canceled"
        if prediction.completed_at is None:
            return "processing"
        return "failed" if prediction.outcome is not None else "succeeded"

    def _prediction_json(self, prediction: _Prediction, status: str) -> dict[str, Any]:
        running = status in {"starting", "processing"}
        prediction_url = f"{self.upstream.base_url}/v1/predictions/{prediction.id}"
        return {
            "id": prediction.id,
            "model": prediction.model,
            "version": "hidden",
            "input": prediction.input,
            "logs": "" if running else "Generating...\nDone.",
            "output": prediction.output if status == "succeeded" else None,
            "data_removed": False,
            "error": prediction.outcome.error
            if status == "failed" and prediction.outcome
            else None,
            "source": "api",
            "status": status,
            "created_at": prediction.created_at,
            "started_at": None if status == "starting" else prediction.created_at,
            "completed_at": None if running else prediction.completed_at,
            "urls": {
                "cancel": f"{prediction_url}/cancel",
                "get": prediction_url,
                "web": f"https://replicate.com/p/{prediction.id}",
            },
            "metrics": {} if running else {"predict_time": 1.0},
        }

    def _create_output(self, prediction: _Prediction) -> str:
        file_id = uuid.uuid4().hex
        if "imagen" in prediction.model:
            content, content_type, suffix = _render_image(file_id, prediction.input)
            url = f"{self.upstream.base_url}/replicate-files/{file_id}.{suffix}"
            self.upstream.add_file(file_id, url, content_type, content)
            return url
        url = f"{self.upstream.base_url}/replicate-files/{file_id}.mp4"
        self.upstream.add_file(file_id, url, "video/mp4")
        return url

    async def _create_prediction(self, request: Request) -> Response:
        record, fault = await self.enter(request, "replicate.create")
        owner, name = request.path_params["owner"], request.path_params["name"]
        if "imagen" not in name and "veo" not in name:
            body = _problem(404, "Not found", f"The model {owner}/{name} does not exist.")
            return self.error_response(body, 404)
        model_input = (record.json or {}).get("input")
        if not isinstance(model_input, dict):
            body = _problem(422, "Input validation failed", "input: Invalid type. Expected: object")
            return self.error_response(body, 422)
        missing = [url for url in self._file_urls(model_input) if url not in self._live_urls()]
        if missing:
            body = _problem(422, "Input validation failed", f"input: cannot fetch {missing[0]}")
            return self.error_response(body, 422)
        prediction = _Prediction(
            id=_new_replicate_id(),
            model=f"{owner}/{name}",
            input=model_input,
            created_at=_now_iso(),
            ready_at=time.monotonic() + self.upstream.latency(fault),
            outcome=fault if isinstance(fault, PredictionFailed) else None,
        )
        self._predictions[prediction.id] = prediction
        wait = _prefer_wait_seconds(request.headers.get("prefer"))
        if wait is None:
            return JSONResponse(self._prediction_json(prediction, "starting"), status_code=201)
        await hold(request.receive, min(wait, prediction.ready_at - time.monotonic()))
        status = self._settle(prediction)
        # A wait that runs out answers "starting" (see replicate.run.async_run's comment).
        status = "starting" if status == "processing" else status
        return JSONResponse(self._prediction_json(prediction, status), status_code=201)

    def _find_prediction(self, request: Request) -> _Prediction:
        prediction = self._predictions.get(request.path_params["prediction_id"])
        if prediction is None:
            raise Interrupt(self.error_response(_problem(404, "Not found", "Not found."), 404))
        return prediction

    async def _get_prediction(self, request: Request) -> Response:
        await self.enter(request, "replicate.get")
        prediction = self._find_prediction(request)
        return JSONResponse(self._prediction_json(prediction, self._settle(prediction)))

    async def _cancel_prediction(self, request: Request) -> Response:
        await self.enter(request, "replicate.cancel")
        prediction = self._find_prediction(request)
        if self._settle(prediction) == "processing":
            prediction.canceled = True
            prediction.completed_at = _now_iso()
        return JSONResponse(self._prediction_json(prediction, self._settle(prediction)))

    async def _download(self, request: Request) -> Response:
        _, fault = await self.enter(request, "replicate.download")
        file_id = Path(request.path_params["name"]).stem
        if not self.upstream.has_file(file_id):
            return Response("Not Found", status_code=404, media_type="text/plain")
        drop_after = fault.after_bytes if isinstance(fault, DropConnection) else None
        pause = fault if isinstance(fault, PauseDownload) else None
        return self.upstream.media_response(file_id, drop_after, pause)

    # ---- the files API

    def _files_url(self) -> str:
        return f"{self.upstream.base_url}/v1/files/"

    def _file_urls(self, value: Any) -> list[str]:
        """Every string in a model input that names a file of this files API."""
        if isinstance(value, dict):
            return [url for item in value.values() for url in self._file_urls(item)]
        if isinstance(value, list):
            return [url for item in value for url in self._file_urls(item)]
        if isinstance(value, str) and value.startswith(self._files_url()):
            return [value]
        return []

    def _live_urls(self) -> set[str]:
        return {upload.url for upload in self._uploads.values() if not upload.deleted}

    def _file_json(self, upload: UploadedFile) -> dict[str, Any]:
        """The file object as the real API answers it (see the SDK's `replicate.file.File`)."""
        created = datetime.now(UTC)
        return {
            "id": upload.file_id,
            "name": upload.name,
            "content_type": upload.content_type,
            "size": len(upload.content),
            "etag": hashlib.md5(upload.content, usedforsecurity=False).hexdigest(),
            "checksums": {
                "sha256": hashlib.sha256(upload.content).hexdigest(),
                "md5": hashlib.md5(upload.content, usedforsecurity=False).hexdigest(),
            },
            "metadata": {},
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "expires_at": (created + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "urls": {"get": upload.url},
        }

    def _find_upload(self, request: Request) -> UploadedFile:
        upload = self._uploads.get(request.path_params["file_id"])
        if upload is None or upload.deleted:
            raise Interrupt(self.error_response(_problem(404, "Not found", "Not found."), 404))
        return upload

    async def _create_file(self, request: Request) -> Response:
        """`multipart/form-data` with the file in the part named `content`, as the SDK sends."""
        await self.enter(request, "replicate.files.create")
        part = _multipart_part(
            request.headers.get("content-type", ""), await request.body(), "content"
        )
        if part is None:
            body = _problem(400, "Bad request", "Expected a multipart part named content")
            return self.error_response(body, 400)
        filename, content_type, content = part
        file_id = _new_replicate_id()
        upload = UploadedFile(
            file_id=file_id,
            url=f"{self._files_url()}{file_id}",
            name=filename,
            content_type=content_type,
            content=content,
        )
        self._uploads[file_id] = upload
        self.upstream.uploaded_files.append(upload)
        return JSONResponse(self._file_json(upload), status_code=201)

    async def _get_file(self, request: Request) -> Response:
        await self.enter(request, "replicate.files.get")
        return JSONResponse(self._file_json(self._find_upload(request)))

    async def _download_file(self, request: Request) -> Response:
        await self.enter(request, "replicate.files.get")
        upload = self._find_upload(request)
        return Response(upload.content, media_type=upload.content_type)

    async def _delete_file(self, request: Request) -> Response:
        await self.enter(request, "replicate.files.delete")
        self._find_upload(request).deleted = True
        return Response(status_code=204)


def _multipart_part(content_type: str, body: bytes, name: str) -> tuple[str, str, bytes] | None:
    """(filename, content type, bytes) of the part called `name` of a multipart body."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or match is None:
        return None
    for part in body.split(b"--" + match[1].encode()):
        head, separator, content = part.partition(b"\r\n\r\n")
        if not separator:
            continue
        headers = head.decode("latin-1")
        if not re.search(rf'name="{re.escape(name)}"', headers):
            continue
        filename = re.search(r'filename="([^"]*)"', headers)
        part_type = re.search(r"(?im)^content-type:\s*(\S+)", headers)
        return (
            filename[1] if filename else name,
            part_type[1] if part_type else "application/octet-stream",
            content.removesuffix(b"\r\n"),
        )
    return None
