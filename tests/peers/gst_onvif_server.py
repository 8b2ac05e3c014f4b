"""Debian's GStreamer RTSP server with an ONVIF backchannel, as an independent peer for our client.

Runs under /usr/bin/python3 (PyGObject is only there). Prints `PORT <n>` once listening at
rtsp://127.0.0.1:<n>/test; what a client sends on the backchannel is written raw (µ-law bytes)
to --backchannel-file.

`--clip FILE` serves a Matroska file's picture and sound (av-drift-detector's clip) instead of test
patterns, re-encoded as a camera would; `--bframes N` encodes with B-frames (H.264 High profile,
or H.265); `--parameter-sets sdp` sends them only in the SDP (`config-interval=0`, avc stream
format); `--audio-ms` sets the audio packet duration; `--audio-report-delay S` makes the video's
first Sender Report come first and the audio's about S seconds later (see `order_reports`).
"""

import argparse
import sys
import threading
import time

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


def element_of(bin_, factory: str):
    """The first element `factory` made inside `bin_` (this PyGObject's Gst.Iterator is no Python iterator)."""
    elements = bin_.iterate_recurse()
    while True:
        result, element = elements.next()
        if result != Gst.IteratorResult.OK:
            raise LookupError(f"no {factory} in {bin_.get_name()}")
        if element.get_factory() is not None and element.get_factory().get_name() == factory:
            return element


def order_reports(factory, delay_s: float) -> None:
    """The video's first Sender Report first, the audio's `delay_s` later, as cameras that start their
    tracks' RTCP timers apart do. rtpbin's sessions send reports every 1 s or so (its default minimum is
    5 s, randomized, and which track's first report goes first is chance); the audio session's reports
    are dropped until `delay_s` after the video's first has gone out."""
    state = {"video_at": None}
    lock = threading.Lock()

    def video_report(pad, info):
        with lock:
            if state["video_at"] is None:
                state["video_at"] = time.monotonic()
        return Gst.PadProbeReturn.OK

    def audio_report(pad, info):
        with lock:
            at = state["video_at"]
        if at is None or time.monotonic() < at + delay_s:
            return Gst.PadProbeReturn.DROP
        return Gst.PadProbeReturn.OK

    def prepared(media):
        for i in range(media.n_streams()):
            media.get_stream(i).get_rtpsession().set_property("rtcp-min-interval", Gst.SECOND)
        rtpbin = element_of(media.get_element().get_parent(), "rtpbin")
        for session, probe in ((0, video_report), (1, audio_report)):
            rtpbin.get_static_pad(f"send_rtcp_src_{session}").add_probe(Gst.PadProbeType.BUFFER, probe)

    factory.connect("media-configure", lambda _factory, media: media.connect("prepared", prepared))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--video", choices=VIDEO, default="h264")
    parser.add_argument("--audio", choices=[*AUDIO, "none"], default="pcmu")
    parser.add_argument("--backchannel-file", required=True)
    parser.add_argument("--clip")
    parser.add_argument("--bframes", type=int, default=0)
    parser.add_argument("--parameter-sets", choices=["inband", "sdp"], default="inband")
    parser.add_argument("--audio-ms", type=int, default=0)
    parser.add_argument("--audio-report-delay", type=float, default=0.0)
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
    if args.audio_report_delay > 0:
        order_reports(factory, args.audio_report_delay)
    server = GstRtspServer.RTSPOnvifServer.new()
    server.set_address("127.0.0.1")
    server.set_service("0")
    server.get_mount_points().add_factory("/test", factory)
    server.attach(None)
    print(f"PORT {server.get_bound_port()}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    sys.exit(main())
