"""The whisper through real Kamailio, rtpengine, recogniser, routing, controller and sipp, in both modes.

A tenant with `whisper: {enabled: true}`. The caller's RTP end is a socket of this test (`PstnMedia`: the
sentence, then distinct near-silent frames); so is the agent's (`AgentMedia`: the agent's sipp phone answers
with an SDP naming it; it logs what it gets and echoes it, as a phone with `-rtp_echo` would). So the test sees:
what the agent heard before the caller's live audio (the whisper: the caller's sentence, not live frames), that
the caller heard ringback and nothing of the agent meanwhile, and that afterwards each hears the other.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from zhida.codecs.g711 import ulaw_decode
from zhida.config import Config
from zhida.stack.calls import wait_for_record
from zhida.stack.sipp import SCENARIOS

from tests.call.conftest import TRUNK_IP, Agents, stack_for_test
from tests.call.test_answered import (
    FRAME,
    NUMBER,
    PSTN_IP,
    PstnMedia,
    repair_frames,  # noqa: F401 (a fixture)
    start_phone,
    wait_no_media_session,
)

DEMO_TENANT = Path(__file__).resolve().parents[2] / "control" / "zhida" / "demo" / "routing" / "demo.yaml"
WHISPER = "\nwhisper:\n  enabled: true\n  max_ms: 8000\n"
RINGBACK_HZ = 450


@pytest.fixture(scope="module")
def whisper_stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Config]:
    run_dir = tmp_path_factory.mktemp("whisper") / "run"
    tenants = run_dir / "data" / "tenants"
    tenants.mkdir(parents=True)
    (tenants / "demo.yaml").write_text(DEMO_TENANT.read_text(encoding="utf-8") + WHISPER, encoding="utf-8")
    yield from stack_for_test(request, run_dir)


@pytest.fixture
def book(whisper_stack: Config, tmp_path: Path) -> Iterator[Agents]:
    agents = Agents(whisper_stack, tmp_path)
    yield agents
    agents.stop()


class AgentMedia:
    """The agent phone's RTP end: logs every packet (arrival, payload) and sends it back where it came from."""

    def __init__(self, ip: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.received: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._echo, daemon=True)
        self._thread.start()

    def _echo(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            if len(data) <= 12 or data[1] & 0x7F != 0:
                continue  # RTCP, telephone-events: not audio
            self.received.append((time.time(), data[12:]))
            try:
                self.sock.sendto(data, addr)
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def whisper_phone(book: Agents, username: str, media: AgentMedia) -> None:
    """Agent `username`'s sipp phone, its answer's SDP naming `media` as where its audio goes."""
    text = (SCENARIOS / "agent_answer.xml").read_text()
    assert "m=audio [media_port]" in text
    scenario = book.work / f"agent-{username}-whisper.xml"
    scenario.write_text(text.replace("m=audio [media_port]", f"m=audio {media.port}"))
    start_phone(book, username, scenario)


def call_from(config: Config, work: Path, media: PstnMedia, ip: str, hangup_after_ms: int) -> tuple[int, str, str]:
    """One call from the trunk at `ip` (early or answered mode, as the demo platform file says), its RTP at
    `media`; sipp's exit code, the Call-ID and the message trace."""
    scenario = work / "caller.xml"
    scenario.write_text((SCENARIOS / "pstn_caller.xml").read_text().replace("@HANGUP_AFTER_MS@",
                                                                            str(hangup_after_ms)))
    inf = work / "caller.csv"
    inf.write_text(f"SEQUENTIAL\n{NUMBER};{ip};{media.port}\n")
    messages = work / "caller-messages.log"
    done = subprocess.run(
        ["sipp", f"{config.sip.address}:{config.sip.port}", "-sf", str(scenario), "-inf", str(inf), "-i", ip,
         "-p", "0", "-m", "1", "-timeout", "60", "-timeout_error", "-trace_msg", "-message_file", str(messages),
         "-nostdin"], capture_output=True, text=True, timeout=75, cwd=work)
    trace = messages.read_text(errors="replace") if messages.exists() else done.stderr
    found = re.search(r"^Call-ID:\s*(\S+)", trace, re.MULTILINE | re.IGNORECASE)
    return done.returncode, found.group(1) if found else "", trace


def envelope(pcm: np.ndarray) -> np.ndarray:
    """RMS per 20 ms."""
    frames = len(pcm) // FRAME
    blocks = pcm[:frames * FRAME].astype(np.float64).reshape(frames, FRAME)
    return np.sqrt((blocks ** 2).mean(axis=1))


def similarity(heard: np.ndarray, said: np.ndarray) -> float:
    """The best normalised correlation of the two loudness envelopes over every alignment."""
    a, b = envelope(heard), envelope(said)
    a, b = (a - a.mean()) / (a.std() or 1.0), (b - b.mean()) / (b.std() or 1.0)
    full = np.correlate(a, b, mode="full") / min(len(a), len(b))
    return float(full.max())


def tone_share(payloads: list[bytes], hz: float) -> float:
    """Of the frames with any sound, the share whose energy is mostly at `hz` (Goertzel)."""
    toned = loud = 0
    for payload in payloads:
        x = ulaw_decode(payload).astype(np.float64)
        energy = float((x ** 2).sum())
        if energy < 1e5 * len(x) / FRAME:
            continue
        loud += 1
        coefficient = 2 * np.cos(2 * np.pi * hz / 8000)
        s1 = s2 = 0.0
        for sample in x:
            s1, s2 = sample + coefficient * s1 - s2, s1
        power = s1 * s1 + s2 * s2 - coefficient * s1 * s2
        toned += power / len(x) * 2 > 0.5 * energy
    return toned / loud if loud else 0.0


def whisper_call(config: Config, book: Agents, frames: list[bytes], ip: str, hangup_after_ms: int,
                 ) -> tuple[dict[str, Any], PstnMedia, AgentMedia]:
    agent = AgentMedia("127.0.0.3")
    whisper_phone(book, "1001", agent)  # the repair group's agent
    caller = PstnMedia(ip, frames)
    try:
        rc, call_id, trace = call_from(config, book.work, caller, ip, hangup_after_ms)
    finally:
        caller.stop()
        agent.stop()
    assert rc == 0, trace[-3000:]
    record = wait_for_record(config, call_id, timeout_s=10)
    assert record.get("outcome") == "connected" and record.get("group") == "repair", record
    assert wait_no_media_session(config) == []
    return record, caller, agent


def check_whisper(record: dict[str, Any], caller: PstnMedia, agent: AgentMedia, frames: list[bytes], *,
                  leak_packets: int) -> None:
    timings = record["timings"]
    assert agent.received, "the agent heard nothing"
    # the agent's first audio is the whisper: what the fork kept of the caller, trimmed to the sentence
    began = agent.received[0][0]
    ended = began + timings["whisper_ms"] / 1000
    whisper = [payload for at, payload in agent.received if at < ended - 0.1]
    sentence_s = len(frames) * 0.02
    assert 0.6 * sentence_s <= len(whisper) * 0.02 <= sentence_s + 1.0, (len(whisper), sentence_s)
    heard = ulaw_decode(b"".join(whisper))
    said = ulaw_decode(b"".join(frames))
    assert similarity(heard, said) > 0.8, "what the agent heard first is not the caller's sentence"
    # then the caller live: frames sent after the sentence (the whisper ends with them, padded: hence the margin)
    after = [payload for at, payload in agent.received if at > ended + 0.3]
    assert len(after) >= 25 and sum(payload in caller.sent for payload in after) >= 0.9 * len(after), \
        "the caller's live audio did not reach the agent after the whisper"
    # the caller heard the agent (its echo of the caller's frames) once bridged, not during the whisper
    echoes = caller.echoes()
    assert len(echoes) >= 25, "the agent's audio never reached the caller"
    early = [at for at in echoes if at < ended - 0.1]
    assert len(early) <= leak_packets, f"the caller heard the agent during the whisper: {len(early)} packets"
    # meanwhile the caller heard ringback
    waiting = [payload for at, _, payload in caller.received if began <= at < ended - 0.1]
    assert tone_share(waiting, RINGBACK_HZ) > 0.8, "no ringback for the caller during the whisper"
    assert timings["whisper_to_bridge_ms"] >= timings["whisper_ms"]


def test_answered_mode_the_agent_hears_the_callers_sentence_before_the_bridge(
    whisper_stack: Config, book: Agents, repair_frames: list[bytes],  # noqa: F811
) -> None:
    record, caller, agent = whisper_call(whisper_stack, book, repair_frames, PSTN_IP, hangup_after_ms=16000)
    # the B2BUA holds the two apart before rtpengine learns the agent's address: nothing leaks
    check_whisper(record, caller, agent, repair_frames, leak_packets=0)
    print(f"answered mode: whisper {record['timings']['whisper_ms']} ms, "
          f"bridged {record['timings']['whisper_to_bridge_ms']} ms after it began")


def test_early_mode_the_agent_hears_the_callers_sentence_before_the_bridge(
    whisper_stack: Config, book: Agents, repair_frames: list[bytes],  # noqa: F811
) -> None:
    record, caller, agent = whisper_call(whisper_stack, book, repair_frames, TRUNK_IP, hangup_after_ms=7000)
    # Kamailio relays the agent's 200 OK before the controller hears of it: the agent's first packets may pass
    # in the milliseconds until rtpengine holds the two apart (docs/dtmf.md)
    check_whisper(record, caller, agent, repair_frames, leak_packets=3)
    print(f"early mode: whisper {record['timings']['whisper_ms']} ms, "
          f"bridged {record['timings']['whisper_to_bridge_ms']} ms after it began")
