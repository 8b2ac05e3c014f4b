"""RTP and RTCP: packets, sequence unwrapping, jitter buffer, depacketizers, reception statistics."""
