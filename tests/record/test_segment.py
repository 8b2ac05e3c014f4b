"""The segment writer: whatever times it is given, the muxer takes every frame and the file decodes."""

import itertools
import subprocess

import av

from opticlink.media import AudioConfig, MediaFrame, VideoConfig, length_prefixed
from opticlink.record.segment import SegmentWriter
from opticlink.sim.media import encode_audio, synthetic_audio, synthetic_video

CLIP = synthetic_video(160, 96, 25, seconds=2, bitrate=200_000)
VIDEO = VideoConfig("h264", (CLIP.sps, CLIP.pps))
AUDIO = AudioConfig("pcmu", 8000)


def picture(i: int) -> MediaFrame:
    nalus = [n for n in CLIP.frames[i] if n[0] & 0x1F not in (7, 8)]
    return MediaFrame(0, "video", "h264", i * 40_000, 40_000, CLIP.keyframes[i], length_prefixed(nalus), VIDEO)


def test_frames_bunched_within_one_tick_of_the_track_are_all_written_and_the_file_decodes(tmp_path):
    """A stalled process hands the recorder frames whose decode times are microseconds apart, or go back:
    the muxer refused the second of two in one 1/90000 s tick ("Invalid argument"), and the recording
    stopped for 10 s."""
    path = tmp_path / "bunched.mov"
    writer = SegmentWriter(path, keyframe=picture(0), audio=AUDIO)
    times = [0, 40_000, 40_001, 40_002, 39_000, 120_000, 120_005, 200_000]
    for i, t in enumerate(times):
        writer.write_video(picture(i), t, t)
    sound = encode_audio(synthetic_audio(8000, 1), "pcmu").data
    writer.write_audio(sound[:160], 0, 160)
    writer.write_audio(b"", 160, 0)  # an empty frame: nothing written, nothing refused
    writer.write_audio(sound[160:320], 160, 160)
    writer.flush()
    writer.close()
    assert writer.stats.video_frames == len(times) and writer.stats.audio_frames == 2
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
        pictures = [f for p in packets for f in p.decode()] + list(container.streams.video[0].codec_context.decode())
    dts = [p.dts for p in packets]
    assert len(dts) == len(times) and all(b > a for a, b in itertools.pairwise(dts))
    assert len(pictures) == len(times)
    # as stored (FFmpeg's own demuxer and muxer, times in the track's ticks): no complaint
    result = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0", "-c", "copy", "-f", "null", "-"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr.strip() == ""
