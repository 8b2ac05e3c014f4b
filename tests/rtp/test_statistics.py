import random

from opticlink.rtp.statistics import ReceptionStatistics


def test_interarrival_jitter_of_uniform_delay_is_about_a_third_of_its_range():
    stats = ReceptionStatistics(8000)
    rng = random.Random(1)
    for i in range(20000):
        stats.on_packet(i, i * 160, i * 0.02 + rng.random() * 0.030, 172)
    assert 8.0 < stats.jitter_ms < 12.0  # E|X-Y| for X,Y ~ U(0, 30 ms) is 10 ms


def test_loss_and_fraction_lost_per_interval():
    stats = ReceptionStatistics(90000)
    for seq in range(0, 100):
        if seq % 10 != 5:
            stats.on_packet(seq, seq * 3000, seq * 0.033, 1000)
    block = stats.report_block(ssrc=7)
    assert stats.lost == 10
    assert block.cumulative_lost == 10
    assert block.fraction_lost == (10 << 8) // 100
    assert block.highest_sequence == 99
    assert stats.report_block(ssrc=7).fraction_lost == 0  # nothing new in the next interval


def test_restart_keeps_totals_across_a_new_source():
    stats = ReceptionStatistics(8000)
    for seq in (0, 1, 3):
        stats.on_packet(seq, seq * 160, seq * 0.02, 100)
    stats.restart()
    for seq in (5000, 5001):
        stats.on_packet(seq, 0, 1.0, 100)
    assert (stats.packets, stats.expected, stats.lost) == (5, 6, 1)
