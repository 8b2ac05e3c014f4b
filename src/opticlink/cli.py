"""The `opticlink` command line: one verb per job, each with --help."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from opticlink import __version__

if TYPE_CHECKING:
    from opticlink.api.config import ServiceConfig
    from opticlink.store import Database

# `opticlink talk --file`: a sender this far behind its 20 ms pace goes on from now (the pacer skips the
# time over); a burst to catch up would arrive more than the pacer's `ahead` early and be dropped
TALK_CATCH_UP_S = 0.04


def _add_camera_auth(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--username", help="camera user (else taken from the URL)")
    parser.add_argument("--password", help="camera password (else taken from the URL)")
    parser.add_argument("--transport", choices=("auto", "tcp", "udp", "tcp,udp", "udp,tcp"), default="auto",
                        help="auto (default): RTP interleaved in RTSP (tcp), falling back to udp when the camera "
                             "refuses it; tcp or udp alone; or an order such as udp,tcp")


def _add_sim_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--audio", choices=("pcmu", "pcma", "aac", "none"), default="pcmu",
                        help="simulated cameras' audio codec (default pcmu)")
    parser.add_argument("--faults", default="", help="faults as key=value,... (e.g. audio_skew_ppm=300,jitter_ms=40)")
    parser.add_argument("--clip", type=Path, help="serve this file's picture and sound instead of the test pattern")
    parser.add_argument("--size", default="640x360", help="test pattern size (default 640x360)")
    parser.add_argument("--bitrate", type=int, default=800_000, help="video bit rate in bit/s (default 800000)")
    parser.add_argument("--codec", choices=("h264", "h265"), default="h264", help="video codec (default h264)")
    parser.add_argument("--bframes", type=int, choices=range(4), default=0,
                        help="B-frames between reference frames, 0 to 3; sent in decoding order (default 0)")
    parser.add_argument("--parameter-sets", choices=("inband", "sdp", "both"), default="both",
                        help="where the video's parameter sets go: in band, only in the SDP, or both (default)")
    parser.add_argument("--echo-delay-ms", type=float,
                        help="the camera's microphone hears its speaker this much later (default: it does not)")
    parser.add_argument("--echo-gain-db", type=float, default=-6.0, help="... at this gain (default -6 dB)")


def _sim_cameras(args: argparse.Namespace, count: int) -> list:
    from opticlink.sim.faults import Faults
    from opticlink.sim.presets import camera
    from opticlink.sim.spec import EchoSettings

    faults = Faults.parse(args.faults)
    echo = EchoSettings(args.echo_delay_ms, args.echo_gain_db) if args.echo_delay_ms is not None else None
    width, _, height = args.size.partition("x")
    audio = None if args.audio == "none" else args.audio
    out = []
    for i in range(count):
        cam_faults = Faults(**{**{k: getattr(faults, k) for k in faults.__dataclass_fields__}, "seed": faults.seed + i})
        out.append(camera(f"cam{i + 1}", audio=audio, faults=cam_faults, width=int(width), height=int(height),
                          bitrate=args.bitrate, clip=args.clip, username=getattr(args, "sim_username", None),
                          password=getattr(args, "sim_password", None),
                          backchannel_file=getattr(args, "backchannel_dir", None)
                          and Path(args.backchannel_dir) / f"cam{i + 1}.bin", echo=echo,
                          bframes=args.bframes, codec=args.codec, parameter_sets=args.parameter_sets,
                          substream=getattr(args, "substream", False)))
    return out


async def _probe(args: argparse.Namespace) -> int:
    from opticlink.camera.probe import format_report, probe
    from opticlink.rtsp.client import ClientConfig
    from opticlink.sim.server import SimulatorServer

    server = None
    url, backchannel = args.url, args.backchannel
    if url is None:
        server = SimulatorServer(_sim_cameras(args, 1), port=0)
        await server.start()
        url, backchannel = server.url("cam1"), True
        print(f"no URL given: probing the built-in simulator at {url}", file=sys.stderr)
    config = ClientConfig(url, username=args.username, password=args.password, transport=args.transport,
                          backchannel=backchannel)

    recorder = None
    if args.save is not None:
        from opticlink.camera.corpus import TrafficRecorder
        recorder = TrafficRecorder.for_config(config)

    def progress(elapsed: float) -> None:
        print(f"  probing... {elapsed:4.1f}/{args.seconds:g} s", file=sys.stderr, flush=True)

    try:
        report = await probe(config, args.seconds, on_progress=None if args.json else progress, recorder=recorder)
    finally:
        if server is not None:
            await server.close()
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    if recorder is not None:
        from opticlink.camera.corpus import CorpusError
        try:
            corpus = recorder.save(args.save)
        except (CorpusError, OSError) as exc:
            print(f"opticlink probe: not saved: {exc}", file=sys.stderr)
            return 1
        print(f"saved {len(corpus.packets)} packets ({args.save.stat().st_size} bytes) to {args.save}"
              + (f"; stopped recording: {corpus.truncated}" if corpus.truncated else ""), file=sys.stderr)
    return 1 if report.error else 0


async def _capture(args: argparse.Namespace) -> int:
    from opticlink.record.capture import capture
    from opticlink.rtsp.client import ClientConfig

    config = ClientConfig(args.url, username=args.username, password=args.password, transport=args.transport)

    def progress(elapsed: float, stats) -> None:
        line = f"  capturing {elapsed:5.1f}/{args.seconds:g} s"
        if stats is not None:
            sources = ", ".join(f"{t.kind} {t.source}" for t in stats.tracks)
            line += f"  [{sources}; A/V correction {stats.av_correction_ms} ms]"
        print(line, file=sys.stderr, flush=True)

    result = await capture(config, args.seconds, args.output, audio_offset_ms=args.audio_offset_ms,
                           on_progress=progress)
    for skipped in result.skipped:
        print(f"opticlink capture: warning: not recorded: {skipped}", file=sys.stderr)
    f = result.file
    print(f"wrote {f.path}: {f.video_frames} video frames, {f.audio_samples} audio samples, {f.duration_s:.1f} s"
          + (f" (audio: {f.audio_inserted} samples of silence for lost audio)" if f.audio_inserted else ""))
    if result.error:
        print(f"opticlink capture: {result.error}", file=sys.stderr)
        return 1
    return 0


def _workers(value: str) -> int | str:
    """`--workers`: a count of at least 1, or "auto" (one per core)."""
    if value.lower() == "auto":
        return "auto"
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: a number of workers, or auto") from None
    if count < 1:
        raise argparse.ArgumentTypeError("at least 1 worker")
    return count


def _tls_mode(value: str) -> bool | str:
    modes = {"auto": "auto", "true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}
    if value.lower() not in modes:
        raise argparse.ArgumentTypeError("auto, true or false")
    return modes[value.lower()]


def _announce(banner: str, url: str, secret: str | None, tls, *, demo: bool = False) -> None:  # type: ignore[no-untyped-def]
    """What a started service prints: its address (the first line: scripts and tests read it; the demo's
    is its login link), its certificate, and a one-time login link while nobody can log in."""
    link = f"{url}/login?token={secret}" if secret is not None else None
    print(banner.format(url=link if demo and link else url), flush=True)
    if tls is not None:
        kind = "self-signed, see Trusting the certificate in the README" if tls.self_signed else "yours"
        print(f"HTTPS certificate {tls.cert} ({kind}), valid until {tls.not_after:%Y-%m-%d}, "
              f"SHA-256 fingerprint {tls.fingerprint}", flush=True)
    if link is not None and not demo:
        print(f"no user can log in yet: open {link} once (it logs you in as admin), then give admin a "
              f"password: opticlink user passwd admin", flush=True)


async def _run_service(config, seconds: float | None, banner: str, *, demo: bool = False,  # type: ignore[no-untyped-def]
                       node: str | None = None, sock=None) -> None:
    from opticlink.api.server import running, tls_files, wait_stopped

    tls = tls_files(config)
    async with running(config, tls, node=node, sock=sock) as (service, url):
        # Zero config stays zero config: the demo, and a service no one can log in to yet (no user with a
        # password), print a one-time login link, as Jupyter does; opening it sets the session cookie
        _announce(banner, url, service.gate.first_run_link(always=demo), tls, demo=demo)
        await wait_stopped(service, seconds)  # Ctrl-C or SIGTERM stop the server, and so us


async def _serve(args: argparse.Namespace) -> int:
    from opticlink.api.config import load_config

    config = load_config(args.config)
    if args.host is not None:
        config.host = args.host
    if args.port is not None:
        config.port = args.port
    if args.tls is not None:
        config.tls = args.tls
    banner = f"OpticLink serving {len(config.cameras)} cameras at {{url}}"
    if args.listen_fd is not None:
        await _serve_worker(config, args)
        return 0
    from opticlink.api.server import listening_socket
    from opticlink.cluster.node import default_node_id

    workers = args.workers if args.workers != "auto" else (os.cpu_count() or 1)
    if workers > 1 and config.database == "memory":
        print("opticlink serve: database: memory cannot be shared by workers: one process", file=sys.stderr)
        workers = 1
    sock = listening_socket(config.host, config.port)
    config.port = sock.getsockname()[1]  # port 0: the one the system gave, in the node ids too
    if workers > 1:
        await _supervise(config, args, sock, workers, banner)
        return 0
    # alone on a file: exactly the service as it always was; on a shared database: a node of it
    node = (config.node or default_node_id(config.port)) if _shared(config) else None
    await _run_service(config, args.seconds, banner, node=node, sock=sock)
    return 0


async def _supervise(config, args: argparse.Namespace, sock, workers: int, banner: str) -> None:  # type: ignore[no-untyped-def]
    """`--workers N`: the catalog made ready and the address printed here, the service run by N workers."""
    from opticlink.api.server import tls_files
    from opticlink.auth.gate import Gate
    from opticlink.cluster.node import default_node_id
    from opticlink.cluster.workers import Supervisor, release_worker, worker_command
    from opticlink.store import Database

    tls = tls_files(config)  # made once, here: the workers find it
    database = Database.connect(config.database, config.data_dir)  # migrated once, before the workers open it
    try:
        secret = Gate(database).first_run_link()
    finally:
        database.close()
    host = f"[{config.host}]" if ":" in config.host else config.host
    _announce(banner, f"{'https' if tls else 'http'}://{host}:{config.port}", secret, tls)
    print(f"{workers} worker processes on port {config.port}, cameras shared by leases", file=sys.stderr, flush=True)
    overrides = ["--port", str(config.port)]
    if args.host is not None:
        overrides += ["--host", args.host]
    if args.tls is not None:
        overrides += ["--tls", str(args.tls).lower()]
    if args.verbose:
        overrides.insert(0, "-v")
    base = config.node or default_node_id(config.port)
    database = Database.connect(config.database, config.data_dir)

    async def dead(index: int) -> None:
        released = await asyncio.to_thread(release_worker, database, f"{base}/{index}")
        logging.getLogger("opticlink.cluster.workers").info("worker %d: %d cameras released to the others",
                                                            index, released)

    supervisor = Supervisor(sock, workers, lambda index, fd: worker_command(index, fd, str(args.config), overrides),
                            on_death=dead)
    try:
        await supervisor.run(args.seconds)
    finally:
        sock.close()
        database.close()


async def _serve_worker(config, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    """One of `--workers N`: the service on the supervisor's socket, as node `<node>/<index>`."""
    import socket

    from opticlink.api.server import running, tls_files, wait_stopped
    from opticlink.cluster.node import default_node_id
    from opticlink.cluster.workers import die_with_parent, watch_parent

    parent = os.getppid()
    die_with_parent()  # the supervisor killed: so is this worker (as the one process of a service would be)
    sock = socket.socket(fileno=args.listen_fd)
    sock.setblocking(False)
    node = f"{config.node or default_node_id(config.port)}/{args.worker}"
    async with running(config, tls_files(config), node=node, sock=sock) as (service, _):
        watcher = asyncio.ensure_future(watch_parent(parent))
        try:
            await wait_stopped(service, None)
        finally:
            watcher.cancel()


