"""Compare `omnifuse run --json` with the float64 numpy reference (omni_forward.py).

For each modality combination (text; image; audio; video; text+image; image+audio; all four;
two texts + one image) it runs the Rust binary and the reference on the same inputs
(make_inputs.py), then compares every head:

- classification: probabilities, metric max|rust − ref| / max|ref|; the label must match;
- retrieval: the fused embedding and each input's, same metric (the table shows the worst);
- generation: tokens must match exactly; if they diverge at a step where the reference's top two
  logits are closer than 1e-3 (a near tie that f32 noise may flip) this is reported and only the
  steps before it are compared; logprobs by the same metric over the compared steps.

The `inputs` array (modality, token count per input) must match too. Prints a table and exits
non-zero on any failure.

    python check_model.py --model DIR [--bin PATH] [--work DIR] [--tol 1e-4]

The binary comes from --bin, else $OMNIFUSE_BIN, else target/release/omnifuse.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import omni_forward as ref
from make_inputs import make_inputs

NEAR_TIE = 1e-3  # top-two logit gap under which a flipped greedy choice is accepted


def combinations(inp: dict) -> list[tuple[str, list[str], list[str]]]:
    """(name, texts, files): the Rust CLI puts every --text first, then the files in order."""
    t0, t1 = inp["texts"]
    return [
        ("text", [t0], []),
        ("image", [], [inp["image"]]),
        ("audio", [], [inp["audio"]]),
        ("video", [], [inp["video"]]),
        ("text+image", [t0], [inp["image"]]),
        ("image+audio", [], [inp["image"], inp["audio"]]),
        ("text+image+audio+video", [t0], [inp["image"], inp["audio"], inp["video"]]),
        ("text+text+image", [t0, t1], [inp["image"]]),
    ]


def run_rust(binary: str, model: str, texts: list[str], files: list[str], backend: str = "cpu") -> dict:
    cmd = [binary, "run", "--model", model, "--backend", backend, "--json"]
    for t in texts:
        cmd += ["--text", t]
    proc = subprocess.run(cmd + files, capture_output=True, text=True, encoding="utf-8")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:5])} ... exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


def rel_err(got, want) -> float:
    """max|got − want| / max|want| over one vector (inf when the shapes differ)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf")
    if want.size == 0:
        return 0.0
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-300))


def compare_classification(got: dict, want: dict, tol: float) -> tuple[float, list[str], list[str]]:
    """(error, problems, notes) of a classification head."""
    err = rel_err(got.get("probabilities", []), want["probabilities"])
    problems = []
    if got.get("labels") != want["labels"]:
        problems.append(f"labels {got.get('labels')} != {want['labels']}")
    if got.get("label") != want["label"]:
        top = sorted(want["probabilities"])[-2:]
        if top[1] - top[0] > tol:  # the label may only differ on a near tie of probabilities
            problems.append(f"label {got.get('label')!r} != {want['label']!r}")
    return err, problems, []


def compare_retrieval(got: dict, want: dict) -> tuple[float, list[str], list[str]]:
    """(error, problems, notes) of a retrieval head: the worst of the fused and per-input errors."""
    errs = {"fused": rel_err(got.get("fused", []), want["fused"])}
    got_inputs = got.get("inputs", [])
    problems = []
    if len(got_inputs) != len(want["inputs"]):
        problems.append(f"{len(got_inputs)} input embeddings, expected {len(want['inputs'])}")
    for i, (g, w) in enumerate(zip(got_inputs, want["inputs"])):
        errs[f"inputs[{i}]"] = rel_err(g, w)
    worst = max(errs, key=errs.get)
    return errs[worst], problems, [f"{len(errs)} vectors, worst {worst}"]


def first_divergence(got: list[int], want: list[int]) -> int | None:
    """First step where the sequences differ (one of them ending counts), or None."""
    for step in range(max(len(got), len(want))):
        if step >= len(got) or step >= len(want) or got[step] != want[step]:
            return step
    return None


