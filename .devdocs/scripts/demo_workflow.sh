#!/usr/bin/env bash
# The whole client workflow against a running server:
#   1. create_scenes (NUMBER_OF_SCENES scenes)
#   2. generate_character_reference (the main character)
#   3. generate_video once per scene, all at the same time (background curl jobs), each with
#      its own Idempotency-Key and the character passed by reference_image_id
#   4. download every clip and check it against its sha256
#   5. upload a song (SONG_FILE, or 60 s of generated tones), assemble_video: the clips that
#      succeeded, crossfaded over the song, faded out at the end; download the music video
#      and print where every file is.
#
#   .devdocs/scripts/demo_workflow.sh [--async] [BASE_URL]  (default http://localhost:8000)
#
# --async (or ASYNC=1): every generation is sent with `Prefer: respond-async` (202 and the
# job at once) and followed through its Server-Sent Events to its end, printing each stage:
# the way to run behind a proxy or CDN that cuts long requests.
#
# Start a free server first:  MV_MOCK_MODE=true uv run python -m backend
# Against a live server (real keys) every step is billed, so the script refuses to run unless
# ALLOW_LIVE=1 is set.
#
# Environment (all optional):
#   NUMBER_OF_SCENES (default 3), IDEA, CHARACTER_DESCRIPTION, DURATION (4|6|8), BACKEND
#   RUN_ID       prefix of every Idempotency-Key (default: random). Run again with the same
#                RUN_ID and the server replays the stored answers instead of generating (and
#                paying) again.
#   OUT_DIR      where downloads go (default: a new temporary folder)
#   MAX_ATTEMPTS attempts per clip for retryable errors (default 3)
#   MOCK_FAILURE SCENE:MARKER, e.g. `2:[mock:rate_limit]`: appends a mock failure marker to that
#                scene's prompt, to watch the error handling (mock mode only; see
#                .devdocs/v1/client-impl-notes.md)
#   SONG_FILE    your own MP3/WAV/M4A/OGG/FLAC for step 5 (default: generated with the
#                project's ffmpeg through `uv run`)
#   API_KEY, CURL_MAX_TIME (default 900 s per request)
# Exits non-zero when any step or any clip failed (the clips that succeeded are still saved).
set -euo pipefail
if [[ "${1:-}" == --async ]]; then
  export ASYNC=1
  shift
fi
BASE_URL="${1:-http://localhost:8000}"
BASE_URL="${BASE_URL%/}"
# shellcheck source=_lib.sh
source "$(dirname "$0")/_lib.sh"

NUMBER_OF_SCENES="${NUMBER_OF_SCENES:-3}"
IDEA="${IDEA:-A robot discovers music in an abandoned city}"
CHARACTER_DESCRIPTION="${CHARACTER_DESCRIPTION:-Silver metallic humanoid robot with a red shield and glowing blue eyes}"
RUN_ID="${RUN_ID:-demo-$(new_key)}"
MAX_ATTEMPTS="${MAX_ATTEMPTS:-3}"
OUT_DIR="${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/mv-demo.XXXXXX")}"
mkdir -p "$OUT_DIR"
workflow_started=$(now)

# ---- 0. which server is this?
api GET "$BASE_URL/" "$OUT_DIR/service.json" "$OUT_DIR/service_headers.txt"
mode=$(json_get "$OUT_DIR/service.json" mode)
echo "server $BASE_URL: mode $mode, version $(json_get "$OUT_DIR/service.json" version)"
if [[ "$mode" != mock && "${ALLOW_LIVE:-0}" != 1 ]]; then
  log "error: the server is in $mode mode: every scene, image and clip is billed by the provider."
  log "       Set ALLOW_LIVE=1 to run anyway, or start the server with MV_MOCK_MODE=true."
  exit 2
fi
echo "run id $RUN_ID, downloads in $OUT_DIR"
echo

# ---- 1. scenes
echo "1. create_scenes: $NUMBER_OF_SCENES scenes for \"$IDEA\""
body=$(to_json idea="$IDEA" character_description="$CHARACTER_DESCRIPTION" \
  number_of_scenes:="$NUMBER_OF_SCENES")
step_started=$(now)
post_job "$BASE_URL/api/mv/create_scenes" "$body" "$OUT_DIR/scenes.json" \
  "$OUT_DIR/scenes_headers.txt" scenes -H "Idempotency-Key: $RUN_ID-scenes"
scene_count=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["scenes"]))' \
  "$OUT_DIR/scenes.json")
echo "   $scene_count scenes in $(elapsed "$step_started") s," \
  "scene_set_id $(json_get "$OUT_DIR/scenes.json" metadata.scene_set_id)"
echo

# ---- 2. character reference
echo "2. generate_character_reference"
body=$(to_json character_description="$CHARACTER_DESCRIPTION" aspect_ratio="9:16")
step_started=$(now)
post_job "$BASE_URL/api/mv/generate_character_reference" "$body" "$OUT_DIR/character.json" \
  "$OUT_DIR/character_headers.txt" character -H "Idempotency-Key: $RUN_ID-character"
