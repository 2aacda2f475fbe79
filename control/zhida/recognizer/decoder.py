"""Per-stream decoding state: features, encoder caches, CTC search and the final rescoring.

Only the scheduler's worker thread touches a `StreamDecoder`; the asyncio side hands it audio through
`RecognitionStream` (engine.py).  Batching across streams happens in `run_round`: every stream with a full
chunk of features contributes one chunk to a backend call, and its caches are padded to the longest cache
of the call (see the tensor contract in backend.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from zhida.recognizer.backend import ChunkEncoderBackend
from zhida.recognizer.ctc_search import ContextTrie, CtcPrefixSearch, Hypothesis
from zhida.recognizer.features import FbankConfig, GlobalCMVN, StreamingFbank


@dataclass(frozen=True)
class DecodeConfig:
    chunk_size: int = 8  # encoder frames per chunk (x40 ms with 4x subsampling)
    left_chunks: int = -1  # attention left context in chunks; -1: the whole utterance
    beam_size: int = 10
    ctc_weight: float = 0.5  # weight of the CTC score in attention rescoring
    reverse_weight: float = 0.3  # right-to-left decoder's share (bidirectional decoders only)
    rescoring: bool = True
    # per character of a hot word; 3.0 made the test model insert and drop words next to the 93 hot words of
    # the demo tenant (bench.recognizer_hot_words: 1 sentence of 32 wrong, and repeated words in partials)
    hot_word_bonus: float = 1.5


@dataclass
class DecodeResult:
    text: str
    confidence: float
    audio_ms: int  # audio covered by the decoded frames


class StreamDecoder:
    def __init__(
        self,
        backend: ChunkEncoderBackend,
        vocab: list[str],
        fbank: FbankConfig,
        cmvn: GlobalCMVN | None,
        config: DecodeConfig,
        hot_words: list[str] | None = None,
    ) -> None:
        self.backend = backend
        self.spec = backend.spec
        self.vocab = vocab
        self.config = config
        self._fbank = StreamingFbank(fbank)
        self._cmvn = cmvn
        self._frame_ms = fbank.frame_shift_ms
        self._feats = np.zeros((0, fbank.n_mels), dtype=np.float32)  # not yet consumed
        self.offset = 0  # encoder frames produced
        self.att_cache = np.zeros((self.spec.layers, self.spec.heads, 0, 2 * self.spec.head_dim), np.float32)
        self.cnn_cache = np.zeros((self.spec.layers, self.spec.hidden, self.spec.cnn_cache_len), np.float32)
        self._encoder_out: list[np.ndarray] = []
        context = None
        if hot_words:
            index = {u: i for i, u in enumerate(vocab)}
            words = [[index[c] for c in w if c in index] for w in hot_words]
            context = ContextTrie([w for w in words if w], config.hot_word_bonus)
        self.search = CtcPrefixSearch(beam_size=config.beam_size, context=context)
        self.finishing = False
        self.finished = False
        if config.left_chunks > 0:
            self._max_cache = config.chunk_size * config.left_chunks
        else:
            self._max_cache = self.spec.max_positions

    def lookahead_copy(self) -> StreamDecoder:
        """A throwaway copy that shares nothing it would change: for decoding audio that may never come (the
        silence a pause would continue with). Caches and feature buffers are replaced, not written in place, so
        they are shared until the copy replaces its own."""
        clone = copy.copy(self)
        clone._fbank = copy.deepcopy(self._fbank)
        clone._encoder_out = list(self._encoder_out)
        memo = {} if self.search.context is None else {id(self.search.context): self.search.context}
        clone.search = copy.deepcopy(self.search, memo)
        return clone

    # -- features -----------------------------------------------------------------------------------------

    def accept_samples(self, samples: np.ndarray) -> None:
        """16 kHz float samples (int16 scale) -> normalised features waiting for the encoder."""
        if samples.size == 0:
            return
        feats = self._fbank.accept(samples)
        if feats.shape[0]:
            if self._cmvn is not None:
                feats = self._cmvn(feats).astype(np.float32)
            self._feats = np.concatenate([self._feats, feats]) if self._feats.size else feats

    @property
    def window(self) -> int:
        return self.spec.input_frames(self.config.chunk_size)

    def next_chunk_frames(self) -> int:
        """Feature frames of the next chunk to run (0: nothing ready)."""
        if self.finished:
            return 0
        if self._feats.shape[0] >= self.window:
            return self.window
        context = self.spec.right_context + 1
        if self.finishing and self._feats.shape[0] >= context:
            # The tail: a shorter chunk with as many whole subsampled frames as the features allow.
            out = (self._feats.shape[0] - context) // self.spec.subsampling + 1
            return self.spec.input_frames(out)
        return 0

    def samples_needed(self) -> int:
        """More 16 kHz samples this decoder needs before its next full chunk (0: one is ready).

        The scheduler hands a stream's audio over only when it has this much, so features are computed
        once per chunk rather than once per 20 ms packet.
        """
        wanted = self.window - self._feats.shape[0]
        if wanted <= 0:
            return 0
        cfg = self._fbank.cfg
        return max(0, cfg.win_length + (wanted - 1) * cfg.n_shift - self._fbank.pending_samples)

    def take_chunk(self, frames: int) -> np.ndarray:
        chunk = self._feats[:frames]
        out_frames = (frames - self.spec.right_context - 1) // self.spec.subsampling + 1
        # Keep the overlap the subsampling convolutions need for the next chunk.
        self._feats = self._feats[out_frames * self.spec.subsampling :]
        return chunk

    # -- encoder output -----------------------------------------------------------------------------------

    def apply(
        self, encoder_out: np.ndarray, ctc_log_probs: np.ndarray, att_cache: np.ndarray, cnn_cache: np.ndarray
    ) -> None:
        """Take one stream's rows of a backend call (att_cache already cut to its valid part)."""
        self._encoder_out.append(encoder_out)
        self.offset += encoder_out.shape[0]
        self.att_cache = (
            att_cache[:, :, -self._max_cache :, :] if att_cache.shape[2] > self._max_cache else att_cache
        )
        self.cnn_cache = cnn_cache
        self.search.advance(ctc_log_probs)

    @property
    def audio_ms(self) -> int:
        return int(self.offset * self.spec.subsampling * self._frame_ms)

    def partial(self) -> DecodeResult:
        best = self.search.best()
        return DecodeResult(self._text(best.tokens), best.confidence, self.audio_ms)

    def final(self) -> DecodeResult:
        """Attention rescoring of the n-best (if enabled and possible), then the best hypothesis."""
        self.finished = True
        hyps = self.search.nbest()
        best: Hypothesis = hyps[0]
        usable = [h for h in hyps if h.tokens]
        if self.config.rescoring and self._encoder_out and len(usable) > 1:
            enc = np.concatenate(self._encoder_out)
            att = self.backend.attention_scores(
                enc, [list(h.tokens) for h in usable], self.config.reverse_weight
            )
            scores = [
                a + self.config.ctc_weight * h.ctc_score + h.context_score
                for a, h in zip(att, usable, strict=True)
            ]
            best = usable[int(np.argmax(scores))]
        return DecodeResult(self._text(best.tokens), best.confidence, self.audio_ms)

    def _text(self, tokens: tuple[int, ...]) -> str:
        units = [self.vocab[t] for t in tokens if 0 <= t < len(self.vocab)]
        text = "".join(u for u in units if not (u.startswith("<") and u.endswith(">")))
        return text.replace("▁", " ").strip()


