"""The caller's way out and the agent's head start, through real Kamailio, rtpengine, the services and sipp.

One stack for the module, with a demo tenant file of short prompts and timeouts, caller rules (a VIP number, a
blocked one), the human key 0 and a DTMF menu as the fallback. Keys come as RFC 4733 telephone-events or as
in-band tones in the caller's G.711 audio; the agents' phones log the X-Zhida-* headers of the INVITE they get.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import grpc
import numpy as np
import pytest
from zhida.call.prompts import synthesize
from zhida.codecs import g711
from zhida.codecs.pcap import write_packets_pcap
from zhida.config import Config
from zhida.media.dtmf import key_tone
from zhida.stack.calls import wait_for_record
from zhida.stack.sipp import SCENARIOS, AgentPhone, free_udp_port, read_wav_8k, register_agent, run_caller
from zhida.stack.up import ng_request
from zhida.v1 import routing_pb2, routing_pb2_grpc

from tests.call.conftest import AGENT_IP, TRUNK_IP, Agents, stack_for_test
from tests.call.test_answered import PSTN_IP, PstnMedia, pstn_call
from tests.dtmf.dtmfkit import audio_packets, event_packets, silence

NUMBER = "4008001234"
DOMAIN = "demo.zhida.local"
CALLER = "13800138000"  # no caller rule: listened to
VIP = "13900139000"
BLOCKED = "13700137000"
HEAD_START = ("Transcript", "Route", "Confidence", "Call-Record", "Path", "Digits")
DEMO_TENANT = Path(__file__).resolve().parents[2] / "control" / "zhida" / "demo" / "routing" / "demo.yaml"

TENANT_EXTRA = f"""
callers:
  - name: vip
    numbers: ["{VIP}"]
    group: complaint
  - name: blocked
    action: refuse
    numbers: ["{BLOCKED}"]
gather:
  prompt: 请用一句话说出您的问题
  reprompt: 请再说一遍
  no_input_timeout_ms: 2500
  end_silence_ms: 500
  dtmf_timeout_ms: 1500
human:
  group: operator
  key: "0"
"""


def tenant_yaml(*, barge_in: bool = True) -> str:
    text = DEMO_TENANT.read_text(encoding="utf-8").replace("  then: group ", "  then: dtmf  ")
    assert "then: dtmf" in text
    extra = TENANT_EXTRA if barge_in else TENANT_EXTRA.replace("gather:\n", "gather:\n  barge_in: false\n")
    return text + extra


@pytest.fixture(scope="module")
def keys_stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Config]:
    run_dir = tmp_path_factory.mktemp("keys") / "run"
    tenants = run_dir / "data" / "tenants"
    tenants.mkdir(parents=True)
    (tenants / "demo.yaml").write_text(tenant_yaml(), encoding="utf-8")
    yield from stack_for_test(request, run_dir)


@pytest.fixture
def book(keys_stack: Config, tmp_path: Path) -> Iterator[Agents]:
    agents = Agents(keys_stack, tmp_path)
    yield agents
    agents.stop()


def header_phone(book: Agents, username: str) -> AgentPhone:
    """An agent's phone that answers and logs the head-start headers of each INVITE it gets."""
    logs = "".join(
        f'<ereg regexp="[A-Za-z0-9%._~-]+" search_in="hdr" header="X-Zhida-{name}:" assign_to="h{i}"/>'
        f'<log message="X-Zhida-{name}=[$h{i}]"/>' for i, name in enumerate(HEAD_START))
    scenario = book.work / f"agent-{username}.xml"
    scenario.write_text((SCENARIOS / "agent_answer.xml").read_text().replace(
        '<log message="INVITE [call_id]"/>', '<log message="INVITE [call_id]"/>' + logs))
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


def head_start(phone: AgentPhone) -> dict[str, str]:
    """The head-start headers of the last INVITE the phone got, decoded."""
    found: dict[str, str] = {}
    for line in phone.log_file.read_text(errors="replace").splitlines():
        for name in HEAD_START:
            prefix = f"X-Zhida-{name}="
            if prefix in line:
                found[name] = unquote(line.split(prefix, 1)[1].strip())
    return {name: value for name, value in found.items() if value}


def caller_pcap(path: Path, pcm: np.ndarray, keys: list[tuple[float, str]]) -> Path:
    """The caller's RTP: `pcm` as 20 ms PCMU packets, and RFC 4733 presses (seconds into the call, key)."""
    packets = [(i * 0.02, packet) for i, packet in enumerate(audio_packets(pcm))]
    for n, (at, digit) in enumerate(keys):
        press = event_packets(digit, timestamp=int(at * 8000), seq=10000 + 20 * n)
        packets += [(at + 0.02 * min(i, 4), packet) for i, packet in enumerate(press)]
    write_packets_pcap(path, packets)
    return path


