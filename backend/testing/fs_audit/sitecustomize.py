"""Imported at interpreter startup by a process that has this folder on `PYTHONPATH`.

With `MV_FS_AUDIT_ROOT` and `MV_FS_AUDIT_LOG` set, it appends one line per directory
listing (`list <path>`) and file open (`open <path>`) under the root to the log, through
Python's audit hooks, so a test can see what a real server process touches (e.g. that
startup does not walk the stored artifacts). The root must be absolute, as the server's own
paths under `MV_OUTPUT_DIR` are.
"""

import os
import sys

_ROOT = os.environ.get("MV_FS_AUDIT_ROOT")
_LOG = os.environ.get("MV_FS_AUDIT_LOG")
_EVENTS = {"os.scandir": "list", "os.listdir": "list", "open": "open"}


def _install(root: str, log_path: str) -> None:
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def record(event: str, args: tuple) -> None:
        kind = _EVENTS.get(event)
        if kind is None or not args or not isinstance(args[0], str | bytes | os.PathLike):
            return
        path = os.fsdecode(args[0])
        if path == root or path.startswith(root + os.sep):
            os.write(log_fd, f"{kind} {path}\n".encode())

    sys.addaudithook(record)


if _ROOT and _LOG:
    _install(_ROOT.rstrip(os.sep), _LOG)
