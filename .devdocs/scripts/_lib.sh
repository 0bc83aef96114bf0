# Helpers shared by the scripts in this folder. Sourced, not run.
#
# Needs only bash, curl and python3. Environment:
#   API_KEY         sent as `X-API-Key` when the server has MV_API_KEYS set
#   CURL_MAX_TIME   seconds one generation request may take (default 900). Keep it above the
#                   server's MV_GENERATION_TIMEOUT_SECONDS (600 by default) plus queue time.

CURL_MAX_TIME="${CURL_MAX_TIME:-900}"

# Headers every request carries (authentication only when API_KEY is set).
AUTH_ARGS=()
if [[ -n "${API_KEY:-}" ]]; then
  AUTH_ARGS=(-H "X-API-Key: ${API_KEY}")
fi

# Print to stderr.
log() { printf '%s\n' "$*" >&2; }

# new_key: a fresh random Idempotency-Key (a UUID).
new_key() { python3 -c 'import uuid; print(uuid.uuid4())'; }

# json_get FILE PATH: one value from a JSON file; PATH is dotted, list indexes are numbers
# (e.g. `scenes.0.description`). Strings print raw, everything else as JSON.
json_get() {
  python3 - "$1" "$2" <<'PY'
import json, sys
value = json.load(open(sys.argv[1]))
for part in sys.argv[2].split("."):
    value = value[int(part)] if isinstance(value, list) else value[part]
print(value if isinstance(value, str) else json.dumps(value))
PY
}

# header_value FILE NAME: a response header's value from a `curl -D` dump (case-insensitive).
header_value() {
  python3 - "$1" "$2" <<'PY'
import sys
name = sys.argv[2].lower() + ":"
for line in open(sys.argv[1], encoding="latin-1"):
    if line.lower().startswith(name):
        print(line.split(":", 1)[1].strip())
        break
PY
}

# describe_error BODY_FILE HEADERS_FILE STATUS: one readable line for an error answer.
describe_error() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
body_file, headers_file, status = sys.argv[1:4]
retry_after = None
for line in open(headers_file, encoding="latin-1"):
    if line.lower().startswith("retry-after:"):
        retry_after = line.split(":", 1)[1].strip()
raw = open(body_file, "rb").read()
try:
    body = json.loads(raw)
    line = f"HTTP {status} {body.get('error_code')}: {body.get('message')}"
    if body.get("backend_used"):
        line += f" [backend {body['backend_used']}]"
    if retry_after:
        line += f" (Retry-After: {retry_after} s)"
    line += f" (request_id {body.get('request_id')})"
    for item in body.get("details") or []:
        if isinstance(item, dict):
            line += f"\n    {item.get('field')}: {item.get('message')}"
    hints = {
        "RATE_LIMIT_EXCEEDED": "worth retrying after Retry-After, with the same Idempotency-Key",
        "BACKEND_ERROR": "worth retrying after a backoff, with the same Idempotency-Key",
        "GENERATION_TIMEOUT": "a retry starts a new (billed) generation",
        "GENERATION_FAILED": "retry only after changing the request, or once at most",
        "CONTENT_POLICY_VIOLATION": "change the text; do not retry as is",
        "BACKEND_NOT_CONFIGURED": "a server configuration problem (provider key); do not retry",
    }
    if body.get("error_code") in hints:
        line += f"\n    hint: {hints[body['error_code']]}"
except ValueError:
    line = f"HTTP {status}: {raw[:300]!r}"
print(line)
PY
}

# api METHOD URL BODY_OUT HEADERS_OUT [curl args...]
# Runs one request; writes the body and the response headers to the given files and sets
# HTTP_STATUS. Returns 0 for 2xx; otherwise prints a readable error and returns 1
# (HTTP_STATUS is 000 when the server could not be reached).
api() {
  local method="$1" url="$2" body_out="$3" headers_out="$4"
  shift 4
  local curl_exit=0
  # (`${a[@]+"${a[@]}"}` expands an empty array safely under `set -u` in bash 3.2, macOS's.)
  HTTP_STATUS=$(curl -sS -X "$method" ${AUTH_ARGS[@]+"${AUTH_ARGS[@]}"} --max-time "$CURL_MAX_TIME" \
    -o "$body_out" -D "$headers_out" -w '%{http_code}' "$@" "$url") || curl_exit=$?
  if [[ $curl_exit -ne 0 ]]; then
    HTTP_STATUS=000
    log "error: $method $url failed: curl exit $curl_exit (server not reachable, or timed out)"
    return 1
  fi
  if [[ "$HTTP_STATUS" != 2?? ]]; then
    log "error: $method $url -> $(describe_error "$body_out" "$headers_out" "$HTTP_STATUS")"
    return 1
  fi
  return 0
}

# post_json URL JSON_BODY BODY_OUT HEADERS_OUT [extra curl args...]
post_json() {
  local url="$1" json="$2" body_out="$3" headers_out="$4"
  shift 4
  api POST "$url" "$body_out" "$headers_out" -H 'Content-Type: application/json' \
    --data-binary "$json" "$@"
}

