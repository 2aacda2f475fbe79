"""Writes audio as a pcap of G.711 RTP packets, the input sipp's `play_pcap_audio` replays."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from zhida.codecs import g711
from zhida.codecs.rtp import PT_PCMA, PT_PCMU, RtpPacket

SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz


def _udp_ipv4_frame(payload: bytes, src_port: int = 6000, dst_port: int = 6002) -> bytes:
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
    total = 20 + len(udp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 17, 0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    ether = b"\x00" * 12 + b"\x08\x00"
    return ether + ip + udp


def write_rtp_pcap(path: Path, pcm8k: NDArray[Any], *, payload_type: int = PT_PCMU, ssrc: int = 0x2A2A2A2A) -> int:
    """Encodes 8 kHz PCM16 into 20 ms RTP packets with 20 ms pcap spacing; returns the packet count."""
    encode = g711.ulaw_encode if payload_type == PT_PCMU else g711.alaw_encode
    if payload_type not in (PT_PCMU, PT_PCMA):
        raise ValueError("only PCMU and PCMA are supported")
    pad = (-len(pcm8k)) % SAMPLES_PER_PACKET
    samples = np.concatenate([pcm8k.astype(np.int16), np.zeros(pad, dtype=np.int16)])
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    count = len(samples) // SAMPLES_PER_PACKET
    for index in range(count):
        chunk = samples[index * SAMPLES_PER_PACKET : (index + 1) * SAMPLES_PER_PACKET]
        packet = RtpPacket(payload_type, index, index * SAMPLES_PER_PACKET, ssrc, encode(chunk), index == 0)
        frame = _udp_ipv4_frame(bytes(packet))
        micros = index * 20_000
        out.append(struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)))
        out.append(frame)
    path.write_bytes(b"".join(out))
    return count


def write_packets_pcap(path: Path, packets: list[tuple[float, RtpPacket]]) -> int:
    """Writes RTP packets of any payload type (audio, telephone-event) at their send times in seconds."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for at, packet in sorted(packets, key=lambda item: item[0]):
        frame = _udp_ipv4_frame(bytes(packet))
        micros = round(at * 1_000_000)
        out.append(struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)))
        out.append(frame)
    path.write_bytes(b"".join(out))
    return len(packets)
