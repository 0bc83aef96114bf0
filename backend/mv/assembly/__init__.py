"""Audio uploads and the ffmpeg assembly of a music video.

`ffmpeg.py` runs the binary of the imageio-ffmpeg wheel as an asyncio subprocess,
`probe.py` reads what a media file holds, `graph.py` turns a plan into one ffmpeg command
(pure functions), `audio.py` stores uploaded songs and `music_video.py` is the domain entry
point, `assemble_video`.
"""
