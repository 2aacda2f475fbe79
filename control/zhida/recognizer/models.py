"""`zhida models pull NAME`: fetch a production model, verify it, unpack it where the server looks.

The catalogue holds PaddleSpeech's own release archives (URLs and md5 sums as published in PaddleSpeech
1.5.0's `paddlespeech/resource/pretrained_models.py`).  This is the only place zhida ever downloads a model;
recognition never does.  `--url`/`--md5` point at a mirror (a company proxy, an offline copy).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from zhida.recognizer.modelfolder import ModelFolder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    name: str
    url: str
    md5: str
    description: str = ""


CATALOG: dict[str, ModelSource] = {
    "conformer_u2pp_online_wenetspeech": ModelSource(
        "conformer_u2pp_online_wenetspeech",
        "https://paddlespeech.cdn.bcebos.com/s2t/wenetspeech/asr1/"
        "asr1_chunk_conformer_u2pp_wenetspeech_ckpt_1.3.0.model.tar.gz",
        "62d230c1bf27731192aa9d3b8deca300",
        "U2++ streaming conformer, WenetSpeech (10k h Mandarin), 16 kHz",
    ),
    "conformer_online_wenetspeech": ModelSource(
        "conformer_online_wenetspeech",
        "https://paddlespeech.cdn.bcebos.com/s2t/wenetspeech/asr1/"
        "asr1_chunk_conformer_wenetspeech_ckpt_1.0.0a.model.tar.gz",
        "b8c02632b04da34aca88459835be54a6",
        "U2 streaming conformer, WenetSpeech, 16 kHz",
    ),
}


class PullError(Exception):
    pass


def _download(url: str, dest: Path, timeout: float, progress: bool) -> str:
    """Stream `url` into `dest`; returns the md5 of what was written."""
    from tqdm import tqdm

    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, dest.open("wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                while True:
                    block = resp.read(1 << 16)
                    if not block:
                        break
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
    except OSError as exc:  # URLError, HTTPError and socket errors are all OSErrors
        raise PullError(f"download of {url} failed: {exc}") from exc
    return digest.hexdigest()


def _extract(archive: Path, into: Path) -> Path:
    """Unpack safely (no absolute paths or `..`); returns the folder that holds model.yaml."""
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise PullError(f"{archive.name}: cannot unpack ({exc})") from exc
    if (into / "model.yaml").is_file():
        return into
    entries = [p for p in into.iterdir()]
    if len(entries) == 1 and (entries[0] / "model.yaml").is_file():
        return entries[0]
    raise PullError(f"{archive.name}: no model.yaml in the archive")


def pull(
    name: str,
    models_dir: Path,
    *,
    url: str | None = None,
    md5: str | None = None,
    force: bool = False,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download, verify and unpack model `name` to `models_dir/name`; returns that folder.

    A folder that is already there and valid is kept unless `force`.  Nothing is left half-written: the
    archive is verified before it is unpacked next to the target, and the target is replaced by a rename.
    """
    source = CATALOG.get(name)
    if source is None and url is None:
        known = ", ".join(sorted(CATALOG))
        raise PullError(f"unknown model {name!r}; known models: {known} (or give --url and --md5)")
    url = url or source.url  # type: ignore[union-attr]
    md5 = (md5 or (source.md5 if source else "")).lower()
    if not md5:
        raise PullError("a checksum is required: give --md5 with --url")
    models_dir = Path(models_dir).expanduser()
    target = models_dir / name
    if target.exists() and not force:
        try:
            ModelFolder.load(target)
        except Exception:
            log.warning("%s exists but is not a usable model folder; replacing it", target)
        else:
            log.info("%s is already there (use --force to fetch it again)", target)
            return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=models_dir) as tmp:
        tmp_path = Path(tmp)
        archive = tmp_path / Path(url.split("?")[0]).name
        if not archive.name:
            archive = tmp_path / f"{name}.tar.gz"
        log.info("fetching %s from %s", name, url)
        got = _download(url, archive, timeout, progress)
        if got != md5:
            raise PullError(f"checksum mismatch for {url}: md5 {got}, expected {md5}")
        root = _extract(archive, tmp_path / "unpacked")
        ModelFolder.load(root)  # the layout must be usable before it replaces anything
        archive.unlink()
        if target.exists():
            shutil.rmtree(target)
        root.rename(target)
    log.info("model %s ready in %s", name, target)
    return target