# to_json KEY=VALUE... KEY:=JSON...: a JSON object, as HTTPie spells it: `key=value` is a
# string, `key:=value` is raw JSON (numbers, true/false, null). Empty values are left out.
to_json() {
  python3 - "$@" <<'PY'
import json, sys
body = {}
for argument in sys.argv[1:]:
    raw = ":=" in argument.split("=", 1)[0] + "="
    key, value = argument.split(":=", 1) if raw else argument.split("=", 1)
    if value == "":
        continue
    body[key] = json.loads(value) if raw else value
print(json.dumps(body))
PY
}

# now: the current time in seconds (float); elapsed START: seconds since START, one decimal.
# (python3 rather than `date +%s.%N`, which macOS lacks.)
now() { python3 -c 'import time; print(time.time())'; }
elapsed() { python3 -c 'import sys, time; print(f"{time.time() - float(sys.argv[1]):.1f}")' "$1"; }

# sha256_of FILE
sha256_of() { python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }

# file_size FILE
file_size() { python3 -c 'import os,sys; print(os.path.getsize(sys.argv[1]))' "$1"; }

# Print how a generation was made, from a saved response's metadata.
print_generation_metadata() {
  python3 - "$1" <<'PY'
import json, sys
metadata = json.load(open(sys.argv[1]))["metadata"]
print(f"  backend {metadata['backend_used']}, model {metadata['model_used']}, "
      f"{metadata['processing_time_seconds']} s (queued {metadata['queue_wait_seconds']} s)")
print(f"  parameters used: {json.dumps(metadata['parameters_used'])}")
if metadata["parameters_not_applied"]:
    print(f"  not applied: {json.dumps(metadata['parameters_not_applied'])}")
PY
}

# make_song FILE SECONDS: a song of sine tones (440, 550, 660 Hz, changing every 10 s) made
# with the ffmpeg of the project's imageio-ffmpeg wheel (run from the repository, via uv).
make_song() {
  (cd "$(dirname "${BASH_SOURCE[0]}")/../.." && uv run --quiet python - "$1" "$2" <<'PY'
import subprocess, sys
import imageio_ffmpeg
path, seconds = sys.argv[1], sys.argv[2]
tone = "if(gte(t,20),660,if(gte(t,10),550,440))"
subprocess.run(
    [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-f", "lavfi",
     "-i", f"aevalsrc='0.4*sin(2*PI*{tone}*t)':s=48000:d={seconds}", "-ac", "2", path],
    check=True,
)
PY
  )
}

# upload_song FILE BODY_OUT HEADERS_OUT: POST /api/mv/upload_audio (multipart field `file`).
upload_song() {
  api POST "$BASE_URL/api/mv/upload_audio" "$2" "$3" -F "file=@$1"
}

# post_job URL JSON_BODY BODY_OUT HEADERS_OUT LABEL [extra curl args...]
# Like post_json, but asynchronous when ASYNC=1: the POST answers 202 with the job at once,
# then the job's Server-Sent Events are followed (each stage printed with LABEL) until its
# final event, whose result (or error, with HTTP_STATUS set to its status) lands in BODY_OUT,
# so the caller handles both modes alike.
post_job() {
  local url="$1" json="$2" body_out="$3" headers_out="$4" label="$5"
  shift 5
  if [[ "${ASYNC:-0}" != 1 ]]; then
    post_json "$url" "$json" "$body_out" "$headers_out" "$@"
    return
  fi
  post_json "$url" "$json" "$body_out" "$headers_out" -H 'Prefer: respond-async' "$@" || return 1
  local events_url
  events_url="${BASE_URL}$(json_get "$body_out" urls.events)"
  curl -sSN ${AUTH_ARGS[@]+"${AUTH_ARGS[@]}"} --max-time "$CURL_MAX_TIME" "$events_url" |
    python3 -c '
import json, sys
label, out = sys.argv[1], sys.argv[2]
last = None
for line in sys.stdin:
    if not line.startswith("data: "):
        continue
    job = json.loads(line[6:])
    progress = job["progress"]
    step = (job["status"], progress["stage"], progress["percent"])
    if step != last:
        status, stage, percent = step
        shown = "" if percent is None else f" {percent}%"
        print(f"   [{label}] job {status}: {stage}{shown}", flush=True)
        last = step
    if job["status"] in ("succeeded", "failed", "canceled"):
        body = job["result"] if job["status"] == "succeeded" else dict(job["error"] or {})
        status = 200 if job["status"] == "succeeded" else body.pop("status", 500)
        json.dump(body, open(out, "w"))
        open(out + ".status", "w").write(str(status))
        break
' "$label" "$body_out"
  HTTP_STATUS=$(cat "$body_out.status" 2>/dev/null || echo 000)
  if [[ "$HTTP_STATUS" != 200 ]]; then
    log "error: job for $url -> $(describe_error "$body_out" "$headers_out" "$HTTP_STATUS")"
    return 1
  fi
}
