"""Debian's GStreamer RTSP server with an ONVIF backchannel, as an independent peer for our client.

Runs under /usr/bin/python3 (PyGObject is only there). Prints `PORT <n>` once listening at
rtsp://127.0.0.1:<n>/test; what a client sends on the backchannel is written raw (µ-law bytes)
to --backchannel-file.

`--clip FILE` serves a Matroska file's picture and sound (av-drift-detector's clip) instead of test
patterns, re-encoded as a camera would; `--bframes N` encodes with B-frames (H.264 High profile,
or H.265); `--parameter-sets sdp` sends them only in the SDP (`config-interval=0`, avc stream
format); `--audio-ms` sets the audio packet duration.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

VIDEO = {
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 ! rtph264pay name=pay0 pt=96 "
            "config-interval=-1",
    "h265": "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=25 ! rtph265pay name=pay0 pt=96 "
            "config-interval=-1",
}
AUDIO = {
    "pcmu": "audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1 pt=0",
    "aac": "audio/x-raw,rate=16000,channels=1 ! avenc_aac ! rtpmp4gpay name=pay1 pt=97",
}


def video_chain(codec: str, bframes: int, sdp_only: bool) -> str:
    """Encoder and payloader for a camera-like stream."""
    if not bframes and not sdp_only:
        return VIDEO[codec]
    interval = 0 if sdp_only else -1
    if codec == "h264":
        fmt = "avc" if sdp_only else "byte-stream"
        return (f"x264enc speed-preset=ultrafast key-int-max=25 bframes={bframes} b-adapt=false "
                f"byte-stream={'false' if sdp_only else 'true'} ! video/x-h264,profile=high,stream-format={fmt} ! "
                f"rtph264pay name=pay0 pt=96 config-interval={interval}")
    return (f'x265enc speed-preset=ultrafast key-int-max=25 option-string="bframes={bframes}:b-adapt=0" ! '
            f"rtph265pay name=pay0 pt=96 config-interval={interval}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--video", choices=VIDEO, default="h264")
    parser.add_argument("--audio", choices=[*AUDIO, "none"], default="pcmu")
    parser.add_argument("--backchannel-file", required=True)
    parser.add_argument("--clip")
    parser.add_argument("--bframes", type=int, default=0)
    parser.add_argument("--parameter-sets", choices=["inband", "sdp"], default="inband")
    parser.add_argument("--audio-ms", type=int, default=0)
    args = parser.parse_args()
    Gst.init(None)
    video = video_chain(args.video, args.bframes, args.parameter_sets == "sdp")
    audio = AUDIO.get(args.audio, "")
    if args.audio_ms:
        ns = args.audio_ms * 1_000_000
        audio += f" min-ptime={ns} max-ptime={ns}"
    if args.clip:
        launch = (f"( filesrc location={args.clip} ! matroskademux name=d d.video_0 ! queue ! decodebin ! "
                  f"videoconvert ! {video}")
        if args.audio != "none":
            launch += f" d.audio_0 ! queue ! decodebin ! audioconvert ! audioresample ! {audio}"
    else:
        launch = (f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! "
                  f"{video}")
        if args.audio != "none":
            launch += f" audiotestsrc is-live=true freq=440 ! audioconvert ! audioresample ! {audio}"
    launch += " )"
    factory = GstRtspServer.RTSPOnvifMediaFactory.new()
    factory.set_launch(launch)
    factory.set_backchannel_launch(
        '( capsfilter caps="application/x-rtp, media=audio, payload=0, clock-rate=8000, encoding-name=PCMU" '
        f'name=depay_backchannel ! rtppcmudepay ! filesink location="{args.backchannel_file}" async=false '
        "sync=false buffer-mode=unbuffered )")
    factory.set_shared(False)
    factory.set_media_gtype(GstRtspServer.RTSPOnvifMedia)
    server = GstRtspServer.RTSPOnvifServer.new()
    server.set_address("127.0.0.1")
    server.set_service("0")
    server.get_mount_points().add_factory("/test", factory)
    server.attach(None)
    print(f"PORT {server.get_bound_port()}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    sys.exit(main())
