"""Load benchmark of the music-video service (issue 7), run with one command:

    uv run python -m backend.bench            # the issue's parameters (about 3 minutes)
    uv run python -m backend.bench --smoke    # tiny N, L and sizes (under 20 s)
    uv run python -m backend.bench --help     # every knob

It starts the fake provider upstream (`backend.testing.fake_upstream`) and the real server
(`python -m backend`, uvicorn as in production) as separate processes on free loopback
ports with a temporary `MV_OUTPUT_DIR`, drives them over HTTP, prints a table of figures
with PASS/MISS against the issue's targets, writes the same figures as JSON
(`bench-results/latest.json` unless `--output` says otherwise) with both processes' logs
beside it (`bench-results/latest-logs/`), and always stops both processes.

Sections (the issue's numbering):

1. `generate`: N concurrent `generate_video` per backend: wall / L, p50/p99 latency, and the
   rig floor (the fake's own delivery time of N x S to curl, in the same run).
2. `health`: `GET /health` latency sampled every 50 ms while (1) runs.
3. `memory`: the server's peak RSS during (1), and its RSS growth while 10 clips of 200 MB
   stream through at once (a second stack whose fake serves 200 MB clips).
4. `get_video`: download throughput of a 200 MB clip, and a Range request for its last MiB
   checked byte for byte against the file on disk.
5. `create_scenes`: server overhead (latency minus the fake's latency), p50/p99.
6. `idle_connections`: `/health` p50/p99 (a new connection each time) with 2,000 idle
   connections open, beside the same figure with none open.
7. `reference_images` (issue 14): `/health` sampled every 5 ms while 10 `generate_video`,
   each with a 9.7 MB PNG as base64 (13 MB of JSON), run at once on mock, then on each
   live backend (a third stack, latency 3 s).

No timing is asserted anywhere: the figures are for people (`.devdocs/performance.md`);
`test_bench_smoke.py` only checks that the smoke run completes with every figure present.
"""