async def _demo(args: argparse.Namespace) -> int:
    from opticlink.api.config import CameraConfig, ServiceConfig
    from opticlink.sim.presets import DEMO_TITLES, demo_cameras
    from opticlink.sim.server import SimulatorServer

    print("preparing the simulated cameras (the first run encodes their video once)...", file=sys.stderr, flush=True)
    if args.backchannel_dir is not None:
        args.backchannel_dir.mkdir(parents=True, exist_ok=True)
    # ONVIF on ephemeral ports, discovery too: 3702 (or a fixed port) could collide with a camera tool or a second demo
    sim = SimulatorServer(demo_cameras(args.backchannel_dir), port=args.sim_port, onvif=True, onvif_port=0,
                          discovery_port=0)
    await sim.start()
    try:
        if sim.onvif is not None:
            devices = ", ".join(f"{name} {sim.onvif_url(name)}" for name in sim.cameras)
            print(f"simulated ONVIF devices: {devices}; WS-Discovery (unicast): opticlink onvif discover "
                  f"--address {sim.onvif.host}:{sim.onvif.discovery_port}", file=sys.stderr, flush=True)
        cameras = [CameraConfig(id=name, name=DEMO_TITLES[name], url=sim.url(name),
                                substream_url=sim.url(name, sub=True) if spec.substream is not None else None)
                   for name, spec in sim.cameras.items()]
        config = ServiceConfig(cameras=cameras, host=args.host, port=args.port, tls=args.tls)
        if args.data_dir is not None:  # keep the demo's users (else they live in memory, for this run)
            config.data_dir, config.database = args.data_dir, "file"
        if args.record:  # recordings with their index, in --data-dir or a folder for this run
            if args.data_dir is None:
                config.data_dir, config.database = Path(tempfile.mkdtemp(prefix="opticlink-demo-")), "file"
            config.record, config.segment_seconds = True, args.segment_seconds
            print(f"recording into {config.recordings_root}", file=sys.stderr, flush=True)
        await _run_service(config, args.seconds, "OpticLink demo: open {url} (simulated cameras at "
                           f"rtsp://{sim.host}:{sim.port}/cam1..cam4, sub-streams at camN/sub; Ctrl-C to stop)",
                           demo=True)
    finally:
        await sim.close()
    return 0


