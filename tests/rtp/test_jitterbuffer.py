from opticlink.rtp.jitterbuffer import BufferedPacket, JitterBuffer, Loss
from opticlink.rtp.packet import RtpPacket


def pkt(seq: int) -> RtpPacket:
    return RtpPacket(96, seq & 0xFFFF, seq * 10, 1)


def seqs(items):
    return [i.packet.sequence if isinstance(i, BufferedPacket) else ("loss", i.count) for i in items]


def test_in_order_packets_pass_straight_through():
    jb = JitterBuffer(max_wait=0.05)
    assert seqs(jb.push(pkt(1), 0.0)) == [1]
    assert seqs(jb.push(pkt(2), 0.02)) == [2]
    assert jb.deadline() is None


def test_reordered_packet_is_put_back_in_place_without_loss():
    jb = JitterBuffer(max_wait=0.05)
    jb.push(pkt(1), 0.0)
    assert jb.push(pkt(3), 0.01) == []
    assert jb.deadline() == 0.01 + 0.05
    assert seqs(jb.push(pkt(2), 0.02)) == [2, 3]
    assert jb.lost == 0


def test_a_gap_is_declared_lost_when_its_wait_expires():
    jb = JitterBuffer(max_wait=0.05)
    jb.push(pkt(10), 0.0)
    jb.push(pkt(13), 0.1)
    jb.push(pkt(14), 0.11)
    assert abs(jb.deadline() - 0.15) < 1e-9
    assert jb.poll(0.149) == []
    out = jb.poll(jb.deadline())
    assert seqs(out) == [("loss", 2), 13, 14]
    assert jb.lost == 2


def test_late_and_duplicate_packets_are_dropped_and_counted():
    jb = JitterBuffer()
    jb.push(pkt(1), 0)
    jb.push(pkt(2), 0)
    assert jb.push(pkt(1), 0) == []
    jb.push(pkt(4), 0)
    assert jb.push(pkt(4), 0) == []
    assert (jb.late, jb.duplicates) == (1, 1)


def test_sequence_wrap_is_seamless():
    jb = JitterBuffer()
    out = []
    for s in range(65530, 65542):
        out += jb.push(pkt(s), 0)
    assert [p.packet.sequence for p in out] == [s & 0xFFFF for s in range(65530, 65542)]


def test_a_single_wild_sequence_number_is_ignored():
    jb = JitterBuffer()
    jb.push(pkt(100), 0)
    assert jb.push(pkt(40000), 0) == []
    assert seqs(jb.push(pkt(101), 0)) == [101]
    assert jb.resyncs == 0


def test_two_consecutive_packets_after_a_jump_resynchronise():
    jb = JitterBuffer()
    jb.push(pkt(100), 0)
    jb.push(pkt(40000), 0)
    out = jb.push(pkt(40001), 0)
    assert isinstance(out[0], Loss) and out[0].resync
    assert seqs(out[1:]) == [40000, 40001]
    assert seqs(jb.push(pkt(40002), 0)) == [40002]


def test_capacity_gives_up_the_oldest_gap():
    jb = JitterBuffer(max_wait=10, capacity=4)
    jb.push(pkt(0), 0)
    out = []
    for s in range(2, 8):
        out += jb.push(pkt(s), 0)
    assert seqs(out)[:2] == [("loss", 1), 2]
