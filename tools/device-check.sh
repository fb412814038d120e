#!/usr/bin/env bash
# The device check: on a machine with a CUDA GPU, from the bundle tools/device-bundle.sh built
# (the GPU machine needs no Rust toolchain and no network), run
#   1. `omnifuse info` (the device, NVRTC, cuBLAS as found);
#   2. the whole conformance suite on CUDA against the CPU reference tier, with
#      OMNIFUSE_REQUIRE_DEVICE=cuda so nothing may skip;
#   3. the end-to-end model on CUDA against the float64 numpy reference (the same check the CPU
#      and OpenCL meet in CI, tools/reference/check_model.py);
#   4. the kernel benchmarks, each next to its peer in the same process or script: FP16 and
#      INT8 GEMM 4096³ next to cuBLAS gemmEx (CUDA events, same stream, outputs compared), and
#      fused attention (f16, head_dim 128, 4 × 4096 packed tokens, `full`, without and with
#      the modality pair bias) next to PyTorch's scaled_dot_product_attention flash path, timed
#      in this script on the same GPU.
# It writes device-check.json and device-check.txt into $OUT (else ./device-out) and exits
# non-zero on any failure or mismatch. Target: under 8 minutes on an H200.
# Usage: tools/device-check.sh [BUNDLE_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
bundle="${1:-device-bundle}"
out="${OUT:-device-out}"
mkdir -p "$out"
bin="$bundle/omnifuse"
log="$out/device-check.txt"
: > "$log"
start=$(date +%s)
say() { printf '\n== %s (%ss)\n' "$*" "$(( $(date +%s) - start ))" | tee -a "$log"; }
status=0
results=()
record() { results+=("$1"); }

say "environment"
# NVRTC and cuBLAS: the toolkit's, else the ones inside Python's NVIDIA wheels. cudarc looks
# for unversioned or .12 names, so versioned CUDA 13 libraries get links in a private folder.
links="$(mktemp -d)"
site="$(python3 -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null || true)"
find_lib() {
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib "$site/nvidia" /usr/lib/x86_64-linux-gnu; do
    [ -d "$d" ] || continue
    f=$(find "$d" -name "$1" 2>/dev/null | sort | head -1)
    [ -n "$f" ] && { echo "$f"; return; }
  done
}
nvrtc=$(find_lib 'libnvrtc.so.1[0-9]*')
cublas=$(find_lib 'libcublas.so.1[0-9]*')
cublaslt=$(find_lib 'libcublasLt.so.1[0-9]*')
[ -n "$nvrtc" ] && export OMNIFUSE_NVRTC="$nvrtc"
[ -n "$cublas" ] && ln -sf "$cublas" "$links/libcublas.so"
[ -n "$cublaslt" ] && ln -sf "$cublaslt" "$links/libcublasLt.so"
for d in "$(dirname "${cublas:-/nonexistent}")" /usr/local/nvidia/lib64 /usr/local/cuda/lib64; do
  [ -d "$d" ] && LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
export LD_LIBRARY_PATH="$links:${LD_LIBRARY_PATH:-}"
export OMNIFUSE_CACHE="${OMNIFUSE_CACHE:-/tmp/omnifuse-cache}"
echo "commit $(cat "$bundle/COMMIT" 2>/dev/null || echo unknown); NVRTC ${nvrtc:-not found}; cuBLAS ${cublas:-not found}" | tee -a "$log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$log"
"$bin" info 2>&1 | tee -a "$log" | grep -E "^cuda|CUDA" || true

say "conformance suite on CUDA vs the CPU reference (nothing may skip)"
if OMNIFUSE_REQUIRE_DEVICE=cuda timeout 300 "$bundle/cuda-conformance" --test-threads 4 2>&1 | tee "$out/conformance.txt" | tail -40 | tee -a "$log"; then
  grep -q "test result: ok" "$out/conformance.txt" && record '"conformance": "pass"' || { status=1; record '"conformance": "fail"'; }
else
  status=1; record '"conformance": "fail"'
fi