async def _talk(args: argparse.Namespace) -> int:
    import numpy as np

    from opticlink.dsp.files import read_audio
    from opticlink.errors import OpticLinkError
    from opticlink.rtsp.client import ClientConfig, redact_url
    from opticlink.talk.session import TalkSession

    rate = 16000
    pcm = (np.clip(read_audio(args.file, rate), -1, 1) * 32767).astype(np.int16)
    config = ClientConfig(args.url, username=args.username, password=args.password, transport=args.transport)
    session = TalkSession("cli", config, packet_ms=args.packet_ms)
    try:
        info = await session.start("opticlink talk")
    except OpticLinkError as exc:
        print(f"opticlink talk: {exc}", file=sys.stderr)
        return 1
    print(f"talking to {redact_url(args.url)}: {len(pcm) / rate:.1f} s as {info['codec']}/{info['rate']} in "
          f"{args.packet_ms} ms packets", file=sys.stderr, flush=True)
    loop = asyncio.get_running_loop()
    started = loop.time()
    frame = rate // 50
    for i, offset in enumerate(range(0, len(pcm), frame)):  # paced in real time, as a speaker plays it
        due = started + i * 0.02
        if (behind := loop.time() - due) > TALK_CATCH_UP_S:  # stalled: on from now, not a burst the pacer drops
            started, due = started + behind, due + behind
        await asyncio.sleep(max(0.0, due - loop.time()))
        session.push("opticlink talk", pcm[offset : offset + frame], rate)
        if session.state == "error":
            print(f"opticlink talk: backchannel lost: {session.error}", file=sys.stderr)
            return 1
        if i % 50 == 49:
            print(f"  {offset / rate:5.1f} s sent", file=sys.stderr, flush=True)
    session.stop("opticlink talk")
    await asyncio.sleep(0.2)
    await session.close()
    print(f"sent {session.packets_sent} packets ({session.octets_sent} bytes of audio)")
    return 0


