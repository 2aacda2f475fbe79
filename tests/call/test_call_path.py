"""The whole call path with the controller: real speech through rtpengine, the recogniser and the rules."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
from zhida.call.prompts import synthesize
from zhida.config import Config
from zhida.stack import up as stack
from zhida.stack.calls import place_call, wait_for_record
from zhida.stack.sipp import SCENARIOS, caller_pcap, caller_scenario, cancelling_scenario, free_udp_port, run_caller
from zhida.stack.up import ng_request

from tests.call.conftest import TRUNK_IP, Agents, final_packet_stats, kill_service

NUMBER = "4008001234"
REPAIR_SENTENCE = "我家的空调坏了需要上门维修"


@pytest.fixture(scope="module")
def repair_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(REPAIR_SENTENCE, tmp_path_factory.mktemp("wav") / "repair.wav")


def rtpengine_calls(config: Config) -> list[str]:
    return list(ng_request(config, "list", limit="100").get("calls", []))


def test_a_demo_call_reaches_the_right_agent_and_media_flows_both_ways(
    phones: Agents, full_stack: Config, repair_wav: Path
) -> None:
    repair = phones.start("1001")
    operator = phones.start("1091")
    line = place_call(full_stack, number=NUMBER, wav=repair_wav, trunk=TRUNK_IP, expected_group="repair")
    assert line["sipp_rc"] == 0, line
    reached = repair if line["call_id"] in repair.received_calls() else operator
    assert line["call_id"] in reached.received_calls(), line
    time.sleep(0.5)
    stats = final_packet_stats(full_stack.log_dir / "rtpengine.log", line["call_id"])
    senders = [tag for tag, packets in stats.items() if packets > 0]
    assert len(senders) >= 2, f"RTP did not flow both ways: {stats}"
    assert rtpengine_calls(full_stack) == []
    assert line["group"] == "repair", line
    assert line["call_id"] in repair.received_calls()
    assert line["end_of_speech_to_invite_ms"] is not None
    # Decided on a partial (not after the endpointer's silence); the model may not have emitted the last words
    # yet, but what the rules saw was heard right.
    assert line["decision_basis"] == "partial", line
    assert line["transcript"] and REPAIR_SENTENCE.startswith(line["transcript"]), line


def _cancelling_call(config: Config, wav: Path, work: Path, cancel_after_ms: int) -> tuple[int, str]:
    scenario = cancelling_scenario(wav, work, cancel_after_ms=cancel_after_ms, lead_silence_s=0.5,
                                   tail_silence_s=3.0)
    messages = work / "cancel-messages.log"
    done = subprocess.run(
        ["sipp", f"{config.sip.address}:{config.sip.port}", "-sf", str(scenario), "-s", NUMBER, "-i", TRUNK_IP,
         "-p", "0", "-mp", str(free_udp_port(TRUNK_IP)), "-m", "1", "-timeout", "30", "-timeout_error",
         "-trace_msg", "-message_file", str(messages), "-nostdin"],
        capture_output=True, text=True, timeout=45, cwd=work)
    return done.returncode, messages.read_text(errors="replace") if messages.exists() else done.stderr


# 1000 ms: 0.5 s of lead silence, then half a second of speech, less than the controller's min_speech_ms, so no
# partial can have decided the call yet whatever the model makes of the first syllables.
@pytest.mark.parametrize(("cancel_after_ms", "state"), [(300, "prompting"), (1000, "listening")],
                         ids=["during-prompt", "during-recognition"])
def test_caller_cancel_ends_with_487_and_leaves_no_media_session(
    phones: Agents, full_stack: Config, repair_wav: Path, tmp_path: Path, cancel_after_ms: int, state: str
) -> None:
    phones.start("1001")
    rc, messages = _cancelling_call(full_stack, repair_wav, tmp_path, cancel_after_ms)
    assert rc == 0, messages[-2000:]
    assert "SIP/2.0 487" in messages
    deadline = time.monotonic() + 5
    while rtpengine_calls(full_stack) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rtpengine_calls(full_stack) == []
    log = (full_stack.log_dir / "controller.log").read_text()
    assert f"{state} -> hangup -> ended" in log


def test_a_dead_controller_does_not_lose_the_held_call(
    phones: Agents, full_stack: Config, repair_wav: Path
) -> None:
    operator = phones.start("1091")
    result: dict[str, object] = {}
    caller = threading.Thread(target=lambda: result.update(
        place_call(full_stack, number=NUMBER, wav=repair_wav, trunk=TRUNK_IP)))
    caller.start()
    controller_log = full_stack.log_dir / "controller.log"
    deadline = time.monotonic() + 20
    while "-> prompting" not in controller_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    kill_service(full_stack, "controller")
    caller.join(90)
    assert result.get("sipp_rc") == 0, result
    assert result["call_id"] in operator.received_calls()
    assert "to fallback" in (full_stack.log_dir / "kamailio.log").read_text()


def test_a_restarted_controller_deletes_media_sessions_nobody_owns_and_knows_the_registered_agents(
    phones: Agents, full_stack: Config
) -> None:
    phones.start("1001")
    phones.start("1091")
    sdp = "v=0\r\no=x 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    ng_request(full_stack, "offer", **{"call-id": "orphan-of-a-dead-controller", "from-tag": "x", "sdp": sdp})
    assert "orphan-of-a-dead-controller" in rtpengine_calls(full_stack)
    kill_service(full_stack, "controller")
    stack.start_controller(full_stack)
    assert "orphan-of-a-dead-controller" not in rtpengine_calls(full_stack)
    log = (full_stack.log_dir / "controller.log").read_text()
    assert "deleting orphan rtpengine session" in log
    assert re.findall(r"reconciled (\d+) registered agents", log)[-1] == "2"


def test_an_agent_that_deregisters_by_its_contacts_expires_is_no_longer_registered(
    phones: Agents, full_stack: Config, tmp_path: Path
) -> None:
    phone = phones.start("1001")
    log_file = full_stack.log_dir / "controller.log"
    _wait_for(log_file, "agent sip:1001@demo.zhida.local: registered for 600 s (registrar)")
    # RFC 3261 10.2.2: `Contact: <…>;expires=0` and no Expires header removes the binding
    scenario = tmp_path / "unregister.xml"
    scenario.write_text((SCENARIOS / "register.xml").read_text().replace(
        "Contact: <sip:[field0]@[local_ip]:[field3]>\n      Expires: [field4]",
        "Contact: <sip:[field0]@[local_ip]:[field3]>;expires=[field4]").replace(
        "Contact: <sip:[field0]@[local_ip]:[field3]>\n      [authentication]\n      Expires: [field4]",
        "Contact: <sip:[field0]@[local_ip]:[field3]>;expires=[field4]\n      [authentication]"))
    assert "Expires: [field4]" not in scenario.read_text()
    inf = tmp_path / "unregister.csv"
    inf.write_text(f"SEQUENTIAL\n1001;-;{phone.domain};{phone.port};0\n")
    done = subprocess.run(
        ["sipp", phones.target, "-sf", str(scenario), "-inf", str(inf), "-i", phone.ip, "-p", "0", "-au", "1001",
         "-ap", phone.password, "-m", "1", "-timeout", "10", "-timeout_error", "-nostdin"],
        capture_output=True, timeout=20, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-1000:]
    _wait_for(log_file, "agent sip:1001@demo.zhida.local: not registered (registrar)")


def test_a_recogniser_that_is_gone_sends_the_call_to_the_fallback_group_at_once(
    phones: Agents, recognizer_killed: Config, repair_wav: Path, tmp_path: Path
) -> None:
    operator = phones.start("1091")
    caller_pcap(repair_wav, tmp_path / "caller.pcap", lead_silence_s=0.2, tail_silence_s=3.0)
    # The demo caller waits 300 ms after the 183 before it speaks, and would take the operator's 180 arriving
    # within that wait for an unexpected message: this caller speaks at once.
    scenario = caller_scenario(tmp_path / "caller.pcap", tmp_path / "caller.xml")
    scenario.write_text(scenario.read_text().replace('<pause milliseconds="300"/>', ""))
    result = run_caller(f"{recognizer_killed.sip.address}:{recognizer_killed.sip.port}", scenario, NUMBER,
                        local_ip=TRUNK_IP, work_dir=tmp_path, timeout_s=30)
    assert result.returncode == 0, result.messages[-3000:]
    assert result.call_id in operator.received_calls()
    record = wait_for_record(recognizer_killed, result.call_id)
    assert record["decision"]["kind"] == "fallback", record
    assert record["decision"]["reason"].startswith("controller error"), record
    assert record["outcome"] == "connected", record
    controller_log = (recognizer_killed.log_dir / "controller.log").read_text()
    assert f"call {result.call_id} failed in prompting" in controller_log
    # the controller's fallback, not Kamailio's timer (6 s in these tests), took the call there
    assert "no decision for call" not in (recognizer_killed.log_dir / "kamailio.log").read_text()


def _wait_for(log_file: Path, text: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in log_file.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{text!r} not in {log_file.name} after {timeout_s} s"
        time.sleep(0.05)
