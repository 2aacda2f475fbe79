"""DTMF from the caller's RTP: RFC 4733 telephone-events and in-band tones in G.711 audio, one report per press.

The in-band detector follows the classic receiver design (spandsp, Asterisk's dsp.c) for ITU-T Q.23/Q.24
tones: Goertzel power at the 8 DTMF frequencies (and their second harmonics) over 102-sample blocks
(12.75 ms, the resolution that separates neighbouring rows) every 51 samples, and a block counts as a key only if

- both tones are loud enough and one row and one column stand out from the others of their group,
- the twist (row vs column level) is within what lines and phones produce,
- the two tones carry most of the block's energy (speech spreads it), and
- neither tone has a strong second harmonic (voiced speech is rich in harmonics, a keypad's tones are not).

A key is reported once it holds for `hits` consecutive blocks (38 ms of tone) and may be reported again only
after `gap` blocks without it. The half-block hop makes a 40 ms tone always contain five whole blocks (with
blocks end to end, a 40 ms tone held three whole ones only when it started early in a block). The Goertzel
sums for all blocks of a packet are one matrix product with numpy.

The PyPI packages for this (dtmf, pydtmf) loop over samples in Python and make none of the checks above, so
speech triggers them; this module is the kept implementation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from zhida.codecs import g711
from zhida.codecs import telephone_event as te
from zhida.codecs.rtp import PT_PCMA, PT_PCMU, PT_TELEPHONE_EVENT, RtpPacket

RATE = 8000
ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")
BLOCK = 102  # samples; the frequency resolution (78 Hz) separates adjacent rows (73 Hz apart) at their nulls
HOP = BLOCK // 2


@dataclass(frozen=True)
class InbandSettings:
    # Each tone at least this loud (dBm0); Q.24 receivers accept down to about -25 dBm0 per tone.
    min_level_dbm0: float = -36.0
    # Twist in dB: the row tone may be this much louder than the column ("normal", lines lose the highs)...
    normal_twist_db: float = 8.0
    # ... and the column this much louder than the row ("reverse", phones pre-emphasise the highs).
    reverse_twist_db: float = 6.0
    # The chosen row (column) at least this much above the next row (column).
    relative_peak_db: float = 8.0
    # Share of the block's energy the two tones must carry.
    tone_share: float = 0.7
    # Second harmonic at least this far below its fundamental. A row's harmonic (1394-1882 Hz) sits close to
    # the column tones and picks up their leakage, so its bound is looser.
    row_harmonic_db: float = 3.0
    column_harmonic_db: float = 15.0
    hits: int = 5  # consecutive blocks, 306 samples: 38 ms, within Q.24's 40 ms minimum tone
    # Blocks without the key before it counts as released: 4 (255 samples) outlast a 10 ms dropout inside a
    # tone (it spoils at most 3 blocks) and fit in Q.24's 40 ms pause between keys (5 blocks of silence).
    gap: int = 4


# A 0 dBm0 sine in G.711 is 3.17 dB below the codec's full-scale sine (32124 in 16-bit PCM).
_DBM0_AMPLITUDE = 32124 * 10 ** (-3.17 / 20)


def _basis(frequencies: Iterable[float]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    n = np.arange(BLOCK)[:, None]
    w = 2 * np.pi * np.asarray(list(frequencies))[None, :] / RATE
    return np.cos(w * n), np.sin(w * n)


_FREQS = (*ROWS, *COLUMNS, *(2 * f for f in ROWS), *(2 * f for f in COLUMNS))
_BASIS = np.hstack(_basis(_FREQS))  # cosines then sines: one matrix product gives both parts


@dataclass(frozen=True)
class ToneKey:
    digit: str
    start: int  # sample offset of the first block that held the key, from the first sample fed
    level_dbm0: float  # the weaker tone's level in the block that completed the detection


def block_digits(blocks: NDArray[np.float64], settings: InbandSettings) -> tuple[list[str], NDArray[np.float64]]:
    """The key each block holds ("" for none) and the weaker tone's level in dBm0, for an (m, BLOCK) array."""
    # Power of a sinusoid of amplitude A at the bin's frequency: 2|X|^2/N^2 = A^2/2, as the block's mean square.
    parts = blocks @ _BASIS
    parts *= parts
    power = (parts[:, :16] + parts[:, 16:]) * (2.0 / (BLOCK * BLOCK))
    total = np.einsum("ij,ij->i", blocks, blocks) / BLOCK
    rows, cols = power[:, 0:4], power[:, 4:8]
    # Speech and silence, nearly all of a call, fail the energy-share check already: skip the others.
    if not np.any(rows.max(axis=1) + cols.max(axis=1) >= settings.tone_share * total):
        return [""] * len(blocks), np.full(len(blocks), -99.0)
    row_h, col_h = power[:, 8:12], power[:, 12:16]
    r = rows.argmax(axis=1)
    c = cols.argmax(axis=1)
    idx = np.arange(len(blocks))
    pr, pc = rows[idx, r], cols[idx, c]
    s = settings
    min_power = (_DBM0_AMPLITUDE * 10 ** (s.min_level_dbm0 / 20)) ** 2 / 2
    peak = 10 ** (s.relative_peak_db / 10)
    rows_sorted = np.sort(rows, axis=1)
    cols_sorted = np.sort(cols, axis=1)
    ok = (
        (pr >= min_power) & (pc >= min_power)
        & (pr <= pc * 10 ** (s.normal_twist_db / 10)) & (pc <= pr * 10 ** (s.reverse_twist_db / 10))
        & (rows_sorted[:, 2] * peak <= pr) & (cols_sorted[:, 2] * peak <= pc)
        & (pr + pc >= s.tone_share * total)
        & (row_h[idx, r] * 10 ** (s.row_harmonic_db / 10) <= pr)
        & (col_h[idx, c] * 10 ** (s.column_harmonic_db / 10) <= pc)
    )
    level = 10 * np.log10(np.maximum(np.minimum(pr, pc), 1e-9) * 2) - 20 * np.log10(_DBM0_AMPLITUDE)
    return [KEYS[i][j] if good else "" for i, j, good in zip(r, c, ok, strict=True)], level


