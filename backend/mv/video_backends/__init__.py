"""Video backends and the factory that picks one by name.

`replicate` (default) and `gemini` call the providers; `mock` renders a local clip at no
cost. In mock mode (`MV_MOCK_MODE=true`) every name is served by the mock.
"""

from backend.mv.errors import ValidationFailed
from backend.mv.mock_provider import MOCK_BACKEND
from backend.mv.video_backends.base import VideoBackend
from backend.mv.video_backends.gemini_backend import GeminiVideoBackend
from backend.mv.video_backends.mock_backend import MockVideoBackend
from backend.mv.video_backends.replicate_backend import ReplicateVideoBackend

BACKENDS: dict[str, VideoBackend] = {
    "replicate": ReplicateVideoBackend(),
    "gemini": GeminiVideoBackend(),
    MOCK_BACKEND: MockVideoBackend(),
}
DEFAULT_BACKEND = "replicate"


def get_video_backend(name: str = DEFAULT_BACKEND, *, mock_mode: bool = False) -> VideoBackend:
    if name not in BACKENDS:
        raise ValidationFailed.about("backend", f"must be one of {sorted(BACKENDS)}", "enum")
    return BACKENDS[MOCK_BACKEND] if mock_mode else BACKENDS[name]
