"""A dependency that fails in the middle of a call: the caller still reaches a person, and the stack recovers.

Each test places a real call (sipp trunk -> Kamailio -> rtpengine -> controller -> recogniser -> routing), waits
until the caller is speaking, then really kills (SIGKILL) or freezes (SIGSTOP) one process.  A caller not yet
transferred must reach the fallback group through the controller (not Kamailio's own timer, which only covers a
dead controller); a bridged call must be left alone; once the process is back the next call is routed as usual.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from zhida.call.prompts import synthesize
from zhida.config import Config
from zhida.stack import up as stack
from zhida.stack.calls import place_call, wait_for_record
from zhida.stack.sipp import AgentPhone, SippResult, caller_pcap, caller_scenario, run_caller
from zhida.stack.up import ng_request

from tests.call.conftest import TRUNK_IP, Agents, kill_service

NUMBER = "4008001234"
SENTENCE = "我家的空调坏了需要上门维修"
# The controller's own fallback is prompt; Kamailio's timer is 6 s in these stacks. The bound leaves room for a
# loaded 2-core box without letting the timer pass for the controller.
FALLBACK_WITHIN_S = 3.0


@pytest.fixture(scope="module")
def sentence_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(SENTENCE, tmp_path_factory.mktemp("wav") / "repair.wav")


def _speech_seconds(wav: Path) -> float:
    with wave.open(str(wav)) as w:
        return w.getnframes() / w.getframerate()


def _pid(config: Config, name: str) -> int:
    return int((config.run_dir / "pids" / f"{name}.pid").read_text())


def _controller_log(config: Config) -> str:
    return (config.log_dir / "controller.log").read_text(errors="replace")


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.02)
    return time.monotonic()


class BackgroundCall:
    """A trunk call whose caller speaks at once (no pause after the 183, so an early 180 from the fallback
    group is not an unexpected message), run by sipp on a thread."""

    def __init__(self, config: Config, wav: Path, work: Path) -> None:
        caller_pcap(wav, work / "caller.pcap", lead_silence_s=0.2, tail_silence_s=4.0)
        scenario = caller_scenario(work / "caller.pcap", work / "caller.xml")
        scenario.write_text(scenario.read_text().replace('<pause milliseconds="300"/>', ""))
        self.result: SippResult | None = None
        target = f"{config.sip.address}:{config.sip.port}"
        self._thread = threading.Thread(
            target=self._run, args=(target, scenario, work), name="sipp-caller", daemon=True
        )
        self._thread.start()

    def _run(self, target: str, scenario: Path, work: Path) -> None:
        self.result = run_caller(target, scenario, NUMBER, local_ip=TRUNK_IP, work_dir=work, timeout_s=40)

    def join(self) -> SippResult:
        self._thread.join(timeout=70)
        assert self.result is not None, "the caller did not finish"
        return self.result


def _fail_while_speaking(config: Config, phones: Agents, wav: Path, work: Path,
                         fail: Callable[[], None]) -> tuple[SippResult, float, AgentPhone]:
    """Places the call, runs `fail` once the controller hears the caller speak; returns the caller's result,
    the seconds from the failure to the fallback group's INVITE, and the operator's phone."""
    phones.start("1001")
    operator = phones.start("1091")
    log_mark = len(_controller_log(config))
    call = BackgroundCall(config, wav, work)
    _wait(lambda: "-> listening" in _controller_log(config)[log_mark:], 20, "the caller was never heard")
    failed_at = time.monotonic()
    fail()
    reached_at = _wait(lambda: len(operator.received_calls()) > 0, 15, "the fallback group never rang")
    return call.join(), reached_at - failed_at, operator


def _assert_sent_to_fallback_by_the_controller(config: Config, result: SippResult, operator: AgentPhone,
                                               seconds: float, bound_s: float = FALLBACK_WITHIN_S) -> dict:
    assert result.returncode == 0, result.messages[-3000:]
    assert result.call_id in operator.received_calls()
    record = wait_for_record(config, result.call_id)
    assert record["decision"]["kind"] == "fallback", record
    assert record["decision"]["reason"] != "no_input", record
    assert record["outcome"] == "connected", record
    assert "no decision for call" not in (config.log_dir / "kamailio.log").read_text(errors="replace")
    assert seconds < bound_s, f"the fallback group rang {seconds:.2f} s after the failure (bound {bound_s:.1f} s)"
    _wait(lambda: ng_request(config, "list", limit="100").get("calls", []) == [], 10, "media sessions left")
    return record


def _next_call_is_routed(config: Config, wav: Path) -> None:
    line = place_call(config, number=NUMBER, wav=wav, trunk=TRUNK_IP, expected_group="repair", said=SENTENCE)
    assert line["sipp_rc"] == 0, line
    assert line["group"] == "repair", line


def test_routing_killed_while_the_caller_speaks(full_stack: Config, phones: Agents, sentence_wav: Path,
                                                tmp_path: Path) -> None:
    result, seconds, operator = _fail_while_speaking(
        full_stack, phones, sentence_wav, tmp_path, lambda: kill_service(full_stack, "routing"))
    # routing is asked when the caller pauses or finishes: the bound runs from the end of the sentence
    _assert_sent_to_fallback_by_the_controller(full_stack, result, operator, seconds,
                                               _speech_seconds(sentence_wav) + FALLBACK_WITHIN_S)
    stack.start_routing(full_stack)
    _next_call_is_routed(full_stack, sentence_wav)


def test_recognizer_killed_while_the_caller_speaks(full_stack: Config, phones: Agents, sentence_wav: Path,
                                                   tmp_path: Path) -> None:
    result, seconds, operator = _fail_while_speaking(
        full_stack, phones, sentence_wav, tmp_path, lambda: kill_service(full_stack, "recognizer"))
    _assert_sent_to_fallback_by_the_controller(full_stack, result, operator, seconds)
    # a recogniser back and reporting SERVING takes the very next call
    stack.start_recognizer(full_stack)
    _next_call_is_routed(full_stack, sentence_wav)


def test_recognizer_frozen_while_the_caller_speaks(full_stack: Config, phones: Agents, sentence_wav: Path,
                                                   tmp_path: Path) -> None:
    pid = _pid(full_stack, "recognizer")
    try:
        result, seconds, operator = _fail_while_speaking(
            full_stack, phones, sentence_wav, tmp_path, lambda: os.killpg(pid, signal.SIGSTOP))
        _assert_sent_to_fallback_by_the_controller(full_stack, result, operator, seconds)
    finally:
        os.killpg(pid, signal.SIGCONT)


def test_routing_killed_after_the_agent_answered_leaves_the_call_alone(
    full_stack: Config, phones: Agents, sentence_wav: Path, tmp_path: Path
) -> None:
    repair = phones.start("1001")
    phones.start("1091")
    call = BackgroundCall(full_stack, sentence_wav, tmp_path)
    _wait(lambda: len(repair.received_calls()) > 0, 30, "the repair agent never rang")
    kill_service(full_stack, "routing")
    kill_service(full_stack, "recognizer")
    result = call.join()
    assert result.returncode == 0, result.messages[-3000:]
    record = wait_for_record(full_stack, result.call_id)
    assert record["group"] == "repair" and record["outcome"] == "connected", record
    _wait(lambda: ng_request(full_stack, "list", limit="100").get("calls", []) == [], 10, "media sessions left")
