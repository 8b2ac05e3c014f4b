"""`opticlink probe`: connect to a camera for a while and report what it sends and how well."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from opticlink.camera.corpus import TrafficRecorder
from opticlink.camera.ingest import TrackState
from opticlink.camera.oneshot import played
from opticlink.camera.session import CameraSession
from opticlink.errors import RtspError
from opticlink.rtsp.client import ClientConfig, MediaState, redact_url, split_url
from opticlink.sync.reports import SenderReportInfo


@dataclass(slots=True)
class ReportMapping:
    """An RTCP Sender Report: camera wall clock at an RTP timestamp."""

    wall_clock: str
    rtp_timestamp: int
    received_after_s: float


@dataclass(slots=True)
class TrackReport:
    index: int
    media: str
    codec: str
    clock_rate: int
    channels: int
    direction: str
    role: str
    packets: int = 0
    bytes: int = 0
    units: int = 0
    lost: int = 0
    reordered: int = 0
    late: int = 0
    duplicates: int = 0
    malformed: int = 0
    jitter_ms: float = 0.0
    ssrc: str | None = None
    ssrc_changes: int = 0
    sender_reports: int = 0
    first_report: ReportMapping | None = None
    last_report: ReportMapping | None = None
    formats: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ProbeReport:
    url: str
    transport: str  # the lower transport used (or last tried): tcp or udp
    seconds: float
    transport_requested: str = "auto"
    fallbacks: list[str] = field(default_factory=list)  # transports given up, and why
    media: list[MediaState] = field(default_factory=list)  # every section of the description, with its state
    datagrams_dropped: int = 0  # UDP datagrams not from the camera's address and ports
    tracks: list[TrackReport] = field(default_factory=list)
    backchannel_requested: bool = False
    backchannel: str | None = None  # what it accepts, or why not
    sync: dict[str, object] | None = None  # the sync engine's view: per-track timing, A/V correction
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _mapping(info: SenderReportInfo | None, started: float) -> ReportMapping | None:
    if info is None:
        return None
    stamp = dt.datetime.fromtimestamp(info.wall_clock, dt.UTC).isoformat(timespec="milliseconds")
    return ReportMapping(stamp, info.rtp_timestamp, round(info.arrival - started, 3))


def _track_report(state: TrackState, started: float) -> TrackReport:
    track, receiver = state.track, state.receiver
    stats = receiver.stats.snapshot()
    return TrackReport(
        index=track.index, media=track.kind, codec=track.format.encoding, clock_rate=track.format.clock_rate,
        channels=track.format.channels, direction=track.direction, role="live",
        packets=stats.packets, bytes=stats.bytes, units=receiver.units, lost=receiver.buffer.lost,
        reordered=stats.reordered, late=stats.late, duplicates=stats.duplicates,
        malformed=receiver.malformed + getattr(receiver.depacketizer, "malformed", 0),
        jitter_ms=round(stats.jitter_ms, 2), ssrc=f"{receiver.ssrc:08X}" if receiver.ssrc is not None else None,
        ssrc_changes=receiver.ssrc_changes, sender_reports=state.reports,
        first_report=_mapping(state.first_report, started), last_report=_mapping(state.last_report, started),
    )


async def probe(config: ClientConfig, seconds: float = 5.0,
                on_progress: Callable[[float], None] | None = None,
                recorder: TrafficRecorder | None = None) -> ProbeReport:
    """Play a camera for `seconds` and report its tracks, reception and backchannel; a `recorder`
    is fed every client event (what the camera sent, for `--save`)."""
    report = ProbeReport(redact_url(config.url), config.transport, seconds, config.transport,
                         backchannel_requested=config.backchannel)
    loop = asyncio.get_running_loop()
    tap = None if recorder is None else (lambda event: recorder.on_event(event, loop.time()))
    session = CameraSession(config, name="probe", reconnect=False, on_frame=lambda frame: None, on_client_event=tap)
    async with played(session) as run:
        try:
            await run.play(seconds, on_progress)
        except RtspError as exc:
            report.error = _without_secrets(str(exc), config)
        sync = session.sync_stats()
        report.sync = asdict(sync) if sync is not None else None
        if session.client is not None:  # before stopping: the states as they were while playing
            connection = session.client.connection
            report.transport = connection.transport
            report.fallbacks = list(connection.fallbacks)
            report.media = connection.media_states(loop.time())
            report.datagrams_dropped = connection.datagrams_dropped
    started = run.started
    if session.ingest is not None:
        report.tracks = [_track_report(s, started) for s in session.ingest.states.values()]
    backchannel = session.backchannel
    if backchannel is not None:
        formats = [f.rtpmap for f in backchannel.media.formats]
        report.tracks.append(TrackReport(
            index=backchannel.index, media="audio", codec=backchannel.format.encoding,
            clock_rate=backchannel.format.clock_rate, channels=backchannel.format.channels, direction="sendonly",
            role="backchannel", formats=formats))
        report.backchannel = f"accepts {', '.join(formats)}; we would send {backchannel.format.rtpmap}"
    elif config.backchannel:
        report.backchannel = f"unavailable: {session.backchannel_note or 'not offered'}"
    return report


def _without_secrets(text: str, config: ClientConfig) -> str:
    """`text` with the config's password (given apart or in the URL) and any URL's user information
    replaced by `***`: a camera can echo what it was sent into an answer we quote."""
    secrets = [config.password or ""]
    with contextlib.suppress(ValueError):
        creds = split_url(config.url)[1]
        secrets.append(creds.password if creds is not None else "")
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return " ".join(redact_url(word) if "://" in word else word for word in text.split(" "))


def format_report(report: ProbeReport) -> str:
    """The report as a person reads it."""
    lines = [f"{report.url} over {report.transport.upper()} ({report.transport_requested}), {report.seconds:g} s"]
    lines += [f"  {fallback} (fell back)" for fallback in report.fallbacks]
    if report.error:
        lines.append(f"  error: {report.error}")
    for m in report.media:
        track = f", track {m.track}" if m.track is not None else ""
        lines.append(f"  media {m.position}: {m.kind} {m.codec} ({m.direction}): {m.state}{track}")
    if report.datagrams_dropped:
        lines.append(f"  datagrams dropped (not from the camera's address and ports): {report.datagrams_dropped}")
    for t in report.tracks:
        head = f"  track {t.index}: {t.media} {t.codec}/{t.clock_rate}"
        head += f"/{t.channels}" if t.channels != 1 else ""
        head += f" ({t.direction}, {t.role})"
        lines.append(head)
        if t.role == "backchannel":
            lines.append(f"    accepts: {', '.join(t.formats)}")
            continue
        lines.append(f"    packets {t.packets}, bytes {t.bytes}, units {t.units}, lost {t.lost}, "
                     f"reordered {t.reordered}, late {t.late}, malformed {t.malformed}, jitter {t.jitter_ms:.2f} ms")
        lines.append(f"    ssrc {t.ssrc}, ssrc changes {t.ssrc_changes}, sender reports {t.sender_reports}")
        for label, mapping in (("first SR", t.first_report), ("last SR", t.last_report)):
            if mapping is not None:
                lines.append(f"    {label}: rtp {mapping.rtp_timestamp} = {mapping.wall_clock} "
                             f"(received at +{mapping.received_after_s:.3f} s)")
    if report.backchannel_requested:
        lines.append(f"  backchannel: {report.backchannel}")
    if report.sync:
        lines.append("  sync:")
        for t in report.sync["tracks"]:  # type: ignore[union-attr]
            skew = "?" if t["skew_ppm"] is None else f"{t['skew_ppm']:+.1f} ppm"
            reason = f" ({t['fallback_reason']})" if t["fallback_reason"] else ""
            lines.append(f"    track {t['track']} {t['kind']}: timing from {t['source']}{reason}, clock {skew}, "
                         f"correction {t['correction_ms']:+.2f} ms, arrives {t['delay_ms']} ms after its time, "
                         f"reports {t['sender_reports']} ({t['bogus_reports']} bogus), re-anchors {t['reanchors']}")
        av_ms = report.sync["av_correction_ms"]
        if av_ms is not None:
            lines.append(f"    A/V: audio moved {av_ms:+.2f} ms against video compared with arrival timing "
                         f"(audio offset setting {report.sync['audio_offset_ms']:+.1f} ms)")
        if report.sync["wall_skew_ppm"] is not None:
            lines.append(f"    camera wall clock: {report.sync['wall_skew_ppm']:+.2f} ppm against ours")
    return "\n".join(lines)