async def _sim(args: argparse.Namespace) -> int:
    from opticlink.sim.server import SimulatorServer

    server = SimulatorServer(_sim_cameras(args, args.cameras), host=args.host, port=args.port, onvif=args.onvif,
                             onvif_port=args.onvif_port, discovery_port=args.discovery_port if args.onvif else None)
    await server.start()
    for name in server.cameras:
        print(server.url(name, credentials=True), flush=True)
    if server.onvif is not None:
        for name in server.cameras:
            print(f"{name}: ONVIF device service {server.onvif_url(name)}", file=sys.stderr, flush=True)
        print(f"WS-Discovery: unicast Probes on {server.onvif.host}:{server.onvif.discovery_port}", file=sys.stderr,
              flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()
    return 0


async def _onvif(args: argparse.Namespace) -> int:
    if args.action == "discover":
        from opticlink.camera.discovery import MULTICAST_ADDRESS, discover

        address = MULTICAST_ADDRESS
        if args.address is not None:
            host, sep, port = args.address.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"--address takes HOST:PORT, not {args.address!r}")
            address = (host.strip("[]"), int(port))
        devices = await discover(address, args.timeout)
        for device in devices:
            print(f"{' '.join(device.xaddrs) or device.endpoint}\tname: {device.name or '-'}\t"
                  f"hardware: {device.hardware or '-'}")
        print(f"{len(devices)} ONVIF devices answered {address[0]}:{address[1]} within {args.timeout:g} s",
              file=sys.stderr)
        return 0
    from opticlink.camera.onvif import OnvifImportError, import_camera

    try:
        camera = await import_camera(args.host, args.port, args.username, args.password, timeout=args.timeout)
        config = camera.camera_config(args.id)
    except OnvifImportError as exc:
        print(f"opticlink onvif import: {exc}", file=sys.stderr)
        return 1
    for warning in camera.warnings:
        print(f"opticlink onvif import: warning: {warning}", file=sys.stderr)
    streams = ", ".join(f"{p.name} {p.width}x{p.height} {p.encoding}" for p in camera.profiles) or "none"
    print(f"# {camera.name} ({camera.manufacturer} {camera.model}, firmware {camera.firmware}); profiles: {streams}; "
          f"microphone: {'yes' if camera.audio else 'no'}; speaker: "
          f"{camera.backchannel_codec or 'yes' if camera.talkback else 'no'}")
    import yaml

    from opticlink.api.config import CameraConfig

    CameraConfig.model_validate(config)  # what the service will take
    print(yaml.safe_dump([config], sort_keys=False, allow_unicode=True), end="")
    return 0


