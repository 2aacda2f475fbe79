"""The streaming engine gives the same transcript with `backend: onnx` as with `backend: paddle`."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import pytest
from zhida.recognizer.engine import Recognizer, ResultKind, StreamConfig

# The first test to need the export also builds the export environment (a PyPI download) once.
pytestmark = pytest.mark.timeout(900)

DEMO_SENTENCES = Path(__file__).resolve().parents[2] / "control" / "zhida" / "demo" / "sentences.tsv"


def _sentence() -> str:
    lines = DEMO_SENTENCES.read_text("utf-8").splitlines()[1:]
    return lines[0].split("\t")[0]


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng and sox are needed to synthesise the test sentence")
    from zhida.recognizer.testmodel.build import synthesise

    audio = synthesise(_sentence(), speed=175, pitch=50, seed=3)
    return np.clip(audio, -32768, 32767).astype("<i2")


async def _transcribe(model_dir: Path, backend: str, pcm: np.ndarray) -> tuple[str, list[str]]:
    recognizer = Recognizer.load(model_dir, backend=backend)
    await recognizer.start()
    try:
        stream = recognizer.open_stream(StreamConfig(sample_rate=16000, interim_results=True))
        step = 3200  # 200 ms packets, as a media relay would send them
        for start in range(0, len(pcm), step):
            stream.feed(pcm[start : start + step].tobytes())
            await asyncio.sleep(0.02)  # 10x faster than real time, so the scheduler runs in between
        stream.end_of_audio()
        partials: list[str] = []
        final = None
        async with asyncio.timeout(120):
            async for result in stream.results():
                if result.kind is ResultKind.PARTIAL:
                    partials.append(result.text)
                elif result.kind is ResultKind.FINAL:
                    final = result.text
        stream.close()
        assert final is not None, "the stream ended without a final result"
        return final, partials
    finally:
        await recognizer.stop()


async def test_onnx_transcript_equals_paddle(exported_model: tuple[Path, bool], speech: np.ndarray) -> None:
    folder, trained = exported_model
    paddle_final, _ = await _transcribe(folder, "paddle", speech)
    onnx_final, onnx_partials = await _transcribe(folder, "onnx", speech)
    assert onnx_final == paddle_final
    if trained:
        # The committed test model knows this sentence: the transcript is not empty noise.
        assert onnx_final
        assert onnx_partials, "no interim results before the final"


def test_engine_without_export_names_the_command(exported_model: tuple[Path, bool], tmp_path: Path) -> None:
    from zhida.recognizer.modelfolder import ModelError

    folder = tmp_path / "model"
    shutil.copytree(exported_model[0], folder, ignore=shutil.ignore_patterns("encoder*.onnx*"))
    with pytest.raises(ModelError, match="zhida models export-onnx"):
        Recognizer.load(folder, backend="onnx")