class InbandDetector:
    """In-band DTMF in a stream of 8 kHz PCM16 samples, fed in any chunk sizes."""

    def __init__(self, settings: InbandSettings | None = None) -> None:
        self.settings = settings or InbandSettings()
        self._pending = np.zeros(0, dtype=np.float64)
        self._offset = 0  # sample offset of _pending[0]
        self._candidate = ""
        self._run = 0
        self._run_start = 0
        self._held = ""  # the key reported and not yet released
        self._misses = 0

    def feed(self, pcm: NDArray[Any]) -> list[ToneKey]:
        samples = np.concatenate([self._pending, pcm.astype(np.float64)])
        if len(samples) < BLOCK:
            self._pending = samples
            return []
        count = (len(samples) - BLOCK) // HOP + 1
        self._pending = samples[count * HOP:]
        start = self._offset
        self._offset += count * HOP
        blocks = np.lib.stride_tricks.sliding_window_view(samples, BLOCK)[: count * HOP : HOP]
        digits, levels = block_digits(blocks, self.settings)
        found = []
        for i, digit in enumerate(digits):
            key = self._step(digit, start + i * HOP, float(levels[i]))
            if key is not None:
                found.append(key)
        return found

    def _step(self, digit: str, at: int, level: float) -> ToneKey | None:
        s = self.settings
        if self._held:
            if digit == self._held:
                self._misses = 0
                return None
            self._misses += 1
            if self._misses < s.gap:
                return None
            self._held, self._misses = "", 0
        if digit and digit == self._candidate:
            self._run += 1
        else:
            self._candidate, self._run, self._run_start = digit, 1 if digit else 0, at
        if self._candidate and self._run >= s.hits:
            self._held, self._candidate, self._run = self._candidate, "", 0
            return ToneKey(self._held, self._run_start, level)
        return None


@dataclass(frozen=True)
class Digit:
    """One key press, whichever way it came."""

    digit: str
    source: str  # "rfc4733" | "inband"
    ssrc: int
    timestamp: int  # RTP timestamp (8 kHz audio clock) at which the press began


