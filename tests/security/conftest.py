"""One SIP edge (rtpengine and Kamailio, no controller) shared by a module's tests; each test sends from its own
loopback source so that one test's ban or flood does not leak into the next."""

from __future__ import annotations

import math
import shutil
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from zhida.config import Config
from zhida.stack import up as stack

from tests.call.conftest import _dump_logs, start_stack
from tests.crm.fixtures import (  # noqa: F401 (pytest finds fixtures by name; the AdminService bounds tests)
    crm_api,
    crm_channel,
    crm_directory,
    crm_tokens,
    start_crm_api,
)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Config]:
    if shutil.which("kamailio") is None or shutil.which("sipp") is None:
        pytest.fail("kamailio and sipp must be installed (make env)")
    failed_before = request.session.testsfailed
    config = start_stack(tmp_path_factory.mktemp("edge") / "run", services=("rtpengine", "kamailio"))
    try:
        yield config
    finally:
        if request.session.testsfailed > failed_before:
            _dump_logs(config)
        stack.down(config)


def sip_target(config: Config) -> tuple[str, int]:
    return (config.sip.address, config.sip.port)


def media_sessions(config: Config) -> list[str]:
    """Call-IDs of every session rtpengine holds."""
    return list(stack.ng_request(config, "list", limit="1000").get("calls", []))


def kamailio_log(config: Config) -> str:
    return (config.log_dir / "kamailio.log").read_text(errors="replace")


def tone_wav(path: Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    """A plain tone for a caller to play: these tests route without recognition."""
    frames = b"".join(int(8000 * math.sin(2 * math.pi * 440 * i / rate)).to_bytes(2, "little", signed=True)
                      for i in range(int(seconds * rate)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path
