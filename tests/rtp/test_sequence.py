from opticlink.rtp.sequence import sequence_unwrapper, timestamp_unwrapper


def test_sequence_unwraps_forward_across_the_wrap():
    u = sequence_unwrapper()
    assert [u.unwrap(s) for s in (65534, 65535, 0, 1)] == [65534, 65535, 65536, 65537]


def test_sequence_unwraps_reordering_across_the_wrap():
    u = sequence_unwrapper()
    assert [u.unwrap(s) for s in (65535, 1, 0, 2)] == [65535, 65537, 65536, 65538]


def test_timestamps_unwrap_after_many_wraps():
    u = timestamp_unwrapper()
    ts = 0xFFFF0000
    values = []
    for _ in range(5 * 4096):
        values.append(u.unwrap(ts & 0xFFFFFFFF))
        ts += 1 << 20
    assert values == [0xFFFF0000 + i * (1 << 20) for i in range(5 * 4096)]
