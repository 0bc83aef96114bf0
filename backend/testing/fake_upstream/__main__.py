"""`python -m backend.testing.fake_upstream`: the fake as a process, for the benchmark."""

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from backend.testing.fake_upstream.media import DEFAULT_CLIP_BYTES
from backend.testing.fake_upstream.server import FakeUpstream


def main(argv: Sequence[str] | None = None) -> None:
    """Run the fake as a process (for the benchmark) until SIGINT or SIGTERM.

    Prints one JSON line `{"base_url": ..., "ca_cert_path": ...}` once it accepts
    connections. Clients must follow redirects for Gemini downloads (`curl -L`).
    """
    # Named explicitly: argparse would otherwise call the program "__main__.py".
    parser = argparse.ArgumentParser(
        prog="python -m backend.testing.fake_upstream",
        description="Fake Gemini and Replicate upstream (HTTPS).",
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-seconds", type=float, default=0.0)
    parser.add_argument("--clip-bytes", type=int, default=DEFAULT_CLIP_BYTES)
    parser.add_argument("--cert-dir", type=Path, required=True, help="where the CA PEM goes")
    args = parser.parse_args(argv)
    args.cert_dir.mkdir(parents=True, exist_ok=True)
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    # Blocked before the server thread starts, so only sigwait below receives them.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    fake = FakeUpstream(
        latency_seconds=args.latency_seconds,
        clip_bytes=args.clip_bytes,
        port=args.port,
        cert_dir=args.cert_dir,
    )
    fake.start()
    try:
        ready = {"base_url": fake.base_url, "ca_cert_path": str(fake.ca_cert_path)}
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()
        signal.sigwait(stop_signals)
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
