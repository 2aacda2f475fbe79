"""The fork counts what the recogniser never got: sequence gaps and packets dropped for a full queue."""

from __future__ import annotations

from zhida.codecs import rtp
from zhida.media.fork import AudioFork

ADDR = ("127.0.0.1", 40000)


def _packet(sequence: int) -> bytes:
    return bytes(rtp.RtpPacket(rtp.PT_PCMU, sequence & 0xFFFF, sequence * 160, 0x1234, b"\xff" * 160))


def test_gaps_in_sequence_numbers_are_lost_packets_even_across_the_wrap() -> None:
    fork = AudioFork()
    for sequence in (65530, 65531, 65533, 65534, 3, 4):  # 65532 missing, then 65535, 0, 1, 2 missing
        fork.datagram_received(_packet(sequence), ADDR)
    assert fork.packets == 6
    assert fork.lost_packets == 5


def test_duplicates_and_late_packets_are_not_losses() -> None:
    fork = AudioFork()
    for sequence in (10, 11, 11, 13, 12, 14):
        fork.datagram_received(_packet(sequence), ADDR)
    assert fork.lost_packets == 1  # 12 came late: counted when 13 arrived, not again


def test_a_full_queue_counts_the_packets_it_drops() -> None:
    fork = AudioFork(queue_size=3)
    for sequence in range(5):
        fork.datagram_received(_packet(sequence), ADDR)
    assert fork.dropped_packets == 2
    assert fork.lost_packets == 0
