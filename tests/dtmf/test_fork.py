"""The stand-in socket with a DtmfDetector: key presses reach the callback, audio still reaches the queue."""

from __future__ import annotations

import asyncio
import socket

import numpy as np
from zhida.media.dtmf import Digit, DtmfDetector, key_tone
from zhida.media.fork import AudioFork

from tests.dtmf.dtmfkit import audio_packets, event_packets, silence


async def send_all(port: int, packets: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for data in packets:
            sock.sendto(data, ("127.0.0.1", port))
            await asyncio.sleep(0.001)
    await asyncio.sleep(0.05)


async def test_keys_of_both_kinds_reach_the_callback() -> None:
    seen: list[tuple[Digit, float]] = []
    fork, port = await AudioFork.open("127.0.0.1", dtmf=DtmfDetector(), on_digit=lambda d, at: seen.append((d, at)))
    try:
        pcm = np.concatenate([silence(200), key_tone("4", 100), silence(200)])
        audio = audio_packets(pcm, timestamp=16000)
        await send_all(port, [bytes(p) for p in audio])
        assert [(d.digit, d.source) for d, _ in seen] == [("4", "inband")]
        assert fork.packets == len(audio) and fork.audio.qsize() == len(audio)
        # the press began in the 11th packet (200 ms in): its arrival, not the detection's
        start = fork.timestamp_arrival(seen[0][0].timestamp)
        assert start is not None and start <= seen[0][1]
        assert fork.timestamp_arrival(16000 - 160) is None  # before the first packet heard
        await send_all(port, [bytes(p) for p in event_packets("#", timestamp=40000)])
        assert [d.digit for d, _ in seen] == ["4", "#"]
        assert fork.packets == len(audio)  # events are no audio for the recogniser
        assert [d.digit for d, _ in fork.digits] == ["4", "#"]
    finally:
        fork.close()


async def test_a_failing_handler_does_not_stop_the_media() -> None:
    def broken(digit: Digit, at: float) -> None:
        raise RuntimeError("handler bug")

    fork, port = await AudioFork.open("127.0.0.1", dtmf=DtmfDetector(), on_digit=broken)
    try:
        await send_all(port, [bytes(p) for p in event_packets("1", timestamp=0)] + [b"\x00\x01"])
        await send_all(port, [bytes(p) for p in audio_packets(silence(100), timestamp=800)])
        assert fork.packets == 5 and fork.bad_packets == 1
        assert [d.digit for d, _ in fork.digits] == ["1"]
    finally:
        fork.close()


async def test_without_a_detector_the_fork_is_as_before() -> None:
    fork, port = await AudioFork.open("127.0.0.1")
    try:
        await send_all(port, [bytes(p) for p in event_packets("1", timestamp=0) + audio_packets(key_tone("1", 100))])
        assert fork.digits == [] and fork.packets == 5
    finally:
        fork.close()


async def test_the_callers_audio_is_kept_for_the_whisper() -> None:
    fork, port = await AudioFork.open("127.0.0.1", keep_ms=200)
    try:
        packets = audio_packets(np.concatenate([silence(200), key_tone("1", 200)]))
        await send_all(port, [bytes(p) for p in packets])
        assert fork.kept_audio() == [p.payload for p in packets[-10:]]  # the last 200 ms
        assert fork.audio.qsize() == 20  # the recogniser's copy is untouched
        fork.forget_audio()
        assert fork.kept_audio() == []
    finally:
        fork.close()
    plain, plain_port = await AudioFork.open("127.0.0.1")
    try:
        await send_all(plain_port, [bytes(p) for p in packets])
        assert plain.packets == 20 and plain.kept_audio() == []  # nothing kept unless asked
    finally:
        plain.close()
