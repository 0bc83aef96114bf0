#!/usr/bin/env bash
# POST /api/mv/create_scenes and print the scenes, the files written and the metadata.
#
#   .devdocs/scripts/test_create_scenes.sh [BASE_URL]        (default http://localhost:8000)
#
# Environment (all optional): IDEA, CHARACTER_DESCRIPTION, NUMBER_OF_SCENES (default 3),
# OUTPUT_DIR (a relative folder name; a name that already holds a scene set is a 409),
# API_KEY, CURL_MAX_TIME. Exits non-zero on any HTTP error, printing its error_code and message.
set -euo pipefail
BASE_URL="${1:-http://localhost:8000}"
BASE_URL="${BASE_URL%/}"
# shellcheck source=_lib.sh
source "$(dirname "$0")/_lib.sh"

IDEA="${IDEA:-A robot discovers music in an abandoned city}"
CHARACTER_DESCRIPTION="${CHARACTER_DESCRIPTION:-Silver metallic humanoid robot with a red shield}"
NUMBER_OF_SCENES="${NUMBER_OF_SCENES:-3}"

work=$(mktemp -d "${TMPDIR:-/tmp}/mv-scenes.XXXXXX")
body=$(to_json idea="$IDEA" character_description="$CHARACTER_DESCRIPTION" \
  number_of_scenes:="$NUMBER_OF_SCENES" output_dir="${OUTPUT_DIR:-}")

echo "POST $BASE_URL/api/mv/create_scenes"
echo "  request: $body"
started=$(now)
post_json "$BASE_URL/api/mv/create_scenes" "$body" "$work/response.json" "$work/headers.txt"
echo "  HTTP $HTTP_STATUS in $(elapsed "$started") s" \
  "(X-Request-ID $(header_value "$work/headers.txt" x-request-id))"
echo

python3 - "$work/response.json" <<'PY'
import json, sys, textwrap
response = json.load(open(sys.argv[1]))
metadata = response["metadata"]
print(f"scene set {metadata['scene_set_id']}: {metadata['number_of_scenes']} scenes, "
      f"backend {metadata['backend_used']}, model {metadata['model']}, "
      f"{metadata['processing_time_seconds']} s (queued {metadata['queue_wait_seconds']} s)")
print(f"defaults applied: {', '.join(metadata['defaults_applied']) or 'none'}")
print()
for number, scene in enumerate(response["scenes"], start=1):
    print(f"Scene {number}:")
    print(textwrap.indent(textwrap.fill(scene["description"], 96), "  "))
    print(textwrap.indent(textwrap.fill("avoid: " + scene["negative_description"], 96), "  "))
print()
print("files on the server:")
print(f"  json:     {response['output_files']['json']}")
print(f"  markdown: {response['output_files']['markdown']}")
PY
echo "full response: $work/response.json"
