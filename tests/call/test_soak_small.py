"""The small version of `bench.soak`: a few hundred calls cancelled during the prompt leave nothing behind."""

from __future__ import annotations

from pathlib import Path

from zhida.call.prompts import synthesize
from zhida.config import Config

from bench.soak import cancelled_calls, settle
from tests.call.conftest import Agents

CALLS = 200
RATE = 20.0
# Bounds for what the controller may keep after the calls are gone: caches warmed by the first calls, gRPC's and
# the event loop's buffers; a per-call leak of a file or a few hundred kilobytes exceeds them.
OPEN_FILES_GROWTH = 10
RSS_GROWTH_MB = 30.0


def test_cancelled_calls_leave_no_session_dialog_call_or_file(full_stack: Config, phones: Agents,
                                                              tmp_path: Path) -> None:
    phones.start("1001")
    wav = synthesize("我家的空调坏了需要上门维修", tmp_path / "caller.wav")
    cancelled_calls(full_stack, wav, tmp_path, 20, 10.0)  # the first calls load and cache what calls need
    before = settle(full_stack)
    run = cancelled_calls(full_stack, wav, tmp_path, CALLS, RATE)
    assert run["successful"] == CALLS, run
    after = settle(full_stack)
    assert after["rtpengine_sessions"] == 0, after
    assert after["dialogs_active"] == 0, after
    assert after["controller_calls_active"] == 0, after
    assert after["controller_open_files"] - before["controller_open_files"] <= OPEN_FILES_GROWTH, (before, after)
    assert after["controller_rss_mb"] - before["controller_rss_mb"] <= RSS_GROWTH_MB, (before, after)
