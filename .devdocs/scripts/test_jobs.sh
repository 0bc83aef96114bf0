#!/usr/bin/env bash
# Jobs end to end: submit a clip asynchronously, follow its events, read the job and the
# list, repeat the Idempotency-Key (same job), cancel a second job while it runs, and
# replay the first job's events with Last-Event-ID.
#
#   .devdocs/scripts/test_jobs.sh [BASE_URL]        (default http://localhost:8000)
#
# Meant for a mock server (MV_MOCK_MODE=true MV_MOCK_DELAY_SECONDS=3 uv run python -m backend);
# against a live one it pays for two clips. Environment: BACKEND (default mock), API_KEY,
# CURL_MAX_TIME. Exits non-zero on any HTTP error or unexpected job state.
set -euo pipefail
BASE_URL="${1:-http://localhost:8000}"
BASE_URL="${BASE_URL%/}"
# shellcheck source=_lib.sh
source "$(dirname "$0")/_lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/mv-jobs.XXXXXX")
key=$(new_key)
body=$(to_json prompt="A robot dances in the rain, slow dolly in" duration:=4 \
  backend="${BACKEND:-mock}")

echo "1. POST generate_video with Prefer: respond-async (Idempotency-Key $key)"
post_json "$BASE_URL/api/mv/generate_video" "$body" "$work/job.json" "$work/job.headers" \
  -H 'Prefer: respond-async' -H "Idempotency-Key: $key"
job_id=$(json_get "$work/job.json" job_id)
echo "   HTTP $HTTP_STATUS, job $job_id, status $(json_get "$work/job.json" status)," \
  "Location $(header_value "$work/job.headers" location)"

echo "2. the same key and body again: the same job"
post_json "$BASE_URL/api/mv/generate_video" "$body" "$work/again.json" "$work/again.headers" \
  -H 'Prefer: respond-async' -H "Idempotency-Key: $key"
[[ "$(json_get "$work/again.json" job_id)" == "$job_id" ]] || { log "error: a second job"; exit 1; }
echo "   job $(json_get "$work/again.json" job_id)"

echo "3. GET $BASE_URL/api/mv/jobs/$job_id/events (until the final event)"
curl -sSN ${AUTH_ARGS[@]+"${AUTH_ARGS[@]}"} --max-time "$CURL_MAX_TIME" \
  "$BASE_URL/api/mv/jobs/$job_id/events" | tee "$work/events.txt" |
  python3 -c '
import json, sys
event_id = None
for line in sys.stdin:
    if line.startswith("id: "):
        event_id = line[4:].strip()
    if line.startswith("data: "):
        job = json.loads(line[6:])
        status, stage = job["status"], job["progress"]["stage"]
        print(f"   id {event_id}: {status} / {stage}")
'

echo "4. GET the job"
api GET "$BASE_URL/api/mv/jobs/$job_id" "$work/done.json" "$work/done.headers"
status=$(json_get "$work/done.json" status)
echo "   status $status, video $(json_get "$work/done.json" result.video_url)"
[[ "$status" == succeeded ]] || { log "error: job ended $status"; exit 1; }

echo "5. replay events after id 2 (Last-Event-ID: 2)"
curl -sS ${AUTH_ARGS[@]+"${AUTH_ARGS[@]}"} --max-time 30 -H 'Last-Event-ID: 2' \
  "$BASE_URL/api/mv/jobs/$job_id/events" | grep '^id:' | sed 's/^/   /'

echo "6. a second job, canceled while it runs"
post_json "$BASE_URL/api/mv/generate_video" "$body" "$work/second.json" "$work/second.headers" \
  -H 'Prefer: respond-async'
second=$(json_get "$work/second.json" job_id)
sleep 1
post_json "$BASE_URL/api/mv/jobs/$second/cancel" '{}' "$work/cancel.json" "$work/cancel.headers"
echo "   HTTP $HTTP_STATUS, status $(json_get "$work/cancel.json" status)," \
  "cancel_requested $(json_get "$work/cancel.json" cancel_requested)"

echo "7. GET the list, newest first"
api GET "$BASE_URL/api/mv/jobs?limit=5" "$work/list.json" "$work/list.headers"
python3 -c '
import json, sys
for job in json.load(open(sys.argv[1]))["jobs"]:
    print("  ", job["job_id"], job["kind"], job["status"])
' "$work/list.json"
echo "files in $work"