image_id=$(json_get "$OUT_DIR/character.json" image_id)
image_server_file=$(json_get "$OUT_DIR/character.json" output_file)
image_local_file="$OUT_DIR/character_reference.${image_server_file##*.}"
python3 - "$OUT_DIR/character.json" "$image_local_file" <<'PY'
import base64, json, sys
response = json.load(open(sys.argv[1]))
open(sys.argv[2], "wb").write(base64.b64decode(response["image_base64"]))
PY
echo "   image_id $image_id in $(elapsed "$step_started") s"
echo

# ---- 3. one clip per scene, concurrently
# render_scene N: POST generate_video for scene N with its own Idempotency-Key. Retries what is
# worth retrying with the SAME key (so a retry can never pay twice for a finished clip):
# 429 after its Retry-After, 502 BACKEND_ERROR and network errors after a backoff.
render_scene() {
  local number="$1" index=$(( $1 - 1 ))
  local response="$OUT_DIR/scene-$number.response.json" headers="$OUT_DIR/scene-$number.headers.txt"
  local key="$RUN_ID-scene-$number" attempt=1 started wait_seconds error_code
  local body
  body=$(python3 - "$OUT_DIR/scenes.json" "$index" "$image_id" "${DURATION:-}" "${BACKEND:-}" \
    "${MOCK_FAILURE:-}" <<'PY'
import json, sys
scenes_file, index, image_id, duration, backend, mock_failure = sys.argv[1:7]
scene = json.load(open(scenes_file))["scenes"][int(index)]
prompt = scene["description"]
failing_scene, _, marker = mock_failure.partition(":")
if marker and failing_scene == str(int(index) + 1):
    prompt += " " + marker
body = {
    "prompt": prompt,
    "negative_prompt": scene["negative_description"],
    "reference_image_id": image_id,
    "aspect_ratio": "9:16",
}
if duration:
    body["duration"] = int(duration)
if backend:
    body["backend"] = backend
print(json.dumps(body))
PY
)
  started=$(now)
  while true; do
    echo "   [scene $number] attempt $attempt: POST generate_video (Idempotency-Key $key)"
    if post_job "$BASE_URL/api/mv/generate_video" "$body" "$response" "$headers" \
      "scene $number" -H "Idempotency-Key: $key" 2>"$OUT_DIR/scene-$number.error.txt"; then
      echo "   [scene $number] done in $(elapsed "$started") s:" \
        "video_id $(json_get "$response" video_id)"
      return 0
    fi
    echo "   [scene $number] $(cat "$OUT_DIR/scene-$number.error.txt")"
    error_code=""
    if [[ "$HTTP_STATUS" != 000 ]]; then
      error_code=$(json_get "$response" error_code 2>/dev/null || true)
    fi
    case "$HTTP_STATUS/$error_code" in
      429/*) wait_seconds=$(header_value "$headers" retry-after); wait_seconds="${wait_seconds:-30}" ;;
      000/* | 502/BACKEND_ERROR) wait_seconds=$(( 2 ** attempt )) ;;
      *) return 1 ;;  # 4xx, GENERATION_FAILED, timeouts, config errors: not worth repeating as is
    esac
    if (( attempt >= MAX_ATTEMPTS )); then
      echo "   [scene $number] giving up after $attempt attempts"
      return 1
    fi
    echo "   [scene $number] retrying in $wait_seconds s with the same Idempotency-Key"
    sleep "$wait_seconds"
    attempt=$(( attempt + 1 ))
  done
}

echo "3. generate_video: $scene_count requests at once (live: 20-400 s each)"
step_started=$(now)
pids=()
for number in $(seq 1 "$scene_count"); do
  render_scene "$number" &
  pids+=("$!")
done
# Failed scene numbers as a space-separated string (arrays that may be empty trip `set -u`
# in bash 3.2, the bash macOS ships).
failed=""
for number in $(seq 1 "$scene_count"); do
  if ! wait "${pids[$(( number - 1 ))]}"; then
    failed="$failed $number"
  fi
done
failed_count=$(echo "$failed" | wc -w | tr -d ' ')
echo "   all requests answered in $(elapsed "$step_started") s" \
  "($(( scene_count - failed_count )) of $scene_count clips)"
echo

# ---- 4. downloads
echo "4. downloads"
for number in $(seq 1 "$scene_count"); do
  response="$OUT_DIR/scene-$number.response.json"
  if [[ " $failed " == *" $number "* ]]; then
    continue
  fi
  video_url=$(json_get "$response" video_url)
  clip="$OUT_DIR/scene-$number.mp4"
  if api GET "$BASE_URL$video_url" "$clip" "$OUT_DIR/scene-$number.download_headers.txt" &&
    [[ "$(sha256_of "$clip")" == "$(json_get "$response" metadata.sha256)" ]]; then
    echo "   scene $number: $(file_size "$clip") bytes, sha256 matches"
  else
    log "   scene $number: download failed or does not match its sha256"
    failed="$failed $number"
  fi
done
echo

# ---- 5. the music video: a song, and the clips that succeeded joined with it
echo "5. music video"
# shellcheck disable=SC2086 # $failed is a list of numbers, split on purpose
clip_ids=$(python3 - "$OUT_DIR" "$scene_count" $failed <<'PY'
import json, os, sys
out_dir, scene_count, failed = sys.argv[1], int(sys.argv[2]), set(sys.argv[3:])
print(json.dumps([
    json.load(open(os.path.join(out_dir, f"scene-{n}.response.json")))["video_id"]
    for n in range(1, scene_count + 1) if str(n) not in failed
]))
PY
)
if [[ "$clip_ids" == "[]" ]]; then
  log "   no clip to assemble"
else
  step_started=$(now)
  song="${SONG_FILE:-$OUT_DIR/song.mp3}"
  [[ -n "${SONG_FILE:-}" ]] || make_song "$song" 60
  upload_song "$song" "$OUT_DIR/song.response.json" "$OUT_DIR/song.headers.txt"
  audio_id=$(json_get "$OUT_DIR/song.response.json" audio_id)
  echo "   song: audio_id $audio_id, $(json_get "$OUT_DIR/song.response.json" duration_seconds) s"
  body=$(to_json video_ids:="$clip_ids" audio_id="$audio_id" transition=crossfade \
    transition_seconds:=0.5 fade_out_seconds:=1.5)
  response="$OUT_DIR/music-video.response.json"
  post_job "$BASE_URL/api/mv/assemble_video" "$body" "$response" "$OUT_DIR/music-video.headers.txt" \
    "music video"
  music_video="$OUT_DIR/music-video.mp4"
  api GET "$BASE_URL$(json_get "$response" video_url)" "$music_video" \
    "$OUT_DIR/music-video.download_headers.txt"
  if [[ "$(sha256_of "$music_video")" != "$(json_get "$response" metadata.sha256)" ]]; then
    log "   the music video does not match its sha256"
    exit 1
  fi
  echo "   video_id $(json_get "$response" video_id): $(json_get "$response" metadata.duration_seconds) s," \
    "$(json_get "$response" metadata.render), $(file_size "$music_video") bytes," \
    "in $(elapsed "$step_started") s"
fi
echo

# ---- where everything is
# shellcheck disable=SC2086 # $failed is a list of numbers, split on purpose
python3 - "$OUT_DIR" "$scene_count" $failed <<'PY'
import json, os, sys
out_dir, scene_count, failed = sys.argv[1], int(sys.argv[2]), set(sys.argv[3:])
load = lambda name: json.load(open(os.path.join(out_dir, name)))
scenes, character = load("scenes.json"), load("character.json")
manifest = {
    "scenes": {
        "scene_set_id": scenes["metadata"]["scene_set_id"],
        "server_files": scenes["output_files"],
        "local_response": os.path.join(out_dir, "scenes.json"),
    },
    "character_reference": {
        "image_id": character["image_id"],
        "server_file": character["output_file"],
        "local_file": next(os.path.join(out_dir, name) for name in os.listdir(out_dir)
                           if name.startswith("character_reference.")),
    },
    "clips": [],
}
rows = [
    ("scenes.json (server)", scenes["output_files"]["json"]),
    ("scenes.md (server)", scenes["output_files"]["markdown"]),
    ("character (server)", character["output_file"]),
    ("character (local)", manifest["character_reference"]["local_file"]),
]
for number in range(1, scene_count + 1):
    if str(number) in failed:
        rows.append((f"scene {number}", "FAILED (see the messages above)"))
        manifest["clips"].append({"scene": number, "failed": True})
        continue
    clip = load(f"scene-{number}.response.json")
    local = os.path.join(out_dir, f"scene-{number}.mp4")
    rows.append((f"scene {number} (server)", clip["video_path"]))
    rows.append((f"scene {number} (local)", local))
    manifest["clips"].append({
        "scene": number, "video_id": clip["video_id"], "video_url": clip["video_url"],
        "server_file": clip["video_path"], "local_file": local,
        "processing_time_seconds": clip["metadata"]["processing_time_seconds"],
    })
music_video = os.path.join(out_dir, "music-video.response.json")
if os.path.exists(music_video):
    assembled = load("music-video.response.json")
    local = os.path.join(out_dir, "music-video.mp4")
    manifest["music_video"] = {
        "video_id": assembled["video_id"], "video_url": assembled["video_url"],
        "server_file": assembled["video_path"], "local_file": local,
        "duration_seconds": assembled["metadata"]["duration_seconds"],
    }
    rows.append(("music video (server)", assembled["video_path"]))
    rows.append(("music video (local)", local))
rows.append(("manifest (local)", os.path.join(out_dir, "manifest.json")))
width = max(len(label) for label, _ in rows)
print("Files")
for label, path in rows:
    print(f"  {label:<{width}}  {path}")
json.dump(manifest, open(os.path.join(out_dir, "manifest.json"), "w"), indent=2)
PY
echo
echo "workflow finished in $(elapsed "$workflow_started") s"
if [[ -n "${failed// /}" ]]; then
  log "error: scene(s)$failed failed"
  exit 1
fi