class DtmfDetector:
    """Feed it every RTP packet of the caller's stream; it returns each key press once.

    Carriers send one kind or the other, and some gateways send both for one press (an RFC 4733 event over
    audio that still carries the tone): a press of the same key from the other source within `same_press_ms`
    of one already reported is the same press. Once telephone-events have been seen on the stream, in-band
    detection stops: that sender signals keys out of band, and its audio is speech.
    """

    def __init__(self, *, event_payload_types: Iterable[int] = (PT_TELEPHONE_EVENT,), inband: bool = True,
                 settings: InbandSettings | None = None, same_press_ms: int = 300) -> None:
        self.event_payload_types = frozenset(event_payload_types)
        self.inband = inband
        self._events = te.EventTracker()
        self._tones = InbandDetector(settings)
        self._same_press = same_press_ms * RATE // 1000
        self._audio_ts: int | None = None  # RTP timestamp of the in-band detector's sample 0
        self._audio_ssrc: int | None = None
        self._last: Digit | None = None
        self.events_seen = False

    def feed(self, packet: RtpPacket) -> list[Digit]:
        if packet.payload_type in self.event_payload_types:
            return self._feed_event(packet)
        if packet.payload_type in (PT_PCMU, PT_PCMA) and self.inband and not self.events_seen:
            return self._feed_audio(packet)
        return []

    def _feed_event(self, packet: RtpPacket) -> list[Digit]:
        try:
            event = te.parse(packet.payload)
        except te.TelephoneEventError:
            return []
        self.events_seen = True
        press = self._events.feed(event, ssrc=packet.ssrc, timestamp=packet.timestamp, marker=packet.marker)
        if press is None:
            return []
        return self._report(Digit(press.digit, "rfc4733", packet.ssrc, packet.timestamp))

    def _feed_audio(self, packet: RtpPacket) -> list[Digit]:
        if packet.ssrc != self._audio_ssrc:
            # a new source (a re-INVITE, a gateway switching streams): its clock starts anew
            self._tones = InbandDetector(self._tones.settings)
            self._audio_ssrc = packet.ssrc
            self._audio_ts = packet.timestamp
        pcm = g711.alaw_decode(packet.payload) if packet.payload_type == PT_PCMA else g711.ulaw_decode(packet.payload)
        found: list[Digit] = []
        for key in self._tones.feed(pcm):
            timestamp = ((self._audio_ts or 0) + key.start) & 0xFFFFFFFF
            found += self._report(Digit(key.digit, "inband", packet.ssrc, timestamp))
        return found

    def _report(self, digit: Digit) -> list[Digit]:
        last = self._last
        if (last is not None and last.digit == digit.digit and last.source != digit.source
                and abs(_ts_diff(digit.timestamp, last.timestamp)) <= self._same_press):
            return []
        self._last = digit
        return [digit]


def _ts_diff(a: int, b: int) -> int:
    """a - b on the 32-bit RTP timestamp circle."""
    d = (a - b) & 0xFFFFFFFF
    return d - 0x100000000 if d >= 0x80000000 else d


def key_tone(digit: str, duration_ms: float, *, level_dbm0: float = -10.0, twist_db: float = 0.0,
             phase: float = 0.0) -> NDArray[np.int16]:
    """The dual tone of a key as 8 kHz PCM16, each tone at `level_dbm0` (the column `twist_db` louder)."""
    row = next((i for i, keys in enumerate(KEYS) if digit in keys), None)
    if row is None or len(digit) != 1:
        raise ValueError(f"{digit!r} is not a DTMF key")
    col = KEYS[row].index(digit)
    t = np.arange(round(duration_ms * RATE / 1000)) / RATE
    amplitude = _DBM0_AMPLITUDE * 10 ** (level_dbm0 / 20)
    pcm = amplitude * np.sin(2 * np.pi * ROWS[row] * t + phase)
    pcm += amplitude * 10 ** (twist_db / 20) * np.sin(2 * np.pi * COLUMNS[col] * t + 2 * phase)
    tone: NDArray[np.int16] = np.clip(np.round(pcm), -32768, 32767).astype(np.int16)
    return tone