def compare_generation(got: dict, want: dict) -> tuple[float, list[str], list[str]]:
    """(error, problems, notes) of a generation head: exact tokens up to a near tie, logprobs."""
    g_tok, w_tok = list(got.get("tokens", [])), want["tokens"]
    step = first_divergence(g_tok, w_tok)
    problems, notes = [], []
    if step is None:
        n = len(w_tok)
        notes.append(f"{n} tokens equal")
        if got.get("text") != want["text"]:
            problems.append(f"text {got.get('text')!r} != {want['text']!r}")
    else:
        n = step
        # margins[step] exists whenever the reference took that step (it has one per step,
        # the EOS step included); past the reference's max_tokens there is no tie to excuse.
        gap = want["margins"][step] if step < len(want["margins"]) else float("inf")
        where = f"step {step}: rust {g_tok[step:step + 4]} ref {w_tok[step:step + 4]}"
        if gap < NEAR_TIE:
            notes.append(f"near tie (top-2 gap {gap:.1e}) at {where}; compared steps 0..{step}")
        else:
            problems.append(f"tokens diverge at {where} (top-2 gap {gap:.2e})")
    err = rel_err(got.get("logprobs", [])[:n], want["logprobs"][:n])
    return err, problems, notes


def check_combination(
    model: ref.Model, model_dir: str, binary: str, name: str, texts, files, tol, backend: str = "cpu"
) -> list[tuple]:
    """Rows (combination, head, error, ok, notes) for one request."""
    try:
        got = run_rust(binary, model_dir, texts, files, backend)
    except (RuntimeError, json.JSONDecodeError) as e:
        return [(name, "-", float("inf"), False, f"rust: {e}")]
    inputs = [ref.read_input(model.cfg, text=t) for t in texts] + [ref.read_input(model.cfg, path=f) for f in files]
    want = ref.forward(model, inputs)
    rows = []
    got_inputs = [(i.get("modality"), i.get("tokens")) for i in got.get("inputs", [])]
    want_inputs = [(i["modality"], i["tokens"]) for i in want["inputs"]]
    if got_inputs != want_inputs:
        rows.append((name, "inputs", float("inf"), False, f"rust {got_inputs} != ref {want_inputs}"))
    for head in model.cfg["heads"]:
        h, w = head["name"], want["heads"][head["name"]]
        g = got.get("heads", {}).get(h)
        if g is None or g.get("kind") != head["kind"]:
            rows.append((name, h, float("inf"), False, f"head missing or of another kind: {g and g.get('kind')}"))
            continue
        if head["kind"] == "classification":
            err, problems, notes = compare_classification(g, w, tol)
        elif head["kind"] == "retrieval":
            err, problems, notes = compare_retrieval(g, w)
        else:
            err, problems, notes = compare_generation(g, w)
        rows.append((name, h, err, err <= tol and not problems, "; ".join(problems + notes)))
    return rows


def print_table(rows: list[tuple]) -> None:
    w_comb = max(len("combination"), *(len(r[0]) for r in rows))
    w_head = max(len("head"), *(len(r[1]) for r in rows))
    print(f"{'combination':<{w_comb}}  {'head':<{w_head}}  {'max rel err':>11}  result  notes")
    for comb, head, err, ok, notes in rows:
        print(f"{comb:<{w_comb}}  {head:<{w_head}}  {err:>11.3e}  {'ok' if ok else 'FAIL':<6}  {notes}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="model directory (config.toml + model.safetensors)")
    ap.add_argument("--bin", default=os.environ.get("OMNIFUSE_BIN", "target/release/omnifuse"))
    ap.add_argument("--work", help="where the test inputs go (default: a temporary directory)")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--backend", default="cpu", help="device `omnifuse run` uses (cpu, opencl, ...)")
    args = ap.parse_args()
    start = time.time()
    model = ref.load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        inp = make_inputs(Path(args.work or tmp), model.cfg["image"]["size"])
        rows = []
        for name, texts, files in combinations(inp):
            rows += check_combination(model, args.model, args.bin, name, texts, files, args.tol, args.backend)
    print(f"model {model.cfg['model']['name']} ({args.model}) on {args.backend} — rust: {args.bin}")
    print_table(rows)
    failed = sum(not r[3] for r in rows)
    print(f"\n{len(rows) - failed}/{len(rows)} ok, tolerance {args.tol:g}, {time.time() - start:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
