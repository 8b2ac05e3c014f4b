"""Ready-made simulated cameras: the embedded default, the demo set, and benchmark cameras."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from opticlink.sim.camera import ParameterSetMode
from opticlink.sim.faults import Faults
from opticlink.sim.media import VideoCodec, encode_audio, load_audio, load_video, synthetic_audio, synthetic_video
from opticlink.sim.spec import BackchannelSink, CameraSpec, EchoSettings

AUDIO_RATES = {"pcmu": 8000, "pcma": 8000, "aac": 16000}
# A camera's sub-stream (`camera(substream=True)`): what real cameras offer for a wall of tiles
SUB_WIDTH, SUB_HEIGHT, SUB_FPS, SUB_BITRATE = 320, 180, 15, 200_000


def camera(name: str = "cam1", *, audio: str | None = "pcmu", faults: Faults | None = None,
           width: int = 640, height: int = 360, fps: int = 25, bitrate: int = 800_000,
           clip: str | Path | None = None, username: str | None = None, password: str | None = None,
           backchannel: bool = True, backchannel_file: Path | None = None, audio_packet_ms: int = 20,
           echo: EchoSettings | None = None, bframes: int = 0, codec: VideoCodec = "h264",
           parameter_sets: ParameterSetMode = "both", substream: bool = False) -> CameraSpec:
    """One simulated camera. `audio` is pcmu, pcma, aac or None; `clip` replaces the test picture
    and sound with a file's (transcoded once, cached). `codec` (h264, h265) and `bframes` (0 to 3)
    shape the video; `parameter_sets` says where its parameter sets go (inband, sdp, both).
    `substream`: also serve a sub-stream at `<name>/sub`: the test picture at `SUB_WIDTH`x`SUB_HEIGHT`,
    `SUB_FPS` fps, `SUB_BITRATE` (encoded once and cached, like the main picture), the same sound
    and faults, no backchannel (talk goes to the main stream)."""
    if clip is not None:
        video = load_video(clip, bitrate=bitrate, codec=codec, bframes=bframes)
    else:
        video = synthetic_video(width, height, fps, seconds=4, bitrate=bitrate, codec=codec, bframes=bframes)
    encoded = None
    if audio is not None:
        if audio not in AUDIO_RATES:
            raise ValueError(f"simulated audio must be one of {', '.join(AUDIO_RATES)}, not {audio!r}")
        rate = AUDIO_RATES[audio]
        if clip is not None:
            # audio and video must loop with one period, or the content slips on every loop
            pcm = load_audio(clip, rate).fitted(round(video.duration * rate))
        else:
            pcm = synthetic_audio(rate, seconds=4)
        encoded = encode_audio(pcm, audio)
    faults = faults or Faults()
    sub = None
    if substream:
        sub = CameraSpec(name=f"{name}/sub", audio=encoded, faults=dataclasses.replace(faults), username=username,
                         password=password, backchannel=False, audio_packet_ms=audio_packet_ms,
                         parameter_sets=parameter_sets,
                         video=synthetic_video(SUB_WIDTH, SUB_HEIGHT, SUB_FPS, seconds=4, bitrate=SUB_BITRATE,
                                               codec=codec))
    return CameraSpec(name=name, video=video, audio=encoded, faults=faults, username=username,
                      password=password, backchannel=backchannel, audio_packet_ms=audio_packet_ms,
                      sink=BackchannelSink(backchannel_file), echo=echo, parameter_sets=parameter_sets,
                      substream=sub)


DEMO_TITLES = {"cam1": "Doorbell: its speaker echoes 150 ms later", "cam2": "300 ppm audio skew, 40 ms jitter",
               "cam3": "AAC audio", "cam4": "No audio, no speaker"}


def demo_cameras(backchannel_dir: Path | None = None) -> list[CameraSpec]:
    """The demo's four cameras, each with a sub-stream at `camN/sub`: a doorbell that hears its own
    speaker; 300 ppm audio skew with 40 ms jitter; AAC; no audio and no speaker. `backchannel_dir`:
    write what each speaker receives to camN.bin."""
    def speaker(name: str) -> Path | None:
        return backchannel_dir / f"{name}.bin" if backchannel_dir is not None else None

    return [
        camera("cam1", echo=EchoSettings(delay_ms=150, gain_db=-6), backchannel_file=speaker("cam1"),
               substream=True),
        camera("cam2", faults=Faults(audio_skew_ppm=300, jitter_ms=40, seed=2), backchannel_file=speaker("cam2"),
               substream=True),
        camera("cam3", audio="aac", faults=Faults(seed=3), backchannel_file=speaker("cam3"), substream=True),
        camera("cam4", audio=None, faults=Faults(seed=4), backchannel=False, substream=True),
    ]
