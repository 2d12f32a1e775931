#!/usr/bin/env python3
"""Write a tiny random-weight llama GGUF model for llama-server integration tests.

Why this exists: the integration tests drive a real llama.cpp ``llama-server``,
but test machines (and CI) cannot download model weights. So the tests make a
model at test time instead: a llama-architecture GGUF with a few hundred KB of
seeded random weights and a real SentencePiece-style ("llama") tokenizer.

What the model gives the tests:
  * any UTF-8 text tokenizes, through the 256 byte-fallback tokens;
  * ChatML control tokens and a ChatML chat template, so
    ``/v1/chat/completions`` renders prompts like a real chat model;
  * greedy output made of readable ASCII pieces that varies from token to
    token (see ``_readable_output_rows``), so stop strings are easy to pick;
  * byte-identical files for the same seed and numpy version.

The text it generates is nonsense, and it (almost) never emits an
end-of-generation token, so tests should bound generation with ``max_tokens``.

Usage: python3 make_tiny_gguf.py OUT.gguf [--seed N] [--ctx N]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from gguf import GGUFWriter, LlamaFileType, TokenType

ARCH = "llama"

# Tiny dimensions: big enough to exercise every llama code path (GQA, RoPE,
# SwiGLU FFN, several layers), small enough to load in well under a second and
# generate quickly on one CPU thread.
N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_HEAD_KV = 2  # fewer KV heads than query heads, so grouped-query attention runs
N_FF = 128
HEAD_DIM = N_EMBD // N_HEAD
RMS_EPS = 1e-5
ROPE_BASE = 10000.0

# "▁" (U+2581) is how SentencePiece spells a space inside a piece.
SPACE = "\u2581"

# A handful of common words (stored as "▁word" plus every prefix of it, see
# _build_vocab) so ordinary English tokenizes into multi-character pieces,
# while everything else falls back to single characters or bytes.
WORDS = [
    "the", "and", "of", "to", "a", "in", "is", "it", "you", "that", "for",
    "on", "with", "as", "was", "are", "be", "at", "or", "not", "can", "will",
    "from", "have", "this", "what", "yes", "no", "hello", "world", "test",
    "model", "token", "chat", "user", "assistant", "system", "ok", "hi",
]

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"

# ChatML, the same shape Qwen and many fine-tunes use. llama-server renders it
# with its built-in jinja engine and recognises <|im_end|> as end-of-turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _build_vocab() -> tuple[list[str], list[float], list[int]]:
    """Return (pieces, scores, types) for a byte-fallback SentencePiece vocab.

    Layout: <unk>, <s>, </s>, the 256 byte tokens, normal pieces, then the
    ChatML control tokens. llama.cpp's SPM tokenizer looks byte tokens up by
    their "<0xXX>" text, and needs <0x0A> for its newline token.
    """
    pieces = ["<unk>", "<s>", "</s>"]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL]
    scores = [0.0, 0.0, 0.0]

    for b in range(256):
        pieces.append(f"<0x{b:02X}>")
        types.append(TokenType.BYTE)
        scores.append(0.0)

    normal: list[str] = [SPACE]
    normal += [chr(c) for c in range(0x21, 0x7F)]  # printable ASCII, no space
    # The SPM tokenizer builds pieces by merging adjacent symbols, and a merge
    # only happens when the merged text is itself in the vocab. Adding every
    # prefix of "▁word" gives each word a merge path: ▁ h → ▁h, ▁h e → ▁he, ...
    for word in WORDS:
        full = SPACE + word
        for end in range(2, len(full) + 1):
            if full[:end] not in normal:
                normal.append(full[:end])
    for rank, piece in enumerate(normal):
        pieces.append(piece)
        types.append(TokenType.NORMAL)
        # Longer pieces score higher so merges prefer them, like a real model.
        scores.append(float(len(piece)) - rank * 1e-4)

    for special in (IM_START, IM_END):
        pieces.append(special)
        types.append(TokenType.CONTROL)
        scores.append(0.0)

    return pieces, scores, [int(t) for t in types]


def _normal(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    # float32 straight from the generator (no float64 round trip), so the
    # same seed gives the same bits.
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(std)


def _readable_output_rows(types: list[int], out: np.ndarray) -> np.ndarray:
    """Zero the output-projection rows of every non-NORMAL token.

    Those tokens' logits are then exactly 0, while about half of the ~190
    normal pieces get positive random logits, so greedy decoding (and top-k
    sampling) picks a readable ASCII piece: no end-of-generation tokens
    (generation runs to max_tokens), no control tokens, and no lone UTF-8
    bytes that would reach the client as U+FFFD. Only sampling without top-k (top_k=0) at a
    high temperature can still, rarely, pick one of them.
    """
    keep = np.array([t == TokenType.NORMAL for t in types], dtype=np.float32)
    return (out * keep[:, None]).astype(np.float32)


def write_model(path: str, seed: int, ctx: int) -> None:
    pieces, scores, types = _build_vocab()
    n_vocab = len(pieces)
    rng = np.random.Generator(np.random.PCG64(seed))

    w = GGUFWriter(path, ARCH)
    w.add_name("tiny-random-llama")
    w.add_file_type(LlamaFileType.ALL_F32)
    w.add_vocab_size(n_vocab)
    w.add_context_length(ctx)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_layer_norm_rms_eps(RMS_EPS)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_rope_freq_base(ROPE_BASE)

    w.add_tokenizer_model("llama")  # SentencePiece (SPM) with byte fallback
    w.add_token_list(pieces)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(pieces.index("<unk>"))
    w.add_bos_token_id(pieces.index("<s>"))
    # </s> stays the EOS as in every llama SPM model; <|im_end|> is declared
    # the end-of-turn token, so llama-server ends a chat turn on either.
    w.add_eos_token_id(pieces.index("</s>"))
    w.add_eot_token_id(pieces.index(IM_END))
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    w.add_chat_template(CHAT_TEMPLATE)

    # Weights, drawn in a fixed order so the file depends only on the seed.
    # Scales were tuned by experiment (seeds 1, 2, 3, 7, 42): unit-variance
    # embeddings plus projections 3x larger than the usual 1/sqrt(fan_in)
    # make attention matter, so greedy output keeps changing for 100+ tokens
    # instead of settling into one repeated token. The output projection's
    # std (0.3) only sets how peaked the logits are (greedy picks the same
    # token at any scale): at 0.3, temperature 1.0 with different seeds gives
    # different texts, while the default top_k=40 still keeps the zeroed
    # rows out of sampling. Norm weights are 1.0, as in a fresh model.
    proj = 3.0 / np.sqrt(N_EMBD)
    w.add_tensor("token_embd.weight", _normal(rng, (n_vocab, N_EMBD), 1.0))
    for i in range(N_LAYER):
        p = f"blk.{i}"
        w.add_tensor(f"{p}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        # numpy shape is (out, in); gguf stores it reversed, as ggml expects.
        w.add_tensor(f"{p}.attn_q.weight", _normal(rng, (N_HEAD * HEAD_DIM, N_EMBD), proj))
        w.add_tensor(f"{p}.attn_k.weight", _normal(rng, (N_HEAD_KV * HEAD_DIM, N_EMBD), proj))
        w.add_tensor(f"{p}.attn_v.weight", _normal(rng, (N_HEAD_KV * HEAD_DIM, N_EMBD), proj))
        w.add_tensor(f"{p}.attn_output.weight", _normal(rng, (N_EMBD, N_HEAD * HEAD_DIM), proj))
        w.add_tensor(f"{p}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"{p}.ffn_gate.weight", _normal(rng, (N_FF, N_EMBD), proj))
        w.add_tensor(f"{p}.ffn_up.weight", _normal(rng, (N_FF, N_EMBD), proj))
        w.add_tensor(f"{p}.ffn_down.weight", _normal(rng, (N_EMBD, N_FF), 1.0 / np.sqrt(N_FF)))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    out = _normal(rng, (n_vocab, N_EMBD), 0.3)
    w.add_tensor("output.weight", _readable_output_rows(types, out))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="path of the .gguf file to write")
    ap.add_argument("--seed", type=int, default=42, help="RNG seed (default 42)")
    ap.add_argument("--ctx", type=int, default=512, help="context length (default 512)")
    args = ap.parse_args(argv)
    if args.ctx <= 0:
        ap.error("--ctx must be positive")
    write_model(args.out, args.seed, args.ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
