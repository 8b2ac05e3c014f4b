import itertools

import numpy as np
import pytest

from opticlink.dsp.g711 import decode_g711
from opticlink.rtp.packet import RtpPacket
from opticlink.rtp.rtcp import NTP_EPOCH_OFFSET, SenderReport, parse_rtcp
from opticlink.sim.camera import CameraModel
from opticlink.sim.faults import Faults
from opticlink.sim.media import encode_audio, synthetic_audio, synthetic_video
from opticlink.sim.network import NetworkModel


@pytest.fixture(scope="module")
def media():
    return synthetic_video(160, 96, 25, seconds=2, bitrate=200_000), encode_audio(synthetic_audio(8000, 2), "pcmu")


def run(model, seconds):
    return model.advance(seconds)


def reports(emissions, track):
    out = []
    for e in emissions:
        if e.rtcp and e.track == track:
            out += [(e.send_time, p) for p in parse_rtcp(e.data) if isinstance(p, SenderReport)]
    return out


def rtp(emissions, track):
    return [(e.send_time, RtpPacket.parse(e.data)) for e in emissions if not e.rtcp and e.track == track]


def test_sender_reports_map_rtp_time_to_the_wall_clock_at_the_capture_instant(media):
    video, audio = media
    model = CameraModel(video, audio, Faults(audio_skew_ppm=250, video_skew_ppm=-80))
    emissions = run(model, 30)
    for track in (0, 1):
        for sent, sr in reports(emissions, track)[1:]:
            truth = model.capture_time(track, sr.ssrc, sr.rtp_timestamp)
            assert truth == pytest.approx(sent, abs=2e-4)
            assert sr.ntp_seconds - NTP_EPOCH_OFFSET == pytest.approx(model.wall_clock(sent), abs=1e-6)


def test_each_clock_runs_at_its_skewed_rate(media):
    video, audio = media
    model = CameraModel(video, audio, Faults(audio_skew_ppm=300, video_skew_ppm=-100))
    emissions = run(model, 60)
    for track, rate, skew in ((0, 90000, -100), (1, 8000, 300)):
        (t0, first), (t1, last) = reports(emissions, track)[0], reports(emissions, track)[-1]
        ticks = (last.rtp_timestamp - first.rtp_timestamp) & 0xFFFFFFFF
        measured = (ticks / (t1 - t0) / rate - 1) * 1e6
        assert measured == pytest.approx(skew, abs=2)


@pytest.mark.slow
def test_flash_and_beep_happen_at_the_same_true_time_despite_opposite_skews(media):
    video, audio = media
    model = CameraModel(video, audio, Faults(audio_skew_ppm=400, video_skew_ppm=-300))
    emissions = run(model, 120)
    flashes = [model.capture_time(0, p.ssrc, p.timestamp) for _, p in rtp(emissions, 0)
               if p.marker and (p.timestamp - model.tracks[0].segments[0].ts0) % (25 * 3600) == 0]
    samples, times = [], []
    for _, p in rtp(emissions, 1):
        start = model.capture_time(1, p.ssrc, p.timestamp)
        samples.append(decode_g711(p.payload, "pcmu"))
        times.append(start + np.arange(len(p.payload)) / (8000 * (1 + 400e-6)))
    pcm, t = np.concatenate(samples).astype(float), np.concatenate(times)
    loud = np.abs(pcm) > 0.3 * np.abs(pcm).max()
    onsets = t[1:][loud[1:] & ~np.convolve(loud, np.ones(40), "full")[: len(loud)][:-1].astype(bool)]
    onsets = [o for o in onsets if o > 1]
    matched = [min(abs(o - f) for f in flashes) for o in onsets[-20:]]
    assert len(matched) == 20 and max(matched) < 0.002


def test_reboot_changes_ssrc_and_timestamps_and_truth_follows(media):
    video, audio = media
    model = CameraModel(video, audio, Faults(reboot_at_s=5))
    emissions = run(model, 10)
    video_packets = rtp(emissions, 0)
    ssrcs = sorted({p.ssrc for _, p in video_packets}, key=[p.ssrc for _, p in video_packets].index)
    assert len(ssrcs) == 2
    after = [p for t, p in video_packets if p.ssrc == ssrcs[1]]
    assert model.capture_time(0, after[0].ssrc, after[0].timestamp) == pytest.approx(5.0, abs=0.05)
    first_after = next(i for i, (_, p) in enumerate(video_packets) if p.ssrc == ssrcs[1])
    assert video.keyframes[0] and video_packets[first_after][1].payload[0] & 0x1F in (5, 7, 28)


@pytest.mark.parametrize(("mode", "check"), [
    ("absent", lambda srs: srs == []),
    ("late", lambda srs: srs[0][0] >= 10),
    ("frozen", lambda srs: len({sr.ntp_timestamp for _, sr in srs}) == 1),
    ("jumping", lambda srs: max(abs((b.ntp_seconds - a.ntp_seconds) - (tb - ta))
                                for (ta, a), (tb, b) in itertools.pairwise(srs)) > 0.25),
])
def test_sender_report_faults(media, mode, check):
    video, audio = media
    model = CameraModel(video, audio, Faults(sender_reports=mode, sr_late_s=10))
    assert check(reports(run(model, 30), 1))


def test_network_model_loses_reorders_and_keeps_tcp_order(media):
    video, audio = media
    emissions = run(CameraModel(video, audio), 60)
    udp = NetworkModel(jitter_ms=30, loss_pct=5, reorder_pct=2, ordered=False, seed=3)
    udp.deliver(emissions)
    arrived = udp.arrivals(1e9)
    assert 0.04 < udp.lost / len(emissions) < 0.06
    delays = np.array([d.arrival - d.emission.send_time for d in arrived])
    assert delays.min() >= 0 and np.percentile(delays, 95) <= 0.0305
    tcp = NetworkModel(jitter_ms=30, ordered=True, seed=3)
    tcp.deliver(emissions)
    out = tcp.arrivals(1e9)
    assert [d.emission for d in out] == emissions


def test_faults_parse_rtp_info_and_refuse_nonsense():
    assert Faults.parse("rtp_info=false,jitter_ms=5").rtp_info is False
    assert Faults.parse("jitter_ms=5").rtp_info is True
    with pytest.raises(ValueError, match="rtp_info"):
        Faults.parse("rtp_info=maybe")
