"""`zhida models pull` against a local HTTP server serving a tarball built here."""

from __future__ import annotations

import hashlib
import http.server
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from zhida.cli import main
from zhida.recognizer.models import CATALOG, PullError, pull

from .conftest import MODEL_DIR


def make_model_archive(tmp: Path, top_dir: str | None) -> Path:
    """A small model folder in PaddleSpeech's layout (the weights are a stand-in: pull does not load them)."""
    src = tmp / "src"
    (src / "data" / "lang_char").mkdir(parents=True)
    (src / "exp" / "chunk_conformer_u2pp" / "checkpoints").mkdir(parents=True)
    (src / "model.yaml").write_text((MODEL_DIR / "model.yaml").read_text("utf-8"), "utf-8")
    for rel in ("data/mean_std.json", "data/lang_char/vocab.txt"):
        (src / rel).write_bytes((MODEL_DIR / rel).read_bytes())
    (src / "exp" / "chunk_conformer_u2pp" / "checkpoints" / "avg_10.pdparams").write_bytes(b"\0" * 4096)
    archive = tmp / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(src.rglob("*")):
            rel = path.relative_to(src)
            tar.add(path, arcname=str(Path(top_dir) / rel) if top_dir else str(rel), recursive=False)
    return archive


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("top_dir", [None, "asr1_chunk_conformer_u2pp_wenetspeech_ckpt_1.3.0.model"])
def test_pull_verifies_and_unpacks(tmp_path: Path, http_root, top_dir, capsys) -> None:
    root, base = http_root
    archive = make_model_archive(tmp_path, top_dir)
    (root / "m.tar.gz").write_bytes(archive.read_bytes())
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    models = tmp_path / "models"
    rc = main(
        [
            "models",
            "pull",
            "conformer_u2pp_online_wenetspeech",
            "--dir",
            str(models),
            "--url",
            f"{base}/m.tar.gz",
            "--md5",
            md5,
            "--no-progress",
        ]
    )
    assert rc == 0
    target = models / "conformer_u2pp_online_wenetspeech"
    assert capsys.readouterr().out.strip() == str(target)
    assert (target / "model.yaml").is_file()
    assert (target / "exp" / "chunk_conformer_u2pp" / "checkpoints" / "avg_10.pdparams").is_file()
    assert [p.name for p in models.iterdir()] == ["conformer_u2pp_online_wenetspeech"]  # no leftovers


def test_checksum_mismatch_leaves_nothing(tmp_path: Path, http_root) -> None:
    root, base = http_root
    archive = make_model_archive(tmp_path, None)
    (root / "m.tar.gz").write_bytes(archive.read_bytes())
    models = tmp_path / "models"
    with pytest.raises(PullError, match="checksum mismatch"):
        pull("conformer_online_wenetspeech", models, url=f"{base}/m.tar.gz", md5="0" * 32, progress=False)
    assert list(models.iterdir()) == []


def test_http_error_and_unknown_model(tmp_path: Path, http_root, capsys) -> None:
    _, base = http_root
    with pytest.raises(PullError, match=r"download of .* failed"):
        pull("x", tmp_path, url=f"{base}/missing.tar.gz", md5="0" * 32, progress=False)
    assert main(["models", "pull", "no_such_model", "--dir", str(tmp_path)]) == 1
    assert "known models: conformer_online_wenetspeech, conformer_u2pp_online_wenetspeech" in (
        capsys.readouterr().err
    )


def test_catalog_points_at_paddlespeech_releases() -> None:
    for source in CATALOG.values():
        assert source.url.startswith("https://paddlespeech.cdn.bcebos.com/s2t/wenetspeech/asr1/")
        assert len(source.md5) == 32