def call(config: Config, work: Path, pcap: Path, *, caller: str = CALLER) -> tuple[int, str]:
    """One early-mode call from the trunk with this caller number; sipp's exit code and the Call-ID."""
    scenario = work / "caller.xml"
    text = (SCENARIOS / "caller.xml").read_text().replace("@PCAP@", str(pcap)).replace("13800138000", caller)
    # sipp aborts on a 180 that comes during a pause, and a caller rule rings the agent within milliseconds
    scenario.write_text(text.replace('<pause milliseconds="300"/>', ""))
    result = run_caller(f"{config.sip.address}:{config.sip.port}", scenario, NUMBER, local_ip=TRUNK_IP,
                        work_dir=work, timeout_s=40)
    return result.returncode, result.call_id


def record(config: Config, call_id: str) -> dict[str, Any]:
    found = wait_for_record(config, call_id, timeout_s=10)
    assert found, f"no record of {call_id}"
    return found


def test_rfc4733_zero_during_the_prompt_stops_it_and_rings_the_operator_with_the_head_start(
        keys_stack: Config, book: Agents, tmp_path: Path) -> None:
    operator = header_phone(book, "1091")
    book.start("1092", register=False)
    pcap = caller_pcap(tmp_path / "zero.pcap", silence(6000), [(0.2, "0")])
    rc, call_id = call(keys_stack, tmp_path, pcap)
    assert rc == 0
    found = record(keys_stack, call_id)
    assert found["group"] == "operator", found
    assert (found["path"], found["digits"]) == ("key", "0"), found
    assert found["decision"]["human"] is True
    # barge-in: the key cut the prompt short
    assert 0 < found["timings"]["prompt_cut_ms"] < found["timings"]["prompt_s"] * 1000, found["timings"]
    assert call_id in operator.received_calls()
    headers = head_start(operator)
    assert headers.get("Path") == "key" and headers.get("Digits") == "0", headers
    assert headers.get("Call-Record") == call_id, headers


def test_an_inband_zero_rings_the_operator(keys_stack: Config, book: Agents, tmp_path: Path) -> None:
    operator = header_phone(book, "1091")
    pcm = np.concatenate([silence(200), key_tone("0", 100, level_dbm0=-10), silence(6000)])
    rc, call_id = call(keys_stack, tmp_path, caller_pcap(tmp_path / "tone.pcap", pcm, []))
    assert rc == 0
    found = record(keys_stack, call_id)
    assert (found["group"], found["path"], found["digits"]) == ("operator", "key", "0"), found
    assert call_id in operator.received_calls()


def test_a_key_on_the_dtmf_menu_routes_to_its_group(keys_stack: Config, book: Agents, tmp_path: Path) -> None:
    delivery = header_phone(book, "1011")
    # silence through the prompt and the re-prompt, then "2" every second: the first one the menu hears chooses
    presses = [(at, "2") for at in np.arange(4.0, 24.0, 1.0)]
    rc, call_id = call(keys_stack, tmp_path, caller_pcap(tmp_path / "menu.pcap", silence(26000), presses))
    assert rc == 0
    found = record(keys_stack, call_id)
    assert (found["group"], found["path"]) == ("delivery", "menu"), found
    assert found["decision"]["route"] == "delivery"
    assert call_id in delivery.received_calls()
    assert head_start(delivery).get("Path") == "menu"


def test_no_key_on_the_menu_goes_to_the_fallback_group(keys_stack: Config, book: Agents, tmp_path: Path) -> None:
    operator = header_phone(book, "1091")
    rc, call_id = call(keys_stack, tmp_path, caller_pcap(tmp_path / "silent.pcap", silence(30000), []))
    assert rc == 0
    found = record(keys_stack, call_id)
    assert (found["group"], found["path"], found["digits"]) == ("operator", "fallback", ""), found
    assert found["decision"]["basis"] == "menu_timeout", found
    assert call_id in operator.received_calls()


def test_a_vip_caller_skips_the_prompt(keys_stack: Config, book: Agents, tmp_path: Path) -> None:
    complaint = header_phone(book, "1031")
    rc, call_id = call(keys_stack, tmp_path, caller_pcap(tmp_path / "vip.pcap", silence(4000), []), caller=VIP)
    assert rc == 0
    found = record(keys_stack, call_id)
    assert (found["group"], found["path"], found["caller_rule"]) == ("complaint", "caller", "vip"), found
    assert "prompt_s" not in found["timings"], "a prompt played"
    assert head_start(complaint).get("Path") == "caller"


