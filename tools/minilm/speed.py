#!/usr/bin/env python3
"""Sentence-embedding throughput of all-MiniLM-L6-v2, side by side in one run: `omnifuse embed
--file` versus sentence-transformers on PyTorch (CPU), at the same batch size (default 32) and
thread count, on the same sentences of mixed lengths (8 to 128 tokens, [CLS]/[SEP] included).

Usage: python3 tools/minilm/speed.py --model DIR [--bin target/release/omnifuse]
           [--sentences 512] [--batch 32] [--threads N] [--repeat 3] [--precision fp32|int8]
  With --precision int8, omnifuse runs its INT8 path and PyTorch's own dynamic INT8
  quantisation of the Linear layers (torch.ao.quantization.quantize_dynamic) is timed too, so
  the INT8 figure has a like-for-like peer next to the FP32 one.
  DIR is the sentence-transformers directory (tools/minilm/fetch.sh prints it).
Needs: sentence-transformers and torch (the golden.py environment).

Each side is timed over the encoding of all sentences (tokenisation included, model loading
excluded; omnifuse reports its own time with --timing), best of --repeat runs, after one
warm-up batch. The vectors of both sides are compared too (minimum cosine), so a fast wrong
answer shows. No timing is asserted: this is a report.
"""

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = (
    "the of and to in is was for on that with as by at from it his an were are which this be "
    "model kernel graph tensor device memory batch token sequence attention fusion encoder image "
    "audio video text weight matrix vector layer norm softmax gelu residual projection embedding "
    "river mountain city market music morning evening quickly slowly bright quiet ancient modern "
    "computer network language question answer because although however therefore"
).split()


def sentences(tok, n: int, seed: int = 7):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        target = rng.randint(8, 128)
        words = [rng.choice(WORDS) for _ in range(target)]
        # Trim to the target token count ([CLS] and [SEP] included).
        while words and len(tok.encode(" ".join(words)).ids) > target:
            words.pop()
        text = " ".join(words).capitalize() + "."
        if 8 <= len(tok.encode(text).ids) <= 128:
            out.append(text)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--bin", default="target/release/omnifuse")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--sentences", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    args = ap.parse_args()

    import numpy as np
    import tokenizers
    import torch
    from sentence_transformers import SentenceTransformer

    tok = tokenizers.Tokenizer.from_file(str(args.model / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    texts = sentences(tok, args.sentences)
    lengths = [len(tok.encode(t).ids) for t in texts]
    tokens = sum(lengths)
    print(
        f"{len(texts)} sentences, {tokens} tokens (min {min(lengths)}, mean {tokens / len(texts):.1f}, "
        f"max {max(lengths)}), batch {args.batch}, {args.threads} threads"
    )

    # sentence-transformers on PyTorch CPU.
    torch.set_num_threads(args.threads)
    st = SentenceTransformer(str(args.model), device="cpu")
    with torch.inference_mode():
        st.encode(texts[: args.batch], batch_size=args.batch)
        best_st, ref = float("inf"), None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            ref = st.encode(texts, batch_size=args.batch, convert_to_numpy=True)
            best_st = min(best_st, time.perf_counter() - t0)

    # PyTorch's dynamic INT8 (Linear weights per channel, activations per batch at run time).
    best_q = None
    if args.precision == "int8":
        qst = torch.ao.quantization.quantize_dynamic(st, {torch.nn.Linear}, dtype=torch.qint8)
        with torch.inference_mode():
            qst.encode(texts[: args.batch], batch_size=args.batch)
            best_q = float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                qst.encode(texts, batch_size=args.batch, convert_to_numpy=True)
                best_q = min(best_q, time.perf_counter() - t0)

    # omnifuse embed, timing reported by the command itself (encoding only, not loading).
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "sentences.txt"
        f.write_text("\n".join(texts) + "\n", encoding="utf-8")
        out_path = Path(tmp) / "out.txt"
        best_of = float("inf")
        cmd = [
            args.bin, "embed", "--model", str(args.model), "--backend", args.backend, "--file", str(f),
            "--batch", str(args.batch), "--threads", str(args.threads), "--timing", "--precision", args.precision,
        ]
        for _ in range(args.repeat):
            with open(out_path, "w") as out:
                p = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, text=True)
            if p.returncode != 0:
                print(f"omnifuse failed: {p.stderr}", file=sys.stderr)
                return 1
            m = re.search(r"tokenise \+ encode ([0-9.]+) ms", p.stderr)
            if not m:
                print(f"no timing in: {p.stderr}", file=sys.stderr)
                return 1
            best_of = min(best_of, float(m.group(1)) / 1e3)
        ours = np.loadtxt(out_path, dtype=np.float64, ndmin=2)

    cos = np.sum(ours * ref, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    print(f"{'':40} {'seconds':>9} {'sentences/s':>12} {'tokens/s':>10}")
    rows = [(f"omnifuse {args.precision} ({args.backend})", best_of), (f"sentence-transformers {torch.__version__}", best_st)]
    if best_q is not None:
        rows.append(("sentence-transformers, torch dynamic int8", best_q))
    for name, secs in rows:
        print(f"{name:40} {secs:9.3f} {len(texts) / secs:12.1f} {tokens / secs:10.0f}")
    print(f"omnifuse / sentence-transformers speed: {best_st / best_of:.2f}x; min cosine between them {cos.min():.9f}")
    if best_q is not None:
        print(f"omnifuse int8 / torch dynamic int8 speed: {best_q / best_of:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
