"""The whisper: before caller and agent hear each other, the agent hears the caller's own sentence.

The audio is what the recogniser heard (the fork's kept G.711 payloads), trimmed to speech
(`zhida.media.whisper`), written as a WAV that rtpengine's player reads. On rtpengine, for the call's two sides
(the caller's From-tag, the agent's tag):

1. `block media`, directional, from the caller and from the agent: neither hears the other live yet;
2. `play media`: the sentence to the agent, the ringback tone to the caller (a caller already billed, in
   answered mode, would otherwise hear silence; in early mode the carrier's ringback stopped at the 200 OK);
3. after the sentence: `stop media` on both sides, `unblock media` on both: the two are bridged.

Step 3 runs however the whisper ends (a hang-up cancels it halfway); against a session rtpengine no longer has
it fails quietly. A controller that dies between 1 and 3 leaves the two sides blocked: the agent hangs up on
silence; docs/dtmf.md says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from zhida.media.fork import AudioFork
from zhida.media.ng import NgClient, NgError
from zhida.media.whisper import RATE, wav_bytes, whisper_from_rtp

log = logging.getLogger(__name__)

# the silence kept either side of the speech, so the first and last syllables are whole
PAD_MS = 150
# waited past the sentence's length before the bridge: none, the sentence ends in PAD_MS of its own silence
SETTLE_S = 0.0


@dataclass(frozen=True)
class WhisperAudio:
    path: Path
    length_s: float


def prepare(fork: AudioFork, folder: Path, name: str, max_ms: int) -> WhisperAudio | None:
    """The caller's sentence as a WAV in `folder` (readable by rtpengine, no one else); None when they said
    nothing that the fork kept."""
    payloads = fork.kept_audio()
    if not payloads or fork.payload_type is None:
        return None
    pcm = whisper_from_rtp(payloads, fork.payload_type, pad_ms=PAD_MS, max_ms=max_ms)
    if len(pcm) == 0:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.wav"
    aside = path.with_suffix(".part")
    with open(os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640), "wb") as out:
        out.write(wav_bytes(pcm))
    aside.replace(path)
    return WhisperAudio(path, len(pcm) / RATE)


async def hold_apart(ng: NgClient, call_id: str, *, caller_tag: str, agent_tag: str) -> None:
    """Neither side's audio reaches the other (rtpengine drops it, each direction on its own)."""
    for tag in (caller_tag, agent_tag):
        await ng.request("block media", flags=["directional"], **{"call-id": call_id, "from-tag": tag})


async def play(ng: NgClient, call_id: str, *, caller_tag: str, agent_tag: str, audio: WhisperAudio,
               ringback: Path | None, held: bool = False) -> float:
    """Plays the whisper to the agent and ringback to the caller, then bridges them (`held`: `hold_apart` was
    done already, before the agent's answer reached rtpengine); seconds from the first packet's order to the
    bridge."""
    began = time.time()
    caller = {"call-id": call_id, "from-tag": caller_tag}
    agent = {"call-id": call_id, "from-tag": agent_tag}
    try:
        if not held:
            await hold_apart(ng, call_id, caller_tag=caller_tag, agent_tag=agent_tag)
        answer = await ng.request("play media", file=str(audio.path), **agent)
        if ringback is not None:
            with contextlib.suppress(NgError):  # the caller then hears silence: no reason to keep the agent waiting
                await ng.request("play media", file=str(ringback), **caller)
        duration_ms = answer.get("duration")
        length_s = float(duration_ms) / 1000.0 if isinstance(duration_ms, int) and duration_ms > 0 \
            else audio.length_s
        await asyncio.sleep(length_s + SETTLE_S)
    finally:
        # bridged whatever happened above: a failed whisper must not leave the two unable to hear each other
        await bridge(ng, call_id, caller_tag=caller_tag, agent_tag=agent_tag)
        audio.path.unlink(missing_ok=True)
    return time.time() - began


async def bridge(ng: NgClient, call_id: str, *, caller_tag: str, agent_tag: str) -> None:
    """Players stopped, both directions open again; each step on its own (one that fails stops no other)."""
    for tag in (agent_tag, caller_tag):
        with contextlib.suppress(NgError):  # a player that finished is no error worth a log
            await ng.request("stop media", **{"call-id": call_id, "from-tag": tag})
    for tag in (caller_tag, agent_tag):
        try:
            await ng.request("unblock media", flags=["directional"], **{"call-id": call_id, "from-tag": tag})
        except NgError as exc:
            log.warning("call %s: unblocking %s failed: %s", call_id, tag, exc)
