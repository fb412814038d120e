#!/usr/bin/env python3
"""Text retrieval quality of a sentence encoder through `omnifuse embed`, on the hand-written
query → paraphrase pairs of tools/data/retrieval_pairs.jsonl (format in tools/data/README.md):
every query is scored against all paraphrases of its language (its own is the one relevant
answer), and recall@1, recall@5 and MRR are reported per language.

Usage: python3 tools/minilm/retrieval.py --model DIR [--bin target/release/omnifuse] [--precision int8]
  DIR is a text-encoder directory (tools/minilm/fetch.sh prints all-MiniLM-L6-v2's).
Needs only the Python standard library.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def embed(bin_path: str, model: Path, backend: str, texts: list[str], precision: str) -> list[list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "texts.txt"
        f.write_text("\n".join(texts) + "\n", encoding="utf-8")
        cmd = [bin_path, "embed", "--model", str(model), "--backend", backend, "--precision", precision,
               "--file", str(f), "--json"]
        p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"omnifuse embed failed: {p.stderr}")
    return json.loads(p.stdout)["embeddings"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--bin", default="target/release/omnifuse")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--precision", default="fp32", help="fp32 or int8")
    ap.add_argument("--data", type=Path, default=HERE.parent / "data" / "retrieval_pairs.jsonl")
    args = ap.parse_args()

    pairs = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    q = embed(args.bin, args.model, args.backend, [p["query"] for p in pairs], args.precision)
    d = embed(args.bin, args.model, args.backend, [p["paraphrase"] for p in pairs], args.precision)
    print(f"{'lang':6} {'pairs':>5} {'R@1':>6} {'R@5':>6} {'MRR':>6}")
    for lang in sorted({p["lang"] for p in pairs}):
        idx = [i for i, p in enumerate(pairs) if p["lang"] == lang]
        r1 = r5 = mrr = 0.0
        for i in idx:
            scores = {j: sum(a * b for a, b in zip(q[i], d[j])) for j in idx}
            rank = 1 + sum(1 for j in idx if scores[j] > scores[i])
            r1 += rank == 1
            r5 += rank <= 5
            mrr += 1.0 / rank
        n = len(idx)
        print(f"{lang:6} {n:5d} {r1 / n:6.3f} {r5 / n:6.3f} {mrr / n:6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