say "end-to-end model on CUDA vs the float64 numpy reference"
tmp="$(mktemp -d)"
"$bin" init-model --out "$tmp/model" --preset omni-small >/dev/null
if (cd tools/reference && timeout 180 python3 check_model.py --bin "$(cd "$OLDPWD" && realpath "$bin")" --model "$tmp/model" --work "$tmp/in" --backend cuda) 2>&1 | tee -a "$log"; then
  record '"model_vs_reference": "pass"'
else
  status=1; record '"model_vs_reference": "fail"'
fi

say "GEMM 4096³ next to cuBLAS (f16, then int8)"
for dt in f16 i8; do
  if j=$(timeout 120 "$bin" kernels --backend cuda --dtype "$dt" --m 4096 --n 4096 --k 4096 --reps 50 --json 2>>"$log"); then
    echo "$j" | tee -a "$log"; record "\"gemm_$dt\": $j"
  else
    status=1; record "\"gemm_$dt\": null"; echo "gemm $dt failed" | tee -a "$log"
  fi
done

say "fused attention f16, head_dim 128, 4 x 4096 tokens, full; then with the pair bias"
for extra in "" "--bias"; do
  key="attention${extra:+_bias}"
  if j=$(timeout 120 "$bin" kernels --op attention --backend cuda --dtype f16 --seqlens 4096,4096,4096,4096 \
      --heads 16 --head-dim 128 --mask full $extra --reps 20 --json 2>>"$log"); then
    echo "$j" | tee -a "$log"; record "\"$key\": $j"
  else
    status=1; record "\"$key\": null"; echo "attention $extra failed" | tee -a "$log"
  fi
done

say "PyTorch scaled_dot_product_attention (flash) at the same shape, this GPU"
sdpa=$(timeout 120 python3 - <<'PY' 2>>"$log"
import json, torch
from torch.nn.attention import SDPBackend, sdpa_kernel
q, k, v = (torch.randn(4, 16, 4096, 128, device="cuda", dtype=torch.float16) for _ in range(3))
f = torch.nn.functional.scaled_dot_product_attention
with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
    for _ in range(3):
        f(q, k, v)
    times = []
    for _ in range(20):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); f(q, k, v); e.record(); torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
times.sort()
ms = times[len(times) // 2]
print(json.dumps({"name": f"torch {torch.__version__} SDPA flash", "median_ms": ms,
                  "tflops": 4 * 4096 * 4096 * 128 * 16 * 4 / (ms * 1e9)}))
PY
) && { echo "$sdpa" | tee -a "$log"; record "\"attention_peer_sdpa\": $sdpa"; } || { status=1; record '"attention_peer_sdpa": null'; }

say "summary"
python3 - "$out/device-check.json" "$status" "${results[@]}" <<'PY' 2>&1 | tee -a "$log"
import json, sys
path, status, parts = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
r = json.loads("{" + ",".join(parts) + "}")
r["status"] = "pass" if status == 0 else "fail"
json.dump(r, open(path, "w"), indent=1)
def ms(x, *k):
    for key in k:
        x = (x or {}).get(key) if isinstance(x, dict) else None
    return x
rows = []
f16, i8 = r.get("gemm_f16"), r.get("gemm_i8")
if f16: rows.append(("FP16 GEMM 4096³ vs cuBLAS", f16.get("ratio"), "≥ 0.8 (stretch 0.95)"))
if i8: rows.append(("INT8 GEMM 4096³ vs cuBLAS int8", i8.get("ratio"), "≥ 0.8"))
if f16 and i8: rows.append(("INT8 GEMM speed over our FP16", f16["median_ms"] / i8["median_ms"], "≥ 1.6"))
a, ab, sd = r.get("attention"), r.get("attention_bias"), r.get("attention_peer_sdpa")
if a and sd: rows.append(("attention vs SDPA flash (SDPA time / ours)", sd["median_ms"] / a["median_ms"], "≥ 0.8"))
if a and ab: rows.append(("attention with pair bias / without", ab["median_ms"] / a["median_ms"], "≤ 1.1"))
for name, v, bar in rows:
    print(f"{name:<45} {v if v is None else round(v, 3)!s:>8}   bar {bar}")
print("conformance:", r.get("conformance"), " model:", r.get("model_vs_reference"), " overall:", r["status"])
PY
echo "took $(( $(date +%s) - start ))s"
exit "$status"
