"""Write a model directory without the Rust side: a `config.toml` and a `model.safetensors`
holding every tensor MODEL.md names, at its exact shape, f32, drawn with numpy (the
distributions of MODEL.md "Weights", not its ChaCha8 stream, so the values differ from
`omnifuse init-model`'s).

Two configs:
- omni-small (default): the values of `Config::omni_small()` in `crates/model/src/config.rs`;
- `--variant`: a small model that takes every option omni-small does not — `pool = "cls"`,
  `pair_bias = false` (no `fusion.pair_bias` tensor), even text convolution widths, two
  classification heads, non-0.5 image mean/std, a 32×32 image, 4 video frames, and weights of a
  trained-looking scale (`draw_fan_in`). The checker runs it too, so the parts of MODEL.md the
  preset never reaches are compared as well, with a model sensitive enough to notice.

The weight list itself is `omni_forward.weight_shapes`; `--list` prints it, which documents the
names and shapes the Rust crate must write and read.

    python random_model.py --out DIR [--variant] [--seed N] [--list]
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from omni_forward import load_model, weight_shapes

# The omni-small preset of config.rs, as TOML (serde field names are the keys).
OMNI_SMALL_TOML = """\
[model]
name = "omni-small"
width = 256
eps = 1e-5
seed = 20261128

[limits]
max_text_tokens = 512
max_pixels = 40000000
max_audio_seconds = 30.0
max_video_frames = 100000
max_inputs = 64

[text]
encoder = "textcnn"
vocab = 259
embed = 128
widths = [3, 5, 7]
channels = 128

[image]
size = 224
patch = 16
width = 192
layers = 2
heads = 3
mlp_ratio = 4
mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]
policy = "crop"

[audio]
sample_rate = 16000
width = 192
layers = 2
heads = 3
mlp_ratio = 4
max_positions = 1500

[video]
frames = 8

[fusion]
layers = 4
heads = 4
mlp_ratio = 4
pair_bias = true
max_positions = 1500

[[heads]]
name = "sentiment"
kind = "classification"
labels = ["negative", "neutral", "positive"]
pool = "mean"

[[heads]]
name = "retrieval"
kind = "retrieval"
dim = 128

[[heads]]
name = "caption"
kind = "generation"
layers = 2
heads = 4
mlp_ratio = 4
max_tokens = 32
max_positions = 128
"""


# A small config exercising the options omni-small leaves at one value.
VARIANT_TOML = """\
[model]
name = "omni-variant"
width = 64
eps = 1e-6
seed = 7

[limits]
max_text_tokens = 200
max_pixels = 1000000
max_audio_seconds = 5.0
max_video_frames = 64
max_inputs = 8

[text]
encoder = "textcnn"
vocab = 259
embed = 32
widths = [2, 3, 4]
channels = 16

[image]
size = 32
patch = 8
width = 48
layers = 1
heads = 2
mlp_ratio = 2
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
policy = "crop"

[audio]
sample_rate = 16000
width = 48
layers = 1
heads = 4
mlp_ratio = 3
max_positions = 256

[video]
frames = 4

[fusion]
layers = 2
heads = 2
mlp_ratio = 2
pair_bias = false
max_positions = 256

[[heads]]
name = "intent"
kind = "classification"
labels = ["ask", "tell"]
pool = "cls"

[[heads]]
name = "caption"
kind = "generation"
layers = 1
heads = 2
mlp_ratio = 2
max_tokens = 12
max_positions = 16

[[heads]]
name = "topic"
kind = "classification"
labels = ["sport", "music", "news", "other"]
pool = "mean"

[[heads]]
name = "search"
kind = "retrieval"
dim = 16
"""


def draw(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """MODEL.md "Weights": layer-norm weights 1 + N(0, 0.02²), `fusion.pair_bias` N(0, 0.5²),
    the textcnn's `text.embed` N(0, 1) and `text.conv.{i}.weight` N(0, 1/(w·E)), everything
    else (weights, biases, embeddings, position tables) N(0, 0.02²)."""
    parts = name.split(".")
    is_ln_weight = parts[-1] == "weight" and parts[-2] in ("ln", "ln1", "ln2", "ln3")
    if name == "fusion.pair_bias":
        values = rng.normal(0.0, 0.5, shape)
    elif name == "text.embed":
        values = rng.normal(0.0, 1.0, shape)
    elif name.startswith("text.conv.") and parts[-1] == "weight":
        values = rng.normal(0.0, (shape[0] * shape[1]) ** -0.5, shape)
    elif is_ln_weight:
        values = 1.0 + rng.normal(0.0, 0.02, shape)
    else:
        values = rng.normal(0.0, 0.02, shape)
    return values.astype(np.float32)


def draw_fan_in(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Weights of a trained-looking scale, for the variant: N(0, 4/fan_in) for matrices (fan_in
    = `in` of a Linear `[out, in]`, `w·Cin` of a conv `[w, Cin, Cout]`), N(0, 1) embeddings,
    N(0, 0.3²) position tables, N(0, 0.1²) biases, 1 + N(0, 0.1²) layer-norm weights, N(0, 1)
    pair bias. With MODEL.md's N(0, 0.02²) every activation is tiny and the model almost linear,
    so a tanh GELU or an off-by-one padding changes outputs by less than the 1e-4 tolerance;
    these scales make such misreadings visible (measured: padding 3e-1, symmetric Hann 3e-3,
    tanh GELU 1.4e-4) while f32 rounding stays near 1e-6."""
    parts = name.split(".")
    if name == "fusion.pair_bias":
        values = rng.normal(0.0, 1.0, shape)
    elif parts[-1] == "weight" and parts[-2] in ("ln", "ln1", "ln2", "ln3"):
        values = 1.0 + rng.normal(0.0, 0.1, shape)
    elif parts[-1] in ("embed", "cls", "modality"):
        values = rng.normal(0.0, 1.0, shape)
    elif parts[-1] in ("pos", "time"):
        values = rng.normal(0.0, 0.3, shape)
    elif parts[-1] == "bias":
        values = rng.normal(0.0, 0.1, shape)
    elif len(shape) == 3:  # conv [w, Cin, Cout]
        values = rng.normal(0.0, 2.0 / np.sqrt(shape[0] * shape[1]), shape)
    else:  # Linear [out, in]
        values = rng.normal(0.0, 2.0 / np.sqrt(shape[1]), shape)
    return values.astype(np.float32)


def write_model(out: Path, seed: int = 0, config_toml: str = OMNI_SMALL_TOML, drawer=draw) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.toml").write_text(config_toml)
    cfg = tomllib.loads(config_toml)
    rng = np.random.default_rng(seed)
    shapes = weight_shapes(cfg)
    save_file({name: drawer(name, shapes[name], rng) for name in sorted(shapes)}, str(out / "model.safetensors"))
    load_model(out)  # the reference accepts what it wrote


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="model directory to write")
    ap.add_argument("--variant", action="store_true", help="the small all-options config, not omni-small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--list", action="store_true", help="print every tensor name and shape")
    args = ap.parse_args()
    config_toml = VARIANT_TOML if args.variant else OMNI_SMALL_TOML
    if args.list:
        shapes = weight_shapes(tomllib.loads(config_toml))
        for name in sorted(shapes):
            print(f"{name} {list(shapes[name])}")
        print(f"# {len(shapes)} tensors, {sum(int(np.prod(s)) for s in shapes.values())} parameters")
    if args.out:
        write_model(args.out, args.seed, config_toml, draw_fan_in if args.variant else draw)


if __name__ == "__main__":
    main()
