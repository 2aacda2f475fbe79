"""The stand-in callee: a UDP socket that receives the caller's audio as rtpengine forks it to us.

Each packet's arrival time is kept against the audio position it ends at, so a position reported by the
recogniser ("last voiced frame at 2.34 s of audio") maps back to the wall-clock moment the caller said it.

With a `DtmfDetector`, every packet (RFC 4733 telephone-events and the G.711 audio) also goes through it, and
each key press is handed to `on_digit` with the wall-clock time of the packet that revealed it.

With `keep_ms`, the last that many milliseconds of the caller's audio payloads are kept as they came (the
recogniser's queue is consumed): the whisper for the agent is made from them (zhida.media.whisper).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import Callable

from zhida.codecs import rtp
from zhida.media.dtmf import Digit, DtmfDetector

log = logging.getLogger(__name__)

AUDIO_PAYLOAD_TYPES = (rtp.PT_PCMU, rtp.PT_PCMA)
# seconds of one caller's RTP even with the kernel's per-packet overhead; the kernel caps it at net.core.rmem_max
RECEIVE_BUFFER_BYTES = 1 << 20

DigitHandler = Callable[[Digit, float], None]


class AudioFork(asyncio.DatagramProtocol):
    def __init__(self, queue_size: int = 500, *, dtmf: DtmfDetector | None = None,
                 on_digit: DigitHandler | None = None, keep_ms: int = 0) -> None:
        self.audio: asyncio.Queue[bytes | None] = asyncio.Queue(queue_size)
        self.payload_type: int | None = None
        self.first_timestamp: int | None = None  # RTP timestamp of the first audio packet (8 kHz clock)
        self.packets = 0
        self.bad_packets = 0
        # audio the recogniser never got: sequence numbers that never arrived (lost on the way, or late beyond
        # reordering), and packets dropped here because the recogniser was not keeping up
        self.lost_packets = 0
        self.dropped_packets = 0
        self._last_sequence: int | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._ends_ms: list[float] = []
        self._arrivals: list[float] = []
        self._position_ms = 0.0
        self.dtmf = dtmf
        self.on_digit = on_digit
        self.digits: list[tuple[Digit, float]] = []  # every key press and when it was known
        self._kept: deque[bytes] = deque(maxlen=max(1, keep_ms // 20))  # 20 ms packets
        self._keep = keep_ms > 0

    @classmethod
    async def open(cls, host: str, *, dtmf: DtmfDetector | None = None, on_digit: DigitHandler | None = None,
                   keep_ms: int = 0) -> tuple[AudioFork, int]:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: cls(dtmf=dtmf, on_digit=on_digit, keep_ms=keep_ms), local_addr=(host, 0))
        return protocol, transport.get_extra_info("sockname")[1]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # The default buffer (~200 KB shared by all traffic of the socket) overflows within a second of the
            # event loop stalling under many calls; what overflows is speech the recogniser never hears.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            packet = rtp.parse(data)
        except rtp.RtpError:
            self.bad_packets += 1
            return
        if self.dtmf is not None:
            self._dtmf(packet)
        if packet.payload_type not in AUDIO_PAYLOAD_TYPES:
            return  # telephone-event and comfort noise carry no speech
        if self.payload_type is None:
            self.payload_type = packet.payload_type
            self.first_timestamp = packet.timestamp
        self.packets += 1
        self._count_gap(packet.sequence)
        self._position_ms += len(packet.payload) / 8.0
        self._ends_ms.append(self._position_ms)
        self._arrivals.append(time.time())
        if self._keep:
            self._kept.append(packet.payload)
        try:
            self.audio.put_nowait(packet.payload)
        except asyncio.QueueFull:
            self.dropped_packets += 1
            log.warning("audio queue full: the recogniser is not keeping up, dropping 20 ms")

    def _count_gap(self, sequence: int) -> None:
        if self._last_sequence is not None:
            ahead = (sequence - self._last_sequence) & 0xFFFF
            if ahead == 0 or ahead >= 0x8000:
                return  # a duplicate or a late packet: the gap it fills was counted already
            self.lost_packets += ahead - 1
        self._last_sequence = sequence

    def _dtmf(self, packet: rtp.RtpPacket) -> None:
        assert self.dtmf is not None
        for digit in self.dtmf.feed(packet):
            now = time.time()
            self.digits.append((digit, now))
            if self.on_digit is not None:
                try:
                    self.on_digit(digit, now)
                except Exception:
                    # the media path must outlive a broken handler: the next packet still arrives
                    log.exception("DTMF handler failed on %s", digit)

    def arrival_time(self, position_ms: float) -> float | None:
        """Wall-clock time at which the audio at `position_ms` (from the first packet) arrived."""
        if not self._ends_ms:
            return None
        index = min(bisect.bisect_left(self._ends_ms, position_ms), len(self._ends_ms) - 1)
        return self._arrivals[index]

    def keep_audio(self, keep_ms: int) -> None:
        """From now on keeps the last `keep_ms` of the caller's audio (the whisper's source); what was kept stays."""
        self._kept = deque(self._kept, maxlen=max(1, keep_ms // 20))
        self._keep = keep_ms > 0

    def kept_audio(self) -> list[bytes]:
        """The audio payloads kept (`keep_ms`), oldest first, in `payload_type`."""
        return list(self._kept)

    def forget_audio(self) -> None:
        """Drops the kept audio: at a re-prompt, so the whisper holds the sentence that decided."""
        self._kept.clear()

    def timestamp_arrival(self, timestamp: int) -> float | None:
        """Wall-clock time at which the audio at RTP `timestamp` arrived (an in-band key's start, say)."""
        if self.first_timestamp is None:
            return None
        offset = (timestamp - self.first_timestamp) & 0xFFFFFFFF
        if offset >= 0x80000000:
            return None  # before the first packet we heard
        # the packet holding that sample ends after it
        return self.arrival_time(offset / 8.0 + 0.125)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        with contextlib.suppress(asyncio.QueueFull):
            self.audio.put_nowait(None)
