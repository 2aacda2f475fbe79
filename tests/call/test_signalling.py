"""Kamailio's side of the call path, with no controller: trust, registration, fallback, failover, bad input."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest
from zhida.call.prompts import synthesize
from zhida.codecs import netstring
from zhida.config import Config
from zhida.stack.calls import place_call
from zhida.stack.sipp import caller_pcap, caller_scenario, register_agent, run_caller
from zhida.stack.up import kamailio_rpc

from tests.call.conftest import TRUNK_IP, UNTRUSTED_IP, Agents

NUMBER = "4008001234"


@pytest.fixture(scope="module")
def sentence_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize("我家的空调坏了需要上门维修", tmp_path_factory.mktemp("wav") / "sentence.wav")


def registered(config: Config, aor: str) -> bool:
    try:
        kamailio_rpc(config.sip.rpc_port, "ul.lookup", "location", aor.removeprefix("sip:"))
    except RuntimeError:
        return False
    return True


def test_agent_registers_with_digest_auth(agents: Agents, signalling_stack: Config) -> None:
    agents.start("1091")
    assert registered(signalling_stack, "sip:1091@demo.zhida.local")


def test_wrong_password_is_refused_and_not_registered(agents: Agents, signalling_stack: Config) -> None:
    phone = agents.start("1092", register=False)
    rc = register_agent(agents.target, phone, work_dir=agents.work, password="wrong-password")
    assert rc != 0
    assert not registered(signalling_stack, "sip:1092@demo.zhida.local")


def test_without_controller_the_call_reaches_the_fallback_group(
    agents: Agents, signalling_stack: Config, sentence_wav: Path
) -> None:
    operator = agents.start("1091")
    line = place_call(signalling_stack, number=NUMBER, wav=sentence_wav, trunk=TRUNK_IP, lead_silence_s=0.2)
    assert line["sipp_rc"] == 0
    assert line["call_id"] in operator.received_calls()


def test_busy_agent_fails_over_to_the_next_agent_of_the_group(
    agents: Agents, signalling_stack: Config, sentence_wav: Path
) -> None:
    busy = agents.start("1091", behaviour="busy")
    free = agents.start("1092")
    line = place_call(signalling_stack, number=NUMBER, wav=sentence_wav, trunk=TRUNK_IP, lead_silence_s=0.2)
    assert line["sipp_rc"] == 0
    assert line["call_id"] in busy.received_calls()
    assert line["call_id"] in free.received_calls()


def test_agent_that_does_not_answer_is_skipped_after_the_ring_timeout(
    agents: Agents, signalling_stack: Config, sentence_wav: Path
) -> None:
    silent = agents.start("1091", behaviour="no_answer")
    free = agents.start("1092")
    line = place_call(signalling_stack, number=NUMBER, wav=sentence_wav, trunk=TRUNK_IP, lead_silence_s=0.2)
    assert line["sipp_rc"] == 0
    assert line["call_id"] in silent.received_calls()
    assert line["call_id"] in free.received_calls()


def test_no_agent_registered_gets_480(
    agents: Agents, signalling_stack: Config, sentence_wav: Path, tmp_path: Path
) -> None:
    caller_pcap(sentence_wav, tmp_path / "caller.pcap", lead_silence_s=0.2, tail_silence_s=2.0)
    scenario = caller_scenario(tmp_path / "caller.pcap", tmp_path / "caller.xml")
    result = run_caller(f"{signalling_stack.sip.address}:{signalling_stack.sip.port}", scenario, NUMBER,
                        local_ip=TRUNK_IP, work_dir=tmp_path, timeout_s=30)
    # the caller's only final response (retransmissions included) is Kamailio's 480: not a timeout, not an error
    finals = re.findall(r"^SIP/2\.0 ([2-6]\d\d) ", result.messages, re.MULTILINE)
    assert finals and set(finals) == {"480"}, result.messages[-3000:]
    log = (signalling_stack.log_dir / "kamailio.log").read_text(errors="replace")
    assert any(result.call_id in line and "no agent left for the call" in line for line in log.splitlines())


def test_invite_from_an_untrusted_address_is_refused(
    agents: Agents, signalling_stack: Config, sentence_wav: Path
) -> None:
    operator = agents.start("1091")
    line = place_call(signalling_stack, number=NUMBER, wav=sentence_wav, trunk=UNTRUSTED_IP, lead_silence_s=0.2)
    assert line["sipp_rc"] != 0
    assert line["call_id"] not in operator.received_calls()
    assert "INVITE from untrusted 127.0.0.4" in (signalling_stack.log_dir / "kamailio.log").read_text()


def test_malformed_sip_is_logged_and_kamailio_stays_up(agents: Agents, signalling_stack: Config) -> None:
    garbage = (
        b"INVITE sip:4008001234@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5999;branch=z9hG4bKx\r\n"
        b"From: <sip:a@b\r\nTo: broken\r\nCall-ID: \r\nCSeq: x INVITE\r\n\r\n"
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((TRUNK_IP, 0))
        for payload in (garbage, b"\x00\x01\x02 not sip at all", b"SIP/2.0 200 OK\r\n\r\n"):
            sock.sendto(payload, (signalling_stack.sip.address, signalling_stack.sip.port))
    time.sleep(0.5)
    agents.start("1091")  # the proxy still serves requests
    assert registered(signalling_stack, "sip:1091@demo.zhida.local")


def test_malformed_evapi_message_is_logged_and_the_link_survives(
    agents: Agents, signalling_stack: Config, sentence_wav: Path
) -> None:
    with socket.create_connection(("127.0.0.1", signalling_stack.sip.evapi_port), timeout=5) as link:
        link.sendall(netstring.encode(b"{this is not json"))
        link.sendall(netstring.encode(b'{"action":"route","agents":[]}'))
        time.sleep(0.5)
    time.sleep(0.5)
    log = (signalling_stack.log_dir / "kamailio.log").read_text(errors="replace")
    assert "malformed evapi message" in log
    assert "evapi message without call_id" in log
    operator = agents.start("1091")
    line = place_call(signalling_stack, number=NUMBER, wav=sentence_wav, trunk=TRUNK_IP, lead_silence_s=0.2)
    assert line["call_id"] in operator.received_calls()


def test_operators_rpc_command_reads_registrations(agents: Agents, signalling_stack: Config) -> None:
    import json
    import subprocess
    import sys

    agents.start("1091")
    done = subprocess.run(
        [sys.executable, "-m", "zhida.cli", "rpc", "--config", str(signalling_stack.run_dir / "zhida.yaml"),
         "ul.dump"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "1091@demo.zhida.local" in json.dumps(json.loads(done.stdout))
    bad = subprocess.run(
        [sys.executable, "-m", "zhida.cli", "rpc", "--config", str(signalling_stack.run_dir / "zhida.yaml"),
         "no.such.command"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "no.such.command" in bad.stderr


def test_answered_mode_trunk_without_controller_reaches_the_fallback_group(
    agents: Agents, signalling_stack: Config, sentence_wav: Path
) -> None:
    operator = agents.start("1091")
    line = place_call(signalling_stack, number=NUMBER, wav=sentence_wav, trunk="127.0.0.5", lead_silence_s=0.2)
    assert line["sipp_rc"] == 0, line
    assert line["call_id"] in operator.received_calls()
    assert "answered-mode trunk call to 4008001234 with no controller" in (
        signalling_stack.log_dir / "kamailio.log").read_text()