REFUSED_CALLER = """<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="refused caller">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:@CALLER@@[local_ip]:[local_port]>;tag=[pid]caller[call_number]
      To: <sip:[field0]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:@CALLER@@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=carrier 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="403"/>
  <send>
    <![CDATA[
      ACK sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: <sip:@CALLER@@[local_ip]:[local_port]>;tag=[pid]caller[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""


def test_a_blocked_caller_is_refused_and_leaves_no_session(keys_stack: Config, tmp_path: Path) -> None:
    scenario = tmp_path / "refused.xml"
    scenario.write_text(REFUSED_CALLER.replace("@CALLER@", BLOCKED))
    result = run_caller(f"{keys_stack.sip.address}:{keys_stack.sip.port}", scenario, NUMBER, local_ip=TRUNK_IP,
                        work_dir=tmp_path, timeout_s=15)
    assert result.returncode == 0, result.stderr
    found = record(keys_stack, result.call_id)
    assert (found["outcome"], found["caller_rule"], found["path"]) == ("refused", "blocked", "caller"), found
    assert result.call_id not in ng_request(keys_stack, "list", limit="100").get("calls", [])


def test_answered_mode_inband_zero_bridges_the_operator_with_the_head_start(
        keys_stack: Config, book: Agents, tmp_path: Path) -> None:
    operator = header_phone(book, "1091")
    tone = np.concatenate([key_tone("0", 100, level_dbm0=-10), silence(100)])
    tone = np.concatenate([tone, np.zeros((-len(tone)) % 160, dtype=np.int16)])
    frames = [g711.ulaw_encode(tone[i:i + 160]) for i in range(0, len(tone), 160)]
    media = PstnMedia(PSTN_IP, frames)
    try:
        rc, call_id, trace = pstn_call(keys_stack, tmp_path, media, hangup_after_ms=9000)
    finally:
        media.stop()
    assert rc == 0, trace[-1500:]
    found = record(keys_stack, call_id)
    assert (found["group"], found["path"], found["digits"]) == ("operator", "key", "0"), found
    headers = head_start(operator)
    assert headers.get("Path") == "key" and headers.get("Call-Record") == call_id, headers


def test_barge_in_off_the_prompt_plays_to_its_end_while_the_caller_speaks(
        keys_stack: Config, book: Agents, tmp_path: Path) -> None:
    for username in ("1001", "1011", "1021", "1031", "1091"):
        book.start(username)
    sentence = read_wav_8k(synthesize("我家的空调坏了需要上门维修", tmp_path / "repair.wav"))
    pcm = np.concatenate([silence(100), sentence, silence(20000)])
    routing = routing_pb2_grpc.RoutingServiceStub(grpc.insecure_channel(keys_stack.routing.listen))
    routing.ReloadRules(routing_pb2.ReloadRulesRequest(tenant="demo", config_yaml=tenant_yaml(barge_in=False)),
                        timeout=30)
    try:
        rc, call_id = call(keys_stack, tmp_path, caller_pcap(tmp_path / "speak.pcap", pcm, []))
    finally:
        routing.ReloadRules(routing_pb2.ReloadRulesRequest(tenant="demo", config_yaml=tenant_yaml()), timeout=30)
    assert rc == 0
    found = record(keys_stack, call_id)
    assert found["timings"]["prompt_s"] > 0.3
    assert "prompt_cut_ms" not in found["timings"], found["timings"]
    # with barge-in the same call cuts the prompt: the caller starts speaking 0.4 s into it
    time.sleep(0.5)
    rc, call_id = call(keys_stack, tmp_path, caller_pcap(tmp_path / "speak.pcap", pcm, []))
    assert rc == 0
    timings = record(keys_stack, call_id)["timings"]
    assert timings.get("prompt_cut_ms", 1e9) < timings["prompt_s"] * 1000, json.dumps(timings)


def test_answered_mode_a_blocked_caller_hears_the_announcement_then_is_hung_up(
        keys_stack: Config, tmp_path: Path) -> None:
    scenario = tmp_path / "pstn_blocked.xml"
    scenario.write_text((SCENARIOS / "pstn_caller.xml").read_text().replace("@HANGUP_AFTER_MS@", "15000")
                        .replace("13800138000", BLOCKED))
    media = PstnMedia(PSTN_IP, [])
    inf = tmp_path / "pstn.csv"
    inf.write_text(f"SEQUENTIAL\n{NUMBER};{PSTN_IP};{media.port}\n")
    messages = tmp_path / "pstn-messages.log"
    started = time.monotonic()
    try:
        done = subprocess.run(
            ["sipp", f"{keys_stack.sip.address}:{keys_stack.sip.port}", "-sf", str(scenario), "-inf", str(inf),
             "-i", PSTN_IP, "-p", "0", "-m", "1", "-timeout", "30", "-timeout_error", "-trace_msg",
             "-message_file", str(messages), "-nostdin"],
            capture_output=True, text=True, timeout=45, cwd=tmp_path)
    finally:
        media.stop()
    took_s = time.monotonic() - started
    trace = messages.read_text(errors="replace")
    assert done.returncode == 0, trace[-1500:]
    assert "BYE sip:" in trace and took_s < 14, "the platform did not hang up after the announcement"
    call_id = trace.split("Call-ID:", 1)[1].split()[0]
    found = record(keys_stack, call_id)
    assert (found["outcome"], found["caller_rule"], found["path"]) == ("refused", "blocked", "caller"), found
    assert len(media.received) > 25, "no announcement heard"  # at least half a second of it
    assert call_id not in ng_request(keys_stack, "list", limit="100").get("calls", [])
