"""Streaming Mandarin speech recognition: PaddleSpeech U2/conformer models behind a batched gRPC service."""
