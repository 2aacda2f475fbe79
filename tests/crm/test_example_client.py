"""The example CRM client in docs/examples works against the real API."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import zhida

from tests.crm.crmkit import scripted_call

pytestmark = pytest.mark.timeout(60)

CLIENT = Path(__file__).resolve().parents[2] / "docs" / "examples" / "crm_client.py"


async def run_client(port: int, token: str, *args: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(zhida.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(CLIENT),
        "--server",
        f"127.0.0.1:{port}",
        # one argument: a random token may begin with "-", which argparse would take for an option
        f"--token={token}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def test_screen_pop_history_and_feedback(crm_api, crm_tokens):
    events = scripted_call("example-1", "acme")
    watcher = await run_client(crm_api.port, crm_tokens.acme, "watch", "--max-events", str(len(events) - 1))
    first = await asyncio.wait_for(watcher.stdout.readline(), 20)
    assert first.decode().strip() == "watching calls"
    for event in events:
        crm_api.bus.publish(event)
    out, err = await asyncio.wait_for(watcher.communicate(), 20)
    text = out.decode()
    assert watcher.returncode == 0, err.decode()
    assert "SCREEN POP  caller 13800138000" in text
    assert "said:     我家的空调坏了" in text and "group repair" in text and "空调(+2.0)" in text
    assert "ringing sip:alice@acme.example" in text and "ended: connected" in text

    assert await asyncio.to_thread(crm_api.recorder.flush, 5)
    feedback = await run_client(crm_api.port, crm_tokens.acme, "feedback", "example-1", "--wrong", "billing")
    out, err = await asyncio.wait_for(feedback.communicate(), 20)
    assert feedback.returncode == 0 and out.decode().strip() == "feedback recorded", err.decode()
    assert await asyncio.to_thread(crm_api.recorder.flush, 5)

    history = await run_client(crm_api.port, crm_tokens.acme, "calls", "--hours", "1")
    out, err = await asyncio.wait_for(history.communicate(), 20)
    assert history.returncode == 0, err.decode()
    assert "example-1" in out.decode() and "wrong->billing" in out.decode()

    denied = await run_client(crm_api.port, "not-a-token", "calls")
    _, err = await asyncio.wait_for(denied.communicate(), 20)
    assert denied.returncode == 1 and err.decode().startswith("UNAUTHENTICATED")