async def _export(args: argparse.Namespace) -> int:
    import time

    from opticlink.api.config import load_config
    from opticlink.record.export import NothingRecorded, export, parse_time
    from opticlink.store.recordings import Recordings

    config = load_config(args.config)
    known_ids = [c.id for c in config.cameras]
    if args.camera not in known_ids and (_shared(config) or (config.data_dir / "opticlink.db").exists()):
        from opticlink.store.cameras import CameraStore

        stored = _catalog(config)  # cameras added through the API
        try:
            known_ids += [row.id for row in CameraStore(stored).all() if row.id not in known_ids]
        finally:
            stored.close()
    if args.camera not in known_ids:
        known = ", ".join(known_ids) or "none"
        print(f"opticlink export: no camera {args.camera!r} in {args.config} (cameras: {known})", file=sys.stderr)
        return 1
    if args.last is not None and (args.start is not None or args.end is not None):
        raise ValueError("give --last, or --start and --end, not both")
    if args.last is not None:
        end = time.time()
        start = end - args.last
    elif args.start is not None and args.end is not None:
        start, end = parse_time(args.start), parse_time(args.end)
    else:
        raise ValueError("give --last SECONDS, or --start and --end")
    if end <= start:
        raise ValueError("the end must come after the start")
    db = _catalog(config)
    try:
        segments = Recordings(db).segments(args.camera, start, end)
    finally:
        db.close()
    interactive = sys.stderr.isatty()
    shown = [-1]

    def progress(done: float) -> None:
        percent = int(done * 100)
        if interactive:
            bar = "#" * (percent // 4)
            print(f"\r  exporting [{bar:<25}] {percent:3d}%", end="", file=sys.stderr, flush=True)
        elif percent // 10 > shown[0]:
            shown[0] = percent // 10
            print(f"  exporting {percent:3d}%", file=sys.stderr, flush=True)

    try:
        summary = export(config.recordings_root, segments, start, end, args.output, on_progress=progress)
    except NothingRecorded:
        print(f"opticlink export: nothing of {args.camera} was recorded between {_stamp(start)} and "
              f"{_stamp(end)}", file=sys.stderr)
        return 1
    finally:
        if interactive:
            print(file=sys.stderr)
    gaps = f", {summary.gap_s:.1f} s of gaps between {summary.runs} runs" if summary.runs > 1 else ""
    print(f"wrote {summary.path}: {summary.duration_s:.1f} s from {_stamp(summary.start_wall)}, "
          f"{summary.video_frames} video frames, audio: {summary.audio or 'none'}{gaps}")
    return 0


def _stamp(wall: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(wall).astimezone().isoformat(timespec="milliseconds")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opticlink", description="OpticLink: IP camera audio and video, in sync.")
    parser.add_argument("--version", action="version", version=f"opticlink {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("probe", help="connect to a camera and report its tracks and reception",
                         description="Connect to a camera, play it for a while, and report each track (codec, "
                                     "clock rate, direction), packets, loss, reordering, jitter, RTCP Sender "
                                     "Report mappings, and what the backchannel accepts. With no URL, probe the "
                                     "built-in simulator.")
    p.add_argument("url", nargs="?", help="rtsp://[user:pass@]host[:port]/path (default: built-in simulator)")
    p.add_argument("--seconds", type=float, default=5.0, help="how long to play (default 5)")
    p.add_argument("--backchannel", action="store_true", help="ask for the ONVIF audio backchannel")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--save", type=Path, metavar="FILE",
                   help="also save what the camera sent (RTSP setup, SDP, every RTP/RTCP packet; passwords "
                        "redacted; at most 60 s or 20 MB) to FILE, for a bug report or a regression test")
    _add_camera_auth(p)
    _add_sim_options(p)

    c = verbs.add_parser("capture", help="record a camera's aligned audio and video to Matroska",
                         description="Play a camera through the sync engine and write its frames with the "
                                     "engine's presentation times to a Matroska file: video copied, audio as "
                                     "16-bit PCM that follows the timeline. Any player or analysis tool can then "
                                     "check the sync.")
    c.add_argument("url", help="rtsp://[user:pass@]host[:port]/path")
    c.add_argument("--seconds", type=float, default=10.0, help="how long to record (default 10)")
    c.add_argument("-o", "--output", type=Path, required=True, help="the .mkv file to write")
    c.add_argument("--audio-offset-ms", type=float, default=0.0,
                   help="the camera's own audio offset to correct, positive delays the sound (default 0)")
    _add_camera_auth(c)

    v = verbs.add_parser("serve", help="serve live view of the cameras in a YAML config",
                         description="Run a session per configured camera (reconnecting with backoff) and serve "
                                     "the live player and API over HTTP and WebSocket.")
    v.add_argument("config", type=Path, help="YAML file: cameras: [{id, name, url, username, password, ...}]")
    v.add_argument("--host", help="address to listen on (default from the config, else 127.0.0.1)")
    v.add_argument("--port", type=int, help="HTTP port (default from the config, else 8080)")
    v.add_argument("--tls", type=_tls_mode, metavar="auto|true|false",
                   help="HTTPS: auto = when the address is not loopback (default from the config, else auto)")
    v.add_argument("--workers", type=_workers, metavar="N|auto", default=1,
                   help="worker processes sharing the port, each a node of the catalog with its share of the "
                        "cameras (auto: one per core; default 1: a single process; a memory database: 1)")
    v.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    v.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)  # a worker's index (from the supervisor)
    v.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)  # the supervisor's listening socket

    d = verbs.add_parser("demo", help="simulated cameras and the live player, no config needed",
                         description="Start four simulated cameras (clean; 300 ppm audio skew with 40 ms jitter; "
                                     "AAC audio; no audio) and serve them at http://HOST:PORT, in one process (for "
                                     "worker processes and nodes, see serve --workers).")
    d.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    d.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    d.add_argument("--tls", type=_tls_mode, default="auto", metavar="auto|true|false",
                   help="HTTPS: auto (default) = when the address is not loopback, with a self-signed "
                        "certificate kept in the data directory")
    d.add_argument("--sim-port", type=int, default=8554, help="the simulator's RTSP port (default 8554)")
    d.add_argument("--record", action="store_true",
                   help="record the cameras (into --data-dir, else a new folder for this run)")
    d.add_argument("--segment-seconds", type=float, default=60.0, help="recording segment length (default 60)")
    d.add_argument("--backchannel-dir", type=Path, help="write what each camera's speaker receives to DIR/camN.bin")
    d.add_argument("--data-dir", type=Path, help="keep users and logins in DIR/opticlink.db (default: in memory)")
    d.add_argument("--seconds", type=float, help=argparse.SUPPRESS)

    t = verbs.add_parser("talk", help="play an audio file to a camera's speaker",
                         description="Play any audio file PyAV reads to a camera's speaker over its ONVIF "
                                     "backchannel, transcoded to what the camera accepts, in real time.")
    t.add_argument("url", help="rtsp://[user:pass@]host[:port]/path")
    t.add_argument("--file", type=Path, required=True, help="the audio file to play")
    t.add_argument("--packet-ms", type=int, default=20, help="RTP packet duration, 20 to 160 ms (default 20)")
    _add_camera_auth(t)

    s = verbs.add_parser("sim", help="run simulated cameras on an RTSP server",
                         description="Serve simulated cameras at rtsp://HOST:PORT/cam1.. with H.264 video, "
                                     "audio, RTCP Sender Reports, an ONVIF backchannel and optional faults.")
    s.add_argument("--cameras", type=int, default=1, help="how many cameras (default 1)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8554, help="RTSP port (default 8554)")
    s.add_argument("--sim-username", help="require Digest authentication with this user")
    s.add_argument("--sim-password", help="... and this password")
    s.add_argument("--backchannel-dir", type=Path, help="write what each camera's speaker receives to DIR/camN.bin")
    s.add_argument("--substream", action="store_true",
                   help="also serve each camera's low-resolution sub-stream at camN/sub (for a wall of tiles)")
    s.add_argument("--onvif", action="store_true",
                   help="also serve each camera as an ONVIF device (SOAP over HTTP, one port per camera) and answer "
                        "WS-Discovery Probes sent to HOST (unicast; it never joins the multicast group)")
    s.add_argument("--onvif-port", type=int, default=8000,
                   help="camera N's ONVIF port is this + N - 1 (default 8000; 0: ephemeral ports)")
    s.add_argument("--discovery-port", type=int, default=3702, help="WS-Discovery UDP port (default 3702)")
    _add_sim_options(s)

    o = verbs.add_parser("onvif", help="find cameras (WS-Discovery) and import one over ONVIF",
                         description="discover: send a WS-Discovery Probe and list the ONVIF cameras that answer. "
                                     "import: ask a camera over ONVIF for its streams, audio and speaker, and "
                                     "print its entry for the cameras: list of the service's YAML.")
    onvif_actions = o.add_subparsers(dest="action", required=True)
    od = onvif_actions.add_parser("discover", help="list the ONVIF cameras that answer a WS-Discovery Probe")
    od.add_argument("--address", metavar="HOST:PORT",
                    help="send the Probe to this host only (unicast), else to the multicast group "
                         "239.255.255.250:3702 (every camera on this network link)")
    od.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for answers (default 3)")
    oi = onvif_actions.add_parser("import", help="print a camera's YAML entry, read from it over ONVIF")
    oi.add_argument("host", help="the camera's address")
    oi.add_argument("--port", type=int, default=80, help="its ONVIF (HTTP) port (default 80)")
    oi.add_argument("--username", help="camera user (WS-UsernameToken, password digest)")
    oi.add_argument("--password", help="camera password (never printed except in the YAML entry itself)")
    oi.add_argument("--id", help="the camera's id in the YAML (default from its address)")
    oi.add_argument("--timeout", type=float, default=20.0, help="seconds for the whole import (default 20)")

    x = verbs.add_parser("export", help="export a camera's recordings between two times to one file",
                         description="Write what a camera recorded between two times to one file: .mkv (video "
                                     "copied; AAC audio copied, G.711 and L16 as 16-bit PCM: Matroska does not "
                                     "take G.711, and G.711 to 16-bit PCM loses nothing), .mov (everything "
                                     "copied as recorded) or .mp4 (video copied, audio in AAC: plays in a "
                                     "browser). The file starts at the last keyframe at or before the start; "
                                     "gaps in the recording keep their length. Times: ISO 8601 (local time "
                                     "unless it names a zone, e.g. 2024-05-01T12:00:00Z) or Unix seconds.")
    x.add_argument("config", type=Path, help="the service's YAML (its data_dir holds the database and recordings)")
    x.add_argument("camera", help="the camera's id")
    x.add_argument("--last", type=float, metavar="SECONDS", help="the last SECONDS up to now")
    x.add_argument("--start", metavar="T", help="from this time")
    x.add_argument("--end", metavar="T", help="to this time")
    x.add_argument("-o", "--output", type=Path, required=True, help="the file to write: .mkv, .mp4 or .mov")

    u = verbs.add_parser("user", help="add, list, remove users; change a password; make an API token",
                         description="Manage the service's users (in its database: --config's, or "
                                     "--data-dir, else the default data directory). Roles: admin (everything), "
                                     "operator (watch, listen, talk where allowed), viewer (watch and listen). "
                                     "Passwords are read from a prompt (not echoed) or, piped, from stdin.")
    u.add_argument("--config", type=Path, help="the service's YAML (its data_dir holds the database)")
    u.add_argument("--data-dir", type=Path, help="the directory holding opticlink.db")
    actions = u.add_subparsers(dest="action", required=True)
    a = actions.add_parser("add", help="add a user (asks for the password)")
    a.add_argument("name")
    a.add_argument("--role", choices=("admin", "operator", "viewer"), required=True)
    a.add_argument("--talk", default="", metavar="CAMERAS",
                   help="cameras an operator may talk to, comma-separated, or * for all (default: none)")
    actions.add_parser("list", help="list users, their roles and talk permissions")
    c = actions.add_parser("set", help="change a user's role or the cameras they may talk to")
    c.add_argument("name")
    c.add_argument("--role", choices=("admin", "operator", "viewer"))
    c.add_argument("--talk", metavar="CAMERAS", help="cameras they may talk to, comma-separated, * for all, '' none")
    r = actions.add_parser("remove", help="remove a user (their sessions and tokens end)")
    r.add_argument("name")
    w = actions.add_parser("passwd", help="set a user's password (their sessions end)")
    w.add_argument("name")
    k = actions.add_parser("token", help="make an API token for a user (for scripts, Prometheus); printed once")
    k.add_argument("name")
    k.add_argument("--label", default="api", help="what the token is for (default api)")
    k.add_argument("--revoke", action="store_true", help="remove the user's tokens with this label instead")
    m = verbs.add_parser("cameras", help="the service's cameras: export them as YAML",
                         description="The cameras of the service: those its YAML declares and those added through "
                                     "the API (kept in its database: --config's, or --data-dir's).")
    camera_actions = m.add_subparsers(dest="action", required=True)
    me = camera_actions.add_parser("export", help="print the YAML of every camera (declared and added)",
                                   description="Print the `cameras:` YAML of the current set, loadable as a "
                                               "config. Passwords are left out unless --with-passwords.")
    me.add_argument("--config", type=Path, help="the service's YAML (its cameras, and its data_dir's database)")
    me.add_argument("--data-dir", type=Path, help="the directory holding opticlink.db")
    me.add_argument("--with-passwords", action="store_true", help="include the cameras' passwords")
    me.add_argument("-o", "--output", type=Path, help="write to this file (readable only by you) instead of stdout")
    return parser


async def _cameras(args: argparse.Namespace) -> int:
    """`opticlink cameras export`: the YAML of the declared and API-added cameras."""
    from opticlink.api.cameras import export_yaml
    from opticlink.api.config import CameraConfig, default_data_dir, load_config
    from opticlink.store import Database
    from opticlink.store.cameras import CameraStore

    config = load_config(args.config) if args.config else None
    declared = config.cameras if config is not None else []
    directory = args.data_dir or (config.data_dir if config is not None else default_data_dir())
    stored: list[tuple[CameraConfig, bool]] = []
    if (config is not None and _shared(config)) or (directory / "opticlink.db").exists():
        db = _catalog(config) if config is not None and _shared(config) else Database.open(directory)
        try:
            ids = {c.id for c in declared}
            for row in CameraStore(db).all():
                if row.id in ids:
                    continue  # the file wins
                try:
                    stored.append((CameraConfig.model_validate(row.config), row.enabled))
                except ValueError as exc:
                    print(f"opticlink cameras: {row.id} skipped: {exc.__class__.__name__}", file=sys.stderr)
        finally:
            db.close()
    text = export_yaml(declared, stored, with_passwords=args.with_passwords)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.touch(mode=0o600)
        args.output.write_text(text)
        print(f"{len(declared) + len(stored)} cameras written to {args.output}", file=sys.stderr)
    return 0


def _shared(config: ServiceConfig) -> bool:
    """Whether the config's catalog is a shared database (PostgreSQL) rather than the data_dir's file."""
    from opticlink.store.database import is_database_url

    return is_database_url(config.database)


def _catalog(config: ServiceConfig) -> Database:
    """The catalog a config names: its PostgreSQL database, else the SQLite file in its data_dir (the
    commands read what the service wrote even when the service itself runs in memory)."""
    from opticlink.store import Database

    return Database.connect(config.database, config.data_dir) if _shared(config) else Database.open(config.data_dir)


def _read_password() -> str:
    """From a prompt that does not echo, asked twice; or the first line of piped stdin."""
    import getpass

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise ValueError("the two passwords differ")
        return password
    return sys.stdin.readline().rstrip("\r\n")


async def _user(args: argparse.Namespace) -> int:
    from opticlink.api.config import default_data_dir, load_config
    from opticlink.auth.gate import Gate
    from opticlink.store import Database

    config = load_config(args.config) if args.config else None
    directory = args.data_dir or (config.data_dir if config is not None else default_data_dir())
    db = _catalog(config) if config is not None and _shared(config) and not args.data_dir else Database.open(directory)
    gate = Gate(db)
    try:
        if args.action == "add":
            talk = [c.strip() for c in args.talk.split(",") if c.strip()]
            gate.accounts.add(args.name, args.role, _read_password(), talk)
            gate.audit.record("user_add", user=args.name, detail=f"role {args.role} (command line)")
            print(f"added {args.name} ({args.role}) to {directory}")
        elif args.action == "list":
            for user in gate.accounts.list():
                talk = ",".join(sorted(user.talk)) or "-"
                print(f"{user.name}\t{user.role}\ttalk: {'all' if user.role == 'admin' else talk}"
                      + ("" if user.password_hash else "\t(no password: logs in by one-time link only)"))
        elif args.action == "set":
            talk = None if args.talk is None else [c.strip() for c in args.talk.split(",") if c.strip()]
            gate.accounts.change(args.name, role=args.role, talk=talk)
            gate.audit.record("user_change", user=args.name,
                              detail=f"role {args.role or 'kept'}, talk {args.talk if talk is not None else 'kept'}")
            print(f"changed {args.name}")
        elif args.action == "remove":
            gate.accounts.remove(args.name)
            gate.audit.record("user_remove", user=args.name, detail="command line")
            print(f"removed {args.name}")
        elif args.action == "passwd":
            if db.user(args.name) is None:
                raise ValueError(f"no user {args.name!r}")
            gate.accounts.set_password(args.name, _read_password())
            gate.audit.record("user_passwd", user=args.name, detail="command line")
            print(f"password set for {args.name}; their sessions have ended")
        elif args.action == "token":
            user = db.user(args.name)
            if user is None:
                raise ValueError(f"no user {args.name!r}")
            if args.revoke:
                if not db.remove_token(user.id, args.label):
                    raise ValueError(f"{args.name} has no token labelled {args.label!r}")
                gate.audit.record("token_revoke", user=args.name, detail=args.label)
                print(f"revoked {args.name}'s {args.label} tokens")
                return 0
            print(gate.sessions.create_token(user, args.label))
            gate.audit.record("token_add", user=args.name, detail=args.label)
            print(f"(an API token for {args.name}: send it as Authorization: Bearer; it is shown only now)",
                  file=sys.stderr)
    finally:
        db.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers = {"probe": _probe, "sim": _sim, "capture": _capture, "serve": _serve, "demo": _demo, "talk": _talk,
                "user": _user, "export": _export, "onvif": _onvif, "cameras": _cameras}
    try:
        return asyncio.run(handlers[args.verb](args))
    except KeyboardInterrupt:
        return 130
    except ValueError as exc:
        print(f"opticlink {args.verb}: {exc}", file=sys.stderr)
        return 2
