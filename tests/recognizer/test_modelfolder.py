"""A missing or corrupt model folder fails at start with a message that says what to do."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from zhida.recognizer.decoder import DecodeConfig
from zhida.recognizer.engine import EngineConfig, Recognizer
from zhida.recognizer.modelfolder import CorruptModelError, ModelFolder, ModelNotFoundError

from .conftest import MODEL_DIR


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "zhida-test-conformer"
    shutil.copytree(MODEL_DIR, dest)
    return dest


def test_committed_model_layout() -> None:
    folder = ModelFolder.load(MODEL_DIR)
    assert folder.vocab[0] == "<blank>" and folder.vocab[-1] == "<eos>"
    assert folder.fbank.fs == 16000 and folder.fbank.n_mels == 80
    assert folder.cmvn is not None
    assert folder.checkpoint.suffix == ".pdparams"
    size = sum(p.stat().st_size for p in MODEL_DIR.rglob("*") if p.is_file())
    assert size < 15 * 1024 * 1024


def test_missing_folder_names_the_pull_command(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="zhida models pull conformer_u2pp_online_wenetspeech"):
        Recognizer.load(tmp_path / "conformer_u2pp_online_wenetspeech")


def test_folder_without_model_yaml_is_missing(model_copy: Path) -> None:
    (model_copy / "model.yaml").unlink()
    with pytest.raises(ModelNotFoundError, match="zhida models pull"):
        ModelFolder.load(model_copy)


def test_bad_yaml(model_copy: Path) -> None:
    (model_copy / "model.yaml").write_text("encoder_conf: [unclosed\n")
    with pytest.raises(CorruptModelError, match="not valid YAML"):
        ModelFolder.load(model_copy)


def test_missing_vocabulary(model_copy: Path) -> None:
    (model_copy / "data" / "lang_char" / "vocab.txt").unlink()
    with pytest.raises(CorruptModelError, match="vocabulary"):
        ModelFolder.load(model_copy)


def test_missing_checkpoint(model_copy: Path) -> None:
    for ckpt in model_copy.rglob("*.pdparams"):
        ckpt.unlink()
    with pytest.raises(CorruptModelError, match="no checkpoint"):
        ModelFolder.load(model_copy)


def test_truncated_checkpoint_fails_when_loading(model_copy: Path) -> None:
    ckpt = next(model_copy.rglob("*.pdparams"))
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(CorruptModelError, match="unreadable checkpoint"):
        Recognizer.load(model_copy)


def test_checkpoint_that_does_not_match_the_config(model_copy: Path) -> None:
    yaml_file = model_copy / "model.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("num_blocks: 4", "num_blocks: 5"))
    with pytest.raises(CorruptModelError, match=r"does not match model\.yaml"):
        Recognizer.load(model_copy)


def test_a_hot_word_bonus_alone_keeps_the_models_rescoring_weights(model_copy: Path) -> None:
    yaml_file = model_copy / "model.yaml"
    text = yaml_file.read_text()
    decode = text.index("\ndecode:")
    yaml_file.write_text(text[:decode] + text[decode:].replace("ctc_weight: 0.5", "ctc_weight: 0.4")
                         .replace("reverse_weight: 0.3", "reverse_weight: 0.2"))
    plain = Recognizer.load(model_copy).decode_config
    biased = Recognizer.load(model_copy, EngineConfig(decode=DecodeConfig(hot_word_bonus=3.0))).decode_config
    assert (plain.ctc_weight, plain.reverse_weight) == (0.4, 0.2)
    assert (biased.ctc_weight, biased.reverse_weight, biased.hot_word_bonus) == (0.4, 0.2, 3.0)
    own = Recognizer.load(model_copy, EngineConfig(decode=DecodeConfig(ctc_weight=0.7))).decode_config
    assert own.ctc_weight == 0.7  # a caller's own rescoring settings win over the model's
