"""Debian's GStreamer RTSP server with an ONVIF backchannel, as an independent peer for our client.

Runs under /usr/bin/python3 (PyGObject is only there). Prints `PORT <n>` once listening at
rtsp://127.0.0.1:<n>/test; what a client sends on the backchannel is written raw (µ-law bytes)
to --backchannel-file.
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--video", choices=VIDEO, default="h264")
    parser.add_argument("--audio", choices=[*AUDIO, "none"], default="pcmu")
    parser.add_argument("--backchannel-file", required=True)
    args = parser.parse_args()
    Gst.init(None)
    launch = (f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! "
              f"{VIDEO[args.video]}")
    if args.audio != "none":
        launch += f" audiotestsrc is-live=true freq=440 ! audioconvert ! audioresample ! {AUDIO[args.audio]}"
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
