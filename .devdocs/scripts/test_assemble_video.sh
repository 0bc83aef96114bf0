#!/usr/bin/env bash
# Upload a song, join clips into one music video with it, and fetch the result and the song
# every way the API offers (whole file, Range, HEAD, /info).
#
#   .devdocs/scripts/test_assemble_video.sh [BASE_URL] [VIDEO_ID ...]
#
# BASE_URL defaults to http://localhost:8000. VIDEO_IDs are stored clips (generate_video's
# video_id, or an earlier assembly's); without any, two free mock clips are made first
# (backend "mock", any server). Assembly itself is local ffmpeg work and costs nothing.
# Environment (all optional): SONG_FILE (your own MP3/WAV/M4A/OGG/FLAC; default a
# generated 30 s song of tones), TRANSITION (cut|crossfade, default crossfade),
# TRANSITION_SECONDS, FADE_OUT_SECONDS, AUDIO_MODE (song|clips|mix), CLIP_AUDIO_VOLUME,
# AUDIO_OFFSET_SECONDS, WIDTH, HEIGHT, FPS, API_KEY, CURL_MAX_TIME (default 900 s).
# Exits non-zero on any HTTP error.
set -euo pipefail
BASE_URL="${1:-http://localhost:8000}"
BASE_URL="${BASE_URL%/}"
shift || true
# shellcheck source=_lib.sh
source "$(dirname "$0")/_lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/mv-assemble.XXXXXX")
video_ids=("$@")
if [[ ${#video_ids[@]} -eq 0 ]]; then
  echo "No VIDEO_IDs given: making two mock clips (free) with generate_video"
  for aspect in 16:9 9:16; do
    body=$(to_json prompt="A robot dances in the rain, $aspect" aspect_ratio="$aspect" \
      duration:=4 generate_audio:=true backend=mock)
    post_json "$BASE_URL/api/mv/generate_video" "$body" "$work/clip.json" "$work/clip_headers.txt"
    video_ids+=("$(json_get "$work/clip.json" video_id)")
    echo "  $aspect clip: video_id ${video_ids[${#video_ids[@]}-1]}"
  done
  echo
fi

song="${SONG_FILE:-}"
if [[ -z "$song" ]]; then
  song="$work/song.mp3"
  echo "Making a 30 s song of tones: $song"
  make_song "$song" 30
fi
echo "POST $BASE_URL/api/mv/upload_audio (file=@$song)"
upload_song "$song" "$work/audio.json" "$work/audio_headers.txt"
audio_id=$(json_get "$work/audio.json" audio_id)
audio_url=$(json_get "$work/audio.json" audio_url)
echo "  HTTP $HTTP_STATUS, Location: $(header_value "$work/audio_headers.txt" location)"
echo "  format $(json_get "$work/audio.json" format), $(json_get "$work/audio.json" duration_seconds) s," \
  "$(json_get "$work/audio.json" sample_rate_hz) Hz, $(json_get "$work/audio.json" channels) channels"

echo "GET $BASE_URL$audio_url with Range: bytes=0-1023"
api GET "$BASE_URL$audio_url" "$work/audio_part.bin" "$work/audio_range_headers.txt" \
  -H 'Range: bytes=0-1023'
echo "  HTTP $HTTP_STATUS, Content-Type $(header_value "$work/audio_range_headers.txt" content-type)," \
  "Content-Range $(header_value "$work/audio_range_headers.txt" content-range)"
echo

ids_json=$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "${video_ids[@]}")
body=$(to_json video_ids:="$ids_json" audio_id="$audio_id" audio_mode="${AUDIO_MODE:-}" \
  clip_audio_volume:="${CLIP_AUDIO_VOLUME:-}" audio_offset_seconds:="${AUDIO_OFFSET_SECONDS:-}" \
  transition="${TRANSITION:-crossfade}" transition_seconds:="${TRANSITION_SECONDS:-}" \
  fade_out_seconds:="${FADE_OUT_SECONDS:-}" width:="${WIDTH:-}" height:="${HEIGHT:-}" \
  fps:="${FPS:-}")
echo "POST $BASE_URL/api/mv/assemble_video"
echo "  request: $body"
started=$(now)
post_json "$BASE_URL/api/mv/assemble_video" "$body" "$work/response.json" "$work/headers.txt"
echo "  HTTP $HTTP_STATUS in $(elapsed "$started") s"
python3 - "$work/response.json" <<'PY'
import json, sys
metadata = json.load(open(sys.argv[1]))["metadata"]
for name in ("render", "duration_seconds", "width", "height", "fps", "has_audio",
             "queue_wait_seconds", "processing_time_seconds", "defaults_applied"):
    print(f"  {name}: {metadata[name]}")
PY
video_url=$(json_get "$work/response.json" video_url)
video_id=$(json_get "$work/response.json" video_id)
echo

echo "GET $BASE_URL$video_url"
video="$work/$video_id.mp4"
api GET "$BASE_URL$video_url" "$video" "$work/get_headers.txt"
if [[ "$(file_size "$video")" != "$(json_get "$work/response.json" metadata.file_size_bytes)" \
   || "$(sha256_of "$video")" != "$(json_get "$work/response.json" metadata.sha256)" ]]; then
  log "error: the downloaded video does not match metadata.file_size_bytes / metadata.sha256"
  exit 1
fi
echo "  HTTP $HTTP_STATUS, $(file_size "$video") bytes, size and sha256 match the metadata"
echo "HEAD $BASE_URL$video_url"
api HEAD "$BASE_URL$video_url" /dev/null "$work/head_headers.txt" --head
echo "  HTTP $HTTP_STATUS, ETag $(header_value "$work/head_headers.txt" etag)"
echo "GET $BASE_URL$video_url/info"
api GET "$BASE_URL$video_url/info" "$work/info.json" "$work/info_headers.txt"
echo "  kind $(json_get "$work/info.json" metadata.kind), exists $(json_get "$work/info.json" exists)"
echo
echo "music video: $video"