def run_round(backend: ChunkEncoderBackend, decoders: list[StreamDecoder], max_batch: int) -> int:
    """Run every ready chunk of these decoders, batching streams whose chunks have the same length.

    Loops until no decoder has a chunk ready, so a stream that fell behind catches up.  Returns the number
    of backend calls made.
    """
    calls = 0
    while True:
        groups: dict[int, list[StreamDecoder]] = {}
        for d in decoders:
            frames = d.next_chunk_frames()
            if frames:
                groups.setdefault(frames, []).append(d)
        if not groups:
            return calls
        for frames, members in groups.items():
            for start in range(0, len(members), max_batch):
                _forward(backend, members[start : start + max_batch], frames)
                calls += 1


def _forward(backend: ChunkEncoderBackend, decoders: list[StreamDecoder], frames: int) -> None:
    spec = backend.spec
    feats = np.stack([d.take_chunk(frames) for d in decoders])
    lens = np.array([d.att_cache.shape[2] for d in decoders], dtype=np.int64)
    longest = int(lens.max())
    att, cnn = spec.empty_caches(len(decoders), longest)
    for i, d in enumerate(decoders):
        if lens[i]:
            att[i, :, :, longest - lens[i] :, :] = d.att_cache
        cnn[i] = d.cnn_cache
    offsets = np.array([d.offset for d in decoders], dtype=np.int64)
    out = backend.forward_chunks(feats, offsets, att, lens, cnn)
    chunk = out.encoder_out.shape[1]
    for i, d in enumerate(decoders):
        valid = int(lens[i]) + chunk
        d.apply(
            out.encoder_out[i], out.ctc_log_probs[i], out.att_cache[i, :, :, -valid:, :], out.cnn_cache[i]
        )
