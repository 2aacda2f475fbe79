"""Answered mode end to end: a PSTN-like caller answered by the controller's B2BUA, then bridged to an agent.

Real rtpengine, Kamailio, recogniser, routing and controller; sipp plays the gateway's signalling and the agents'
phones. The caller's RTP end is a socket of this test, like a PSTN gateway's: it sends nothing before the call is
answered, then the caller's audio; everything it receives is logged, so the test sees the prompt, and the
agent's echo of the caller's own packets once the agent is connected.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from zhida.call.prompts import synthesize
from zhida.codecs.g711 import ulaw_encode
from zhida.config import Config
from zhida.stack.calls import wait_for_record
from zhida.stack.sipp import SCENARIOS, AgentPhone, free_udp_port, read_wav_8k, register_agent
from zhida.stack.up import ng_request

from tests.call.conftest import AGENT_IP, Agents, final_packet_stats

NUMBER = "4008001234"
PSTN_IP = "127.0.0.5"  # the demo platform's answered-mode trunk
DOMAIN = "demo.zhida.local"
REPAIR_SENTENCE = "我家的空调坏了需要上门维修"
LEAD_SILENCE_S = 3.2  # the caller waits for the prompt to end before speaking
FRAME = 160  # 20 ms of 8 kHz G.711


@pytest.fixture(scope="module")
def repair_frames(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    wav = synthesize(REPAIR_SENTENCE, tmp_path_factory.mktemp("wav") / "repair.wav")
    pcm = read_wav_8k(wav)
    pcm = np.concatenate([pcm, np.zeros((-len(pcm)) % FRAME, dtype=np.int16)])
    return [ulaw_encode(pcm[i:i + FRAME]) for i in range(0, len(pcm), FRAME)]


class PstnMedia:
    """The caller's RTP end. Silent until the first packet from the platform (its answer's media: the prompt),
    then `LEAD_SILENCE_S` of near-silence, the sentence, and near-silence until stopped. Every near-silent
    frame is distinct (random ±1 LSB noise), so a frame that comes back is the agent's echo of this caller."""

    def __init__(self, ip: str, speech: list[bytes]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.speech = speech
        self.sent: set[bytes] = set()
        self.received: list[tuple[float, tuple[str, int], bytes]] = []
        self.first_packet = threading.Event()
        self.peer: tuple[str, int] | None = None
        self.speech_ended_at: float | None = None
        self._stop = threading.Event()
        self._rng = np.random.default_rng()
        self._threads = [threading.Thread(target=self._receive, daemon=True),
                         threading.Thread(target=self._send, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _noise(self) -> bytes:
        return bytes(self._rng.choice([0xFF, 0xFE, 0x7F, 0x7E], FRAME).astype(np.uint8))

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            if len(data) <= 12:
                continue
            self.received.append((time.time(), addr, data[12:]))
            if self.peer is None:
                self.peer = addr
                self.first_packet.set()

    def _send(self) -> None:
        if not self.first_packet.wait(15):
            return
        lead = int(LEAD_SILENCE_S * 50)
        seq, start = 0, time.monotonic()
        while not self._stop.is_set():
            if lead <= seq < lead + len(self.speech):
                payload = self.speech[seq - lead]
            else:
                payload = self._noise()
                self.sent.add(payload)
                if seq == lead + len(self.speech):
                    self.speech_ended_at = time.time()
            header = bytes([0x80, 0x00]) + (seq & 0xFFFF).to_bytes(2, "big") + (seq * FRAME).to_bytes(4, "big") \
                + (0x5A5A5A5A).to_bytes(4, "big")
            assert self.peer is not None
            try:
                self.sock.sendto(header + payload, self.peer)
            except OSError:
                return
            seq += 1
            time.sleep(max(0.0, start + seq * 0.02 - time.monotonic()))

    def echoes(self) -> list[float]:
        """Arrival times of the caller's own frames coming back (caller → agent → caller)."""
        return [at for at, _, payload in self.received if payload in self.sent]

    def prompt_packets(self) -> int:
        """Packets from the platform before the first echo of the caller: the prompt."""
        count = 0
        for _, _, payload in self.received:
            if payload in self.sent:
                break
            count += 1
        return count

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        self.sock.close()


def pstn_call(config: Config, work: Path, media: PstnMedia, *, hangup_after_ms: int,
              timeout_s: int = 60) -> tuple[int, str, str]:
    """One call from the answered-mode trunk; returns sipp's exit code, the Call-ID and its message trace."""
    scenario = work / "pstn_caller.xml"
    scenario.write_text((SCENARIOS / "pstn_caller.xml").read_text().replace("@HANGUP_AFTER_MS@",
                                                                            str(hangup_after_ms)))
    inf = work / "pstn.csv"
    inf.write_text(f"SEQUENTIAL\n{NUMBER};{PSTN_IP};{media.port}\n")
    messages = work / "pstn-messages.log"
    done = subprocess.run(
        ["sipp", f"{config.sip.address}:{config.sip.port}", "-sf", str(scenario), "-inf", str(inf), "-i", PSTN_IP,
         "-p", "0", "-m", "1", "-timeout", str(timeout_s), "-timeout_error", "-trace_msg", "-message_file",
         str(messages), "-nostdin"],
        capture_output=True, text=True, timeout=timeout_s + 15, cwd=work)
    trace = messages.read_text(errors="replace") if messages.exists() else done.stderr
    found = re.search(r"^Call-ID:\s*(\S+)", trace, re.MULTILINE | re.IGNORECASE)
    return done.returncode, found.group(1) if found else "", trace


def answered_call(config: Config, work: Path, speech: list[bytes], *,
                  hangup_after_ms: int) -> tuple[int, str, str, PstnMedia]:
    """`pstn_call` with a PSTN media end saying `speech`; the media end is stopped and returned for inspection."""
    media = PstnMedia(PSTN_IP, speech)
    try:
        rc, call_id, trace = pstn_call(config, work, media, hangup_after_ms=hangup_after_ms)
    finally:
        media.stop()
    return rc, call_id, trace, media


def start_phone(book: Agents, username: str, scenario: Path) -> AgentPhone:
    """An agent's phone running one of the answered-mode scenarios (the stock ones come from `Agents.start`)."""
    port = free_udp_port(AGENT_IP)
    log_file = book.work / f"agent-{username}.log"
    process = subprocess.Popen(
        ["sipp", "-sf", str(scenario), "-i", AGENT_IP, "-p", str(port), "-mp", str(free_udp_port(AGENT_IP)),
         "-rtp_echo", "-trace_logs", "-log_file", str(log_file), "-nostdin"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=book.work)
    phone = AgentPhone(f"sip:{username}@{DOMAIN}", username, f"demo-{username}-pass", DOMAIN, AGENT_IP, port,
                       log_file, process)
    book.phones.append(phone)
    assert register_agent(book.target, phone, work_dir=book.work) == 0, f"{username} did not register"
    return phone


def wait_no_media_session(config: Config, timeout_s: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    calls = list(ng_request(config, "list", limit="100").get("calls", []))
    while calls and time.monotonic() < deadline:
        time.sleep(0.1)
        calls = list(ng_request(config, "list", limit="100").get("calls", []))
    return calls


def controller_log(config: Config) -> str:
    return (config.log_dir / "controller.log").read_text(errors="replace")


def report(name: str, record: dict, media: PstnMedia) -> dict[str, object]:
    """The call's latencies, printed for the benchmark notes (never asserted)."""
    timings = record.get("timings") or {}
    answered_at = timings.get("answered_at")
    first = media.received[0][0] if media.received else None
    numbers = {
        "invite_to_200_ms": timings.get("invite_to_200_ms"),
        "answer_to_prompt_ms": round((first - answered_at) * 1000, 1) if first and answered_at else None,
        "end_of_speech_to_ringing_ms": timings.get("end_of_speech_to_ringing_ms"),
        "end_of_speech_to_invite_ms": record.get("end_of_speech_to_invite_ms"),
        "decision_to_ringing_ms": timings.get("decision_to_ringing_ms"),
        "basis": (record.get("decision") or {}).get("basis"),
        "decision_to_connected_ms": timings.get("decision_to_connected_ms"),
    }
    print(f"{name}: {numbers}")
    return numbers


def assert_media_both_ways(config: Config, call_id: str, media: PstnMedia) -> None:
    assert media.prompt_packets() >= 25, "the caller did not hear the prompt"
    assert len(media.echoes()) >= 25, "the caller's audio did not come back through the agent"
    assert {addr for _, addr, _ in media.received} == {media.peer}, "rtpengine moved the caller-facing port"
    time.sleep(0.3)
    stats = final_packet_stats(config.log_dir / "rtpengine.log", call_id)
    assert len([tag for tag, packets in stats.items() if packets > 0]) >= 2, f"RTP not both ways: {stats}"


def test_pstn_caller_is_answered_recognised_and_bridged_then_hangs_up(
    phones: Agents, full_stack: Config, repair_frames: list[bytes], tmp_path: Path
) -> None:
    repair = phones.start("1001")
    operator = phones.start("1091")
    rc, call_id, trace, media = answered_call(full_stack, tmp_path, repair_frames, hangup_after_ms=16000)
    assert rc == 0, trace[-3000:]
    assert "SIP/2.0 200 OK" in trace and "SIP/2.0 183" not in trace
    answer = trace.replace("\r\n", "\n")
    answer_headers = answer[answer.index("SIP/2.0 200 OK"):].split("\n\n")[0]
    # the gateway asked for a session timer without naming the refresher and supports it: it refreshes
    assert re.search(r"^Session-Expires:\s*1800;refresher=uac", answer_headers, re.MULTILINE | re.IGNORECASE)
    assert re.search(r"^Require:.*timer", answer_headers, re.MULTILINE | re.IGNORECASE)
    record = wait_for_record(full_stack, call_id, timeout_s=10)
    assert record.get("outcome") == "connected", record
    agent_call = call_id + "-agent"
    reached = repair if agent_call in repair.received_calls() else operator
    assert agent_call in reached.received_calls()
    assert_media_both_ways(full_stack, call_id, media)
    assert media.echoes()[0] > media.received[0][0], "echo before the prompt?"
    assert wait_no_media_session(full_stack) == []
    log = controller_log(full_stack)
    assert f"{agent_call}: ended by local (hangup)" in log  # the caller's BYE became the agent's BYE
    report("caller hangs up", record, media)
    assert record.get("group") == "repair", record  # the test model recognises this sentence, the rules route it
    assert agent_call in repair.received_calls()


def test_agent_hangs_up_and_the_pstn_caller_gets_bye(
    phones: Agents, full_stack: Config, repair_frames: list[bytes], tmp_path: Path
) -> None:
    scenario = tmp_path / "agent_hangs_up.xml"
    scenario.write_text((SCENARIOS / "pstn_agent_hangs_up.xml").read_text().replace("@TALK_MS@", "3000"))
    repair = start_phone(phones, "1001", scenario)
    operator = start_phone(phones, "1091", scenario)
    rc, call_id, trace, media = answered_call(full_stack, tmp_path, repair_frames, hangup_after_ms=45000)
    assert rc == 0, trace[-3000:]
    assert re.search(r"^BYE sip:", trace, re.MULTILINE), "the caller got no BYE"
    record = wait_for_record(full_stack, call_id, timeout_s=10)
    assert record.get("outcome") == "connected", record
    agent_call = call_id + "-agent"
    assert agent_call in repair.received_calls() + operator.received_calls()
    assert_media_both_ways(full_stack, call_id, media)
    assert wait_no_media_session(full_stack) == []
    log = controller_log(full_stack)
    assert f"{agent_call}: ended by remote (bye)" in log
    assert f"{call_id}: ended by local (hangup)" in log
    report("agent hangs up", record, media)
    assert record.get("group") == "repair", record  # the test model recognises this sentence, the rules route it


def test_agents_that_never_answer_are_skipped_then_the_overflow_group_answers(
    phones: Agents, full_stack: Config, repair_frames: list[bytes], tmp_path: Path
) -> None:
    # Registered in this order so that the longest-idle agent of each group is one that never answers.
    silent = [phones.start(name, behaviour="no_answer") for name in ("1001", "1002", "1091")]
    answering = phones.start("1092")
    rc, call_id, trace, media = answered_call(full_stack, tmp_path, repair_frames, hangup_after_ms=28000)
    assert rc == 0, trace[-3000:]
    record = wait_for_record(full_stack, call_id, timeout_s=10)
    agent_call = call_id + "-agent"
    assert record.get("outcome") == "connected", record
    assert agent_call in answering.received_calls()
    rang_out = [phone.username for phone in silent if agent_call in phone.received_calls()]
    assert "1091" in rang_out, "the operator group's first agent was not tried before the next one"
    assert_media_both_ways(full_stack, call_id, media)
    assert wait_no_media_session(full_stack) == []
    report("after unanswered agents", record, media)
    assert record.get("group") == "repair", record  # the test model recognises this sentence, the rules route it
    assert rang_out == ["1001", "1002", "1091"]


def test_when_no_agent_takes_the_call_the_caller_hears_so_before_the_platform_hangs_up(
    phones: Agents, full_stack: Config, repair_frames: list[bytes], tmp_path: Path
) -> None:
    silent = [phones.start(name, behaviour="no_answer") for name in ("1001", "1091")]
    rc, call_id, trace, media = answered_call(full_stack, tmp_path, repair_frames, hangup_after_ms=45000)
    assert rc == 0, trace[-3000:]
    assert re.search(r"^BYE sip:", trace, re.MULTILINE), "the platform did not hang up"
    record = wait_for_record(full_stack, call_id, timeout_s=10)
    assert record.get("outcome") == "no_agent", record
    assert any(call_id + "-agent" in phone.received_calls() for phone in silent)
    timings = record.get("timings") or {}
    announced_at = timings.get("unavailable_announced_at")
    assert announced_at, f"no announcement in the record: {timings}"
    # The announcement comes after the prompt, the sentence and the agents' ringing, and reaches the caller.
    assert announced_at - timings["answered_at"] > LEAD_SILENCE_S + 3
    heard = [at for at, _, payload in media.received if at >= announced_at and payload not in media.sent]
    assert len(heard) >= 50, f"{len(heard)} packets of the announcement reached the caller"
    assert wait_no_media_session(full_stack) == []


def test_pstn_caller_hangs_up_during_the_prompt(
    phones: Agents, full_stack: Config, repair_frames: list[bytes], tmp_path: Path
) -> None:
    repair = phones.start("1001")
    operator = phones.start("1091")
    rc, call_id, trace, media = answered_call(full_stack, tmp_path, repair_frames, hangup_after_ms=800)
    assert rc == 0, trace[-3000:]
    assert media.prompt_packets() > 0, "the prompt never started"
    record = wait_for_record(full_stack, call_id, timeout_s=10)
    assert record.get("outcome") == "abandoned", record
    assert wait_no_media_session(full_stack) == []
    log = controller_log(full_stack)
    assert f"call {call_id}: answered -> prompt_started -> prompting" in log
    assert re.search(rf"call {re.escape(call_id)}: \w+ -> hangup -> ended", log)
    assert repair.received_calls() == [] and operator.received_calls() == []


def test_an_answered_caller_whose_recogniser_is_gone_is_bridged_to_the_fallback_group_at_once(
    phones: Agents, recognizer_killed: Config, repair_frames: list[bytes], tmp_path: Path
) -> None:
    """Answered mode cannot hand the call back to Kamailio: its own agent leg goes to the fallback group."""
    repair = phones.start("1001")
    operator = phones.start("1091")
    rc, call_id, trace, media = answered_call(recognizer_killed, tmp_path, repair_frames, hangup_after_ms=9000)
    assert rc == 0, trace[-3000:]
    record = wait_for_record(recognizer_killed, call_id, timeout_s=10)
    assert record.get("outcome") == "connected", record
    assert record["decision"]["kind"] == "fallback" and record["group"] == "operator", record
    agent_call = call_id + "-agent"
    assert agent_call in operator.received_calls() and repair.received_calls() == []
    log = controller_log(recognizer_killed)
    assert f"call {call_id} failed in prompting" in log
    assert f"call {call_id}: prompting -> failed -> bridging" in log
    # connected within the caller's 9 s (a listening timeout alone is 6 s of no input, then the re-prompt's)
    assert len(media.echoes()) >= 25, "the caller's audio did not come back through the operator"
    assert wait_no_media_session(recognizer_killed) == []


def test_a_hung_controller_does_not_lose_an_answered_mode_call(
    phones: Agents, full_stack: Config, repair_frames: list[bytes], tmp_path: Path
) -> None:
    """The controller stops (SIGSTOP) with its evapi link up: Kamailio still sends the trunk's call to the B2BUA,
    hears nothing, and rings the tenant's fallback group itself, media through rtpengine as usual."""
    operator = phones.start("1091")
    pid = int((full_stack.run_dir / "pids" / "controller.pid").read_text())
    media = PstnMedia(PSTN_IP, repair_frames)
    os.killpg(pid, signal.SIGSTOP)
    try:
        rc, call_id, trace = pstn_call(full_stack, tmp_path, media, hangup_after_ms=3000)
        # the caller's BYE went to the agent through rtpengine_delete, not past it as on a B2BUA leg (checked
        # while the controller is still stopped: nothing else deletes the session)
        left = wait_no_media_session(full_stack)
    finally:
        os.killpg(pid, signal.SIGCONT)
        media.stop()
    assert rc == 0, trace[-3000:]
    assert call_id in operator.received_calls()
    assert "SIP/2.0 200 OK" in trace
    kamailio_log = (full_stack.log_dir / "kamailio.log").read_text(errors="replace")
    assert f"B2BUA gave no answer for {call_id} (408)" in kamailio_log
    assert left == []
    # Resumed, the controller refuses the stale INVITE instead of answering the caller a second time.
    log = full_stack.log_dir / "controller.log"
    deadline = time.monotonic() + 10
    while "past the B2BUA's answer timeout: refused" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"{call_id}: INVITE relayed" in log.read_text()
    assert f"call {call_id}: held" not in log.read_text(), "the stale INVITE was taken as a new call"


def test_agent_hold_and_resume_reach_rtpengine_not_the_pstn_caller(
    phones: Agents, full_stack: Config, repair_frames: list[bytes], tmp_path: Path
) -> None:
    scenario = tmp_path / "agent_holds.xml"
    scenario.write_text((SCENARIOS / "pstn_agent_holds.xml").read_text().replace("@TALK_MS@", "2000"))
    agents = [start_phone(phones, name, scenario) for name in ("1001", "1091")]
    rc, call_id, trace, media = answered_call(full_stack, tmp_path, repair_frames, hangup_after_ms=50000)
    assert rc == 0, trace[-3000:]
    agent_call = call_id + "-agent"
    agent_log = "".join(phone.log_file.read_text(errors="replace") for phone in agents if phone.log_file.exists())
    assert f"held {agent_call}" in agent_log, "the hold re-INVITE was not answered with recvonly/inactive"
    assert f"resumed {agent_call}" in agent_log, "the resume re-INVITE was not answered"
    assert "INVITE sip:13800138000" not in trace, "the PSTN caller was re-INVITEd"
    log = controller_log(full_stack)
    assert f"call {call_id}: agent re-INVITE (sendonly) passed to rtpengine" in log
    assert_media_both_ways(full_stack, call_id, media)
    assert wait_no_media_session(full_stack) == []
