"""Golden float64 numpy reference of the omnifuse model.

This module recomputes, independently of the Rust crate `crates/model`, everything that
`crates/model/MODEL.md` defines: preprocessing from raw inputs (byte tokens, PNG pixels, WAV
samples → log-mel, Y4M frames → RGB, frame sampling), the four encoders, the fusion transformer
and every head (classification, retrieval, greedy generation). It works in float64 throughout
(MODEL.md says f32; the reference is more exact than the thing it checks, so the difference is
the Rust side's rounding only).

Use as a library (`load_model`, `read_input`, `forward`) from `check_model.py`, or on its own:

    python omni_forward.py --model DIR [--text "..."]... [FILE]...

which prints a JSON object shaped like `omnifuse run --json` (texts first, then files).

Only what the checks need is implemented: images must already be S×S (the resize filters are
not reproduced), audio must already be at `audio.sample_rate` (no resampling), PNGs must be
8-bit RGB non-interlaced. Anything else raises `NotImplementedError` rather than guessing.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
import tomllib
import wave
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

# Byte-level vocabulary (MODEL.md "Preprocessing / Text").
BYTE_VOCAB = 259
BOS = 256  # also [CLS]
EOS = 257
PAD = 258
# Modality ids (MODEL.md "Modalities").
MODALITY_ID = {"text": 0, "image": 1, "audio": 2, "video": 3}
# Audio front end constants (MODEL.md "Preprocessing / Audio").
MELS = 80
WIN = 400
HOP = 160
NFFT = 512
MEL_RATE = 16000  # the filter bank is defined for 16 kHz: f = k·16000/512, mel(0)..mel(8000)


class InputError(ValueError):
    """An input that MODEL.md says is an error (empty text, too long, malformed file...)."""


# ---------------------------------------------------------------------------------------------
# Weights: the exact list of tensors a config implies (MODEL.md "Weights").
# ---------------------------------------------------------------------------------------------


def _linear(shapes: dict, name: str, out: int, inp: int, bias: bool = True) -> None:
    """`Linear(x; name)`: weight `[out, in]` (+ bias `[out]` unless it is a `Linear₀`)."""
    shapes[f"{name}.weight"] = (out, inp)
    if bias:
        shapes[f"{name}.bias"] = (out,)


def _layer_norm(shapes: dict, name: str, width: int) -> None:
    shapes[f"{name}.weight"] = (width,)
    shapes[f"{name}.bias"] = (width,)


def _block(shapes: dict, name: str, width: int, mlp_ratio: int) -> None:
    """A pre-LN `Block` (MODEL.md "Blocks"): ln1, attn.{qkv,out}, ln2, mlp.{fc1,fc2}."""
    _layer_norm(shapes, f"{name}.ln1", width)
    _linear(shapes, f"{name}.attn.qkv", 3 * width, width)
    _linear(shapes, f"{name}.attn.out", width, width)
    _layer_norm(shapes, f"{name}.ln2", width)
    _linear(shapes, f"{name}.mlp.fc1", mlp_ratio * width, width)
    _linear(shapes, f"{name}.mlp.fc2", width, mlp_ratio * width)


def _decoder_block(shapes: dict, name: str, width: int, mlp_ratio: int) -> None:
    """A generation decoder block (MODEL.md "Layer 3 / generation")."""
    _layer_norm(shapes, f"{name}.ln1", width)
    _linear(shapes, f"{name}.self.qkv", 3 * width, width)
    _linear(shapes, f"{name}.self.out", width, width)
    _layer_norm(shapes, f"{name}.ln2", width)
    _linear(shapes, f"{name}.cross.q", width, width)
    _linear(shapes, f"{name}.cross.kv", 2 * width, width)
    _linear(shapes, f"{name}.cross.out", width, width)
    _layer_norm(shapes, f"{name}.ln3", width)
    _linear(shapes, f"{name}.mlp.fc1", mlp_ratio * width, width)
    _linear(shapes, f"{name}.mlp.fc2", width, mlp_ratio * width)


def weight_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Every tensor name the config implies, with its shape (all f32 in the file)."""
    s: dict[str, tuple[int, ...]] = {}
    d = cfg["model"]["width"]
    # Text encoder (textcnn).
    tx = cfg["text"]
    s["text.embed"] = (tx["vocab"], tx["embed"])
    for i, w in enumerate(tx["widths"]):
        s[f"text.conv.{i}.weight"] = (w, tx["embed"], tx["channels"])
        s[f"text.conv.{i}.bias"] = (tx["channels"],)
    _linear(s, "text.proj", d, tx["channels"] * len(tx["widths"]))
    # Image ViT (also the per-frame video encoder).
    im = cfg["image"]
    wi, p = im["width"], im["patch"]
    n_patches = (im["size"] // p) ** 2
    _linear(s, "image.patch", wi, p * p * 3)
    s["image.cls"] = (wi,)
    s["image.pos"] = (n_patches + 1, wi)
    for layer in range(im["layers"]):
        _block(s, f"image.blocks.{layer}", wi, im["mlp_ratio"])
    _layer_norm(s, "image.ln", wi)
    _linear(s, "image.proj", d, wi)
    # Audio encoder.
    au = cfg["audio"]
    wa = au["width"]
    s["audio.conv1.weight"] = (3, MELS, wa)
    s["audio.conv1.bias"] = (wa,)
    s["audio.conv2.weight"] = (3, wa, wa)
    s["audio.conv2.bias"] = (wa,)
    s["audio.pos"] = (au["max_positions"], wa)
    for layer in range(au["layers"]):
        _block(s, f"audio.blocks.{layer}", wa, au["mlp_ratio"])
    _layer_norm(s, "audio.ln", wa)
    _linear(s, "audio.proj", d, wa)
    # Video: frame-time table and projection (frames go through the image ViT).
    s["video.time"] = (cfg["video"]["frames"], wi)
    _linear(s, "video.proj", d, wi)
    # Fusion.
    fu = cfg["fusion"]
    s["fusion.modality"] = (len(MODALITY_ID), d)
    s["fusion.pos"] = (fu["max_positions"], d)
    for layer in range(fu["layers"]):
        _block(s, f"fusion.blocks.{layer}", d, fu["mlp_ratio"])
    if fu["pair_bias"]:
        s["fusion.pair_bias"] = (fu["heads"], len(MODALITY_ID), len(MODALITY_ID))
    _layer_norm(s, "fusion.ln", d)
    # Heads.
    for h in cfg["heads"]:
        name = f"heads.{h['name']}"
        if h["kind"] == "classification":
            _linear(s, name, len(h["labels"]), d)
        elif h["kind"] == "retrieval":
            _linear(s, name, h["dim"], d, bias=False)
        elif h["kind"] == "generation":
            s[f"{name}.embed"] = (BYTE_VOCAB, d)
            s[f"{name}.pos"] = (h["max_positions"], d)
            for layer in range(h["layers"]):
                _decoder_block(s, f"{name}.blocks.{layer}", d, h["mlp_ratio"])
            _layer_norm(s, f"{name}.ln", d)
            _linear(s, f"{name}.lm", BYTE_VOCAB, d)
        else:
            raise ValueError(f"head {h['name']}: unknown kind {h['kind']!r}")
    return s


# ---------------------------------------------------------------------------------------------
# Model directory.
# ---------------------------------------------------------------------------------------------


@dataclass
class Model:
    cfg: dict
    w: dict[str, np.ndarray]  # float64 copies of the f32 tensors

    @property
    def eps(self) -> float:
        return float(self.cfg["model"]["eps"])

    def p(self, prefix: str) -> "Params":
        return Params(self.w, prefix)


class Params:
    """A view of the weights under a name prefix: `p["ln1.weight"]`, `p.sub("attn")`."""

    def __init__(self, w: dict[str, np.ndarray], prefix: str):
        self.w, self.prefix = w, prefix

    def __getitem__(self, key: str) -> np.ndarray:
        return self.w[f"{self.prefix}.{key}"]

    def sub(self, key: str) -> "Params":
        return Params(self.w, f"{self.prefix}.{key}")


def load_model(directory: str | Path) -> Model:
    """Read `config.toml` and `model.safetensors`; the tensor set must match exactly."""
    directory = Path(directory)
    with open(directory / "config.toml", "rb") as f:
        cfg = tomllib.load(f)
    raw = load_file(str(directory / "model.safetensors"))
    expected = weight_shapes(cfg)
    missing = sorted(set(expected) - set(raw))
    extra = sorted(set(raw) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing tensors: {missing}")
    if extra:
        problems.append(f"extra tensors: {extra}")
    for name in sorted(set(expected) & set(raw)):
        t = raw[name]
        if tuple(t.shape) != expected[name] or t.dtype != np.float32:
            problems.append(f"{name}: {t.dtype}{list(t.shape)}, expected float32{list(expected[name])}")
    if problems:
        raise ValueError(f"{directory}/model.safetensors does not match config.toml: " + "; ".join(problems))
    return Model(cfg, {k: v.astype(np.float64) for k, v in raw.items()})


# ---------------------------------------------------------------------------------------------
# Small file readers (stdlib only): PNG, WAV, Y4M.
# ---------------------------------------------------------------------------------------------


def read_png(data: bytes) -> np.ndarray:
    """8-bit RGB non-interlaced PNG → `[H, W, 3]` uint8 (all five row filters handled)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise InputError("not a PNG")
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, color, _, _, interlace = header
    if (depth, color, interlace) != (8, 2, 0):
        raise NotImplementedError("the reference reads only 8-bit RGB non-interlaced PNGs")
    raw = zlib.decompress(b"".join(idat))
    stride = width * 3
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.int64)
    prev = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        filt, line = rows[y, 0], rows[y, 1:].astype(np.int64)
        if filt == 0:
            cur = line
        elif filt == 2:  # Up
            cur = (line + prev) & 255
        else:  # Sub, Average, Paeth depend on the reconstructed left byte: go byte by byte
            cur = np.zeros(stride, dtype=np.int64)
            for i in range(stride):
                a = cur[i - 3] if i >= 3 else 0
                b, c = prev[i], (prev[i - 3] if i >= 3 else 0)
                if filt == 1:
                    pred = a
                elif filt == 3:
                    pred = (a + b) // 2
                elif filt == 4:
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                else:
                    raise InputError(f"bad PNG filter {filt}")
                cur[i] = (line[i] + pred) & 255
        out[y], prev = cur, cur
    return out.reshape(height, width, 3).astype(np.uint8)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """RIFF/WAVE PCM → (mono float64 samples in [-1, 1], sample rate).

    MODEL.md: integer samples divide by 2^(bits−1); several channels are averaged.
    """
    with wave.open(str(path), "rb") as w:
        channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
        frames = w.readframes(n)
    if width == 2:
        x = np.frombuffer(frames, dtype="<i2").astype(np.float64) / 2.0**15
    elif width == 4:
        x = np.frombuffer(frames, dtype="<i4").astype(np.float64) / 2.0**31
    else:
        raise NotImplementedError(f"the reference reads 16- and 32-bit PCM WAV only, not {8 * width}-bit")
    return x.reshape(-1, channels).mean(axis=1), rate


def read_y4m(data: bytes) -> tuple[list[np.ndarray], str]:
    """Y4M → (list of `[H, W, 3]` uint8 YUV frames with chroma already sampled, colour space).

    4:2:0 chroma (planes of ceil(W/2) × ceil(H/2)) is sampled at (y/2, x/2), nearest
    (MODEL.md "Preprocessing / Video"); a frame whose size does not match the header is an error.
    """
    end = data.index(b"\n")
    fields = data[:end].split(b" ")
    if fields[0] != b"YUV4MPEG2":
        raise InputError("not a Y4M stream")
    params = {f[:1].decode(): f[1:].decode() for f in fields[1:] if f}
    width, height = int(params["W"]), int(params["H"])
    colour = params.get("C", "420jpeg")
    if colour in ("420jpeg", "420paldv", "420mpeg2", "420"):
        cw, ch = (width + 1) // 2, (height + 1) // 2
    elif colour == "444":
        cw, ch = width, height
    else:
        raise InputError(f"Y4M colour space C{colour} is not supported")
    frame_bytes = width * height + 2 * cw * ch
    frames, pos = [], end + 1
    while pos < len(data):
        line_end = data.index(b"\n", pos)
        if not data[pos:line_end].startswith(b"FRAME"):
            raise InputError("Y4M frame header expected")
        pos = line_end + 1
        body = np.frombuffer(data[pos : pos + frame_bytes], dtype=np.uint8)
        if body.size != frame_bytes:
            raise InputError(f"Y4M frame has {body.size} bytes, header implies {frame_bytes}")
        pos += frame_bytes
        y = body[: width * height].reshape(height, width)
        u = body[width * height : width * height + cw * ch].reshape(ch, cw)
        v = body[width * height + cw * ch :].reshape(ch, cw)
        if colour != "444":
            rows, cols = np.arange(height) // 2, np.arange(width) // 2
            u, v = u[np.ix_(rows, cols)], v[np.ix_(rows, cols)]
        frames.append(np.stack([y, u, v], axis=-1))
    return frames, colour


# ---------------------------------------------------------------------------------------------
# Preprocessing (MODEL.md "Preprocessing").
# ---------------------------------------------------------------------------------------------


def text_tokens(text: str, cfg: dict) -> np.ndarray:
    """`[256] + bytes(text)`; empty / whitespace-only and over-long texts are errors."""
    if not text.strip():
        raise InputError("empty text")
    ids = np.array([BOS] + list(text.encode("utf-8")), dtype=np.int64)
    if ids.size > cfg["limits"]["max_text_tokens"]:
        raise InputError(f"text has {ids.size} tokens, limit {cfg['limits']['max_text_tokens']}")
    return ids


def image_pixels(rgb: np.ndarray, cfg: dict) -> np.ndarray:
    """`[S, S, 3]` u8 → `(u8 / 255 − mean[c]) / std[c]` as float64."""
    im = cfg["image"]
    size = im["size"]
    h, w, _ = rgb.shape
    if h * w > cfg["limits"]["max_pixels"]:
        raise InputError("image too large")
    if (h, w) != (size, size):
        raise NotImplementedError(f"the reference does not resize: image is {w}×{h}, model wants {size}×{size}")
    mean, std = np.array(im["mean"], dtype=np.float64), np.array(im["std"], dtype=np.float64)
    return (rgb.astype(np.float64) / 255.0 - mean) / std


def yuv_to_rgb(yuv: np.ndarray) -> np.ndarray:
    """BT.601 limited range → RGB u8: each channel rounded to nearest (ties away from zero) and
    clamped to 0..=255 (MODEL.md "Preprocessing / Video")."""
    c = yuv[..., 0].astype(np.float64) - 16.0
    d = yuv[..., 1].astype(np.float64) - 128.0
    e = yuv[..., 2].astype(np.float64) - 128.0
    r = 1.164383 * c + 1.596027 * e
    g = 1.164383 * c - 0.391762 * d - 0.812968 * e
    b = 1.164383 * c + 2.017232 * d
    rgb = np.stack([r, g, b], axis=-1)
    rounded = np.sign(rgb) * np.floor(np.abs(rgb) + 0.5)  # half away from zero, like f32::round
    return np.clip(rounded, 0, 255).astype(np.uint8)


def sample_frame_indices(total: int, wanted: int) -> list[int]:
    """`N = min(video.frames, T)` indices `floor((i + 0.5)·T / N)`, in exact integer arithmetic."""
    n = min(wanted, total)
    return [((2 * i + 1) * total) // (2 * n) for i in range(n)]


def hz_to_mel(f):
    """HTK mel scale: `mel(f) = 2595·log10(1 + f/700)`."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filters() -> np.ndarray:
    """`[80, 257]` triangular filters: 82 points equally spaced in mel from mel(0) to mel(8000);
    filter j at bin k (f = k·16000/512) is max(0, min(rising, falling))."""
    f_pts = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(MEL_RATE / 2), MELS + 2))
    f_bin = np.arange(NFFT // 2 + 1) * MEL_RATE / NFFT
    lo, mid, hi = f_pts[:-2, None], f_pts[1:-1, None], f_pts[2:, None]
    rising = (f_bin[None, :] - lo) / (mid - lo)
    falling = (hi - f_bin[None, :]) / (hi - mid)
    return np.maximum(0.0, np.minimum(rising, falling))


def log_mel(pcm: np.ndarray, rate: int, cfg: dict) -> np.ndarray:
    """Mono samples in [-1, 1] → log-mel `[F, 80]` (MODEL.md "Preprocessing / Audio")."""
    if rate != cfg["audio"]["sample_rate"]:
        raise NotImplementedError(f"the reference does not resample ({rate} Hz → {cfg['audio']['sample_rate']} Hz)")
    if pcm.size == 0:
        raise InputError("empty audio")
    if pcm.size / rate > cfg["limits"]["max_audio_seconds"]:
        raise InputError("audio too long")
    x = np.asarray(pcm, dtype=np.float64)
    if x.size < WIN:
        x = np.concatenate([x, np.zeros(WIN - x.size)])
    n_frames = 1 + (x.size - WIN) // HOP
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WIN) / WIN)  # periodic Hann
    frames = np.stack([x[HOP * t : HOP * t + WIN] for t in range(n_frames)]) * hann
    power = np.abs(np.fft.rfft(frames, n=NFFT, axis=1)) ** 2  # zero-padded to 512, k = 0..=256
    return np.log(power @ mel_filters().T + 1e-6)


# ---------------------------------------------------------------------------------------------
# Requests: raw inputs → preprocessed arrays.
# ---------------------------------------------------------------------------------------------


@dataclass
class Input:
    modality: str  # text | image | audio | video
    data: np.ndarray  # token ids | [S,S,3] pixels | [F,80] log-mel | [N,S,S,3] frames


def sniff(data: bytes) -> str:
    """Modality of a file by its magic bytes."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" or data[:3] == b"\xff\xd8\xff":
        return "image"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio"
    if data[:10] == b"YUV4MPEG2 ":
        return "video"
    raise InputError("unknown file type")


def read_input(cfg: dict, text: str | None = None, path: str | Path | None = None) -> Input:
    """One request input, from a text or from a file (PNG / WAV / Y4M)."""
    if text is not None:
        return Input("text", text_tokens(text, cfg))
    data = Path(path).read_bytes()
    modality = sniff(data)
    if modality == "image":
        if data[:3] == b"\xff\xd8\xff":
            raise NotImplementedError("the reference does not decode JPEG")
        return Input("image", image_pixels(read_png(data), cfg))
    if modality == "audio":
        pcm, rate = read_wav(path)
        return Input("audio", log_mel(pcm, rate, cfg))
    yuv_frames, _ = read_y4m(data)
    if not yuv_frames:
        raise InputError("video without frames")
    if len(yuv_frames) > cfg["limits"]["max_video_frames"]:
        raise InputError("video has too many frames")
    picked = sample_frame_indices(len(yuv_frames), cfg["video"]["frames"])
    return Input("video", np.stack([image_pixels(yuv_to_rgb(yuv_frames[i]), cfg) for i in picked]))


# ---------------------------------------------------------------------------------------------
# Primitives (MODEL.md notation).
# ---------------------------------------------------------------------------------------------

_erf = np.frompyfunc(math.erf, 1, 1)


def linear(x: np.ndarray, p: Params, bias: bool = True) -> np.ndarray:
    """`Linear(x; p) = x · p.weightᵀ + p.bias` (`Linear₀` without the bias)."""
    y = x @ p["weight"].T
    return y + p["bias"] if bias else y


def layer_norm(x: np.ndarray, p: Params, eps: float) -> np.ndarray:
    """LN over the last axis, biased variance."""
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * p["weight"] + p["bias"]


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU: `0.5·x·(1 + erf(x/√2))`."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max()
    return x - m - math.log(np.exp(x - m).sum())


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def conv1d_same(x: np.ndarray, p: Params, stride: int) -> np.ndarray:
    """`Conv1d_same` (MODEL.md "Layer 1 / text"): weight `[w, Cin, Cout]`, output length
    ceil(L/s), `out[t,o] = bias[o] + Σ_r Σ_c x[t·s + r − (w−1)/2, c]·weight[r,c,o]`, zero outside."""
    weight, bias = p["weight"], p["bias"]
    width = weight.shape[0]
    length = x.shape[0]
    out_len = -(-length // stride)
    pad = (width - 1) // 2
    out = np.tile(bias, (out_len, 1))
    t = np.arange(out_len)
    for r in range(width):
        src = t * stride + r - pad
        ok = (src >= 0) & (src < length)
        out[ok] += x[src[ok]] @ weight[r]
    return out


def multi_head(q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int, bias=None) -> np.ndarray:
    """Per head `softmax(q·kᵀ / sqrt(W/H) + bias)·v`; q `[Tq, W]`, k/v `[Tk, W]`, bias
    broadcastable to `[H, Tq, Tk]` (−inf masks)."""
    tq, width = q.shape
    dh = width // heads
    qh = q.reshape(tq, heads, dh).transpose(1, 0, 2)
    kh = k.reshape(-1, heads, dh).transpose(1, 0, 2)
    vh = v.reshape(-1, heads, dh).transpose(1, 0, 2)
    logits = qh @ kh.transpose(0, 2, 1) / math.sqrt(dh)
    if bias is not None:
        logits = logits + bias
    return (softmax(logits) @ vh).transpose(1, 0, 2).reshape(tq, width)


def self_attention(x: np.ndarray, p: Params, heads: int, bias=None) -> np.ndarray:
    """`Attn(x; p, H)` on one sequence: qkv columns 0..W q, W..2W k, 2W..3W v; then `p.out`."""
    width = x.shape[1]
    qkv = linear(x, p.sub("qkv"))
    q, k, v = qkv[:, :width], qkv[:, width : 2 * width], qkv[:, 2 * width :]
    return linear(multi_head(q, k, v, heads, bias), p.sub("out"))


def mlp(x: np.ndarray, p: Params) -> np.ndarray:
    return linear(gelu(linear(x, p.sub("fc1"))), p.sub("fc2"))


def block(x: np.ndarray, p: Params, heads: int, eps: float, bias=None) -> np.ndarray:
    """Pre-LN `Block` (MODEL.md "Blocks")."""
    x = x + self_attention(layer_norm(x, p.sub("ln1"), eps), p.sub("attn"), heads, bias)
    return x + mlp(layer_norm(x, p.sub("ln2"), eps), p.sub("mlp"))


# ---------------------------------------------------------------------------------------------
# Layer 1: encoders.
# ---------------------------------------------------------------------------------------------


def encode_text(m: Model, ids: np.ndarray) -> np.ndarray:
    """textcnn: embed, one ReLU same-conv per width, concat in `widths` order, project."""
    e = m.w["text.embed"][ids]
    branches = [relu(conv1d_same(e, m.p(f"text.conv.{i}"), 1)) for i in range(len(m.cfg["text"]["widths"]))]
    return linear(np.concatenate(branches, axis=1), m.p("text.proj"))


def vit(m: Model, pixels: np.ndarray) -> np.ndarray:
    """Image ViT up to and including `image.ln` → `h [Np + 1, Wi]` (CLS first)."""
    im = m.cfg["image"]
    size, patch = im["size"], im["patch"]
    side = size // patch
    # patches in row-major order, each flattened in (row, column, channel) order
    patches = pixels.reshape(side, patch, side, patch, 3).transpose(0, 2, 1, 3, 4).reshape(side * side, -1)
    x = linear(patches, m.p("image.patch"))
    x = np.concatenate([m.w["image.cls"][None, :], x], axis=0) + m.w["image.pos"]
    for layer in range(im["layers"]):
        x = block(x, m.p(f"image.blocks.{layer}"), im["heads"], m.eps)
    return layer_norm(x, m.p("image.ln"), m.eps)


def encode_image(m: Model, pixels: np.ndarray) -> np.ndarray:
    return linear(vit(m, pixels), m.p("image.proj"))


def encode_audio(m: Model, logmel: np.ndarray) -> np.ndarray:
    """Two GELU same-convs (stride 1 then 2), positions, blocks, LN, projection."""
    au = m.cfg["audio"]
    a = gelu(conv1d_same(logmel, m.p("audio.conv1"), 1))
    a = gelu(conv1d_same(a, m.p("audio.conv2"), 2))
    if a.shape[0] > au["max_positions"]:
        raise InputError("audio longer than audio.max_positions")
    a = a + m.w["audio.pos"][: a.shape[0]]
    for layer in range(au["layers"]):
        a = block(a, m.p(f"audio.blocks.{layer}"), au["heads"], m.eps)
    return linear(layer_norm(a, m.p("audio.ln"), m.eps), m.p("audio.proj"))


def encode_video(m: Model, frames: np.ndarray) -> np.ndarray:
    """Each frame through the ViT separately; final CLS rows + `video.time`; projection."""
    cls = np.stack([vit(m, frame)[0] for frame in frames])
    return linear(cls + m.w["video.time"][: cls.shape[0]], m.p("video.proj"))


ENCODERS = {"text": encode_text, "image": encode_image, "audio": encode_audio, "video": encode_video}


# ---------------------------------------------------------------------------------------------
# Layer 2: fusion.
# ---------------------------------------------------------------------------------------------


def fuse(m: Model, token_lists: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Concatenate in request order, add modality and position-within-input rows, run the fusion
    blocks with the per-(query, key) modality pair bias, final LN → `Z [T, D]`."""
    fu = m.cfg["fusion"]
    x = np.concatenate([t for _, t in token_lists], axis=0)
    mod = np.concatenate([np.full(t.shape[0], MODALITY_ID[k]) for k, t in token_lists])
    pos = np.concatenate([np.arange(t.shape[0]) for _, t in token_lists])
    if pos.max() >= fu["max_positions"]:
        raise InputError("an input gives more tokens than fusion.max_positions")
    x = x + m.w["fusion.modality"][mod] + m.w["fusion.pos"][pos]
    bias = m.w["fusion.pair_bias"][:, mod[:, None], mod[None, :]] if fu["pair_bias"] else None  # [H, T, T]
    for layer in range(fu["layers"]):
        x = block(x, m.p(f"fusion.blocks.{layer}"), fu["heads"], m.eps, bias)
    return layer_norm(x, m.p("fusion.ln"), m.eps)


# ---------------------------------------------------------------------------------------------
# Layer 3: heads.
# ---------------------------------------------------------------------------------------------


def normalise(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def classify(m: Model, head: dict, z: np.ndarray) -> dict:
    g = z.mean(axis=0) if head["pool"] == "mean" else z[0]
    probs = softmax(linear(g, m.p(f"heads.{head['name']}")))
    best = int(np.argmax(probs))  # lowest index on ties
    return {"kind": "classification", "label": head["labels"][best], "labels": list(head["labels"]),
            "probabilities": probs.tolist()}


def retrieve(m: Model, head: dict, z: np.ndarray, spans: list[tuple[int, int]]) -> dict:
    p = m.p(f"heads.{head['name']}")
    fused = normalise(linear(z.mean(axis=0), p, bias=False))
    per_input = [normalise(linear(z[a:b].mean(axis=0), p, bias=False)) for a, b in spans]
    return {"kind": "retrieval", "fused": fused.tolist(), "inputs": [v.tolist() for v in per_input]}


def decode_step(m: Model, head: dict, z: np.ndarray, tokens: list[int]) -> np.ndarray:
    """Logits `[259]` after the last of `tokens`. The whole prefix is recomputed with a causal
    mask (mathematically what a KV cache gives, and independent of how Rust caches)."""
    p = m.p(f"heads.{head['name']}")
    d, heads, t = m.cfg["model"]["width"], head["heads"], len(tokens)
    x = p["embed"][tokens] + p["pos"][:t]
    causal = np.where(np.tril(np.ones((t, t), dtype=bool)), 0.0, -np.inf)
    for layer in range(head["layers"]):
        b = p.sub(f"blocks.{layer}")
        x = x + self_attention(layer_norm(x, b.sub("ln1"), m.eps), b.sub("self"), heads, causal)
        q = linear(layer_norm(x, b.sub("ln2"), m.eps), b.sub("cross.q"))
        kv = linear(z, b.sub("cross.kv"))
        x = x + linear(multi_head(q, kv[:, :d], kv[:, d:], heads), b.sub("cross.out"))
        x = x + mlp(layer_norm(x, b.sub("ln3"), m.eps), b.sub("mlp"))
    return linear(layer_norm(x[-1], p.sub("ln"), m.eps), p.sub("lm"))


def generate(m: Model, head: dict, z: np.ndarray, max_tokens: int | None = None) -> dict:
    """Greedy decoding from `[BOS]`; stops after `max_tokens` or at `[EOS]` (not emitted).
    Besides the output fields, `margins[t]` is the gap between the top two logits of step t
    (one entry per step taken, the EOS step included) for the near-tie rule of the checker."""
    max_tokens = head["max_tokens"] if max_tokens is None else max_tokens
    seq, out, logprobs, margins = [BOS], [], [], []
    for _ in range(max_tokens):
        logits = decode_step(m, head, z, seq)
        nxt = int(np.argmax(logits))  # lowest id on ties
        top2 = np.sort(logits)[-2:]
        margins.append(float(top2[1] - top2[0]))
        if nxt == EOS:
            break
        out.append(nxt)
        logprobs.append(float(log_softmax(logits)[nxt]))
        seq.append(nxt)
    text = bytes(t for t in out if t < 256).decode("utf-8", errors="replace")
    return {"kind": "generation", "tokens": out, "text": text, "logprobs": logprobs, "margins": margins}


def forward(m: Model, inputs: list[Input]) -> dict:
    """The whole pass: encoders → fusion → every head, in config order."""
    if not inputs:
        raise InputError("empty request")
    if len(inputs) > m.cfg["limits"]["max_inputs"]:
        raise InputError("too many inputs")
    token_lists = [(inp.modality, ENCODERS[inp.modality](m, inp.data)) for inp in inputs]
    z = fuse(m, token_lists)
    spans, start = [], 0
    for _, t in token_lists:
        spans.append((start, start + t.shape[0]))
        start += t.shape[0]
    heads = {}
    for head in m.cfg["heads"]:
        if head["kind"] == "classification":
            heads[head["name"]] = classify(m, head, z)
        elif head["kind"] == "retrieval":
            heads[head["name"]] = retrieve(m, head, z, spans)
        else:
            heads[head["name"]] = generate(m, head, z)
    return {"model": m.cfg["model"]["name"], "backend": "numpy-f64",
            "inputs": [{"modality": k, "tokens": int(t.shape[0])} for k, t in token_lists], "heads": heads}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="model directory (config.toml + model.safetensors)")
    ap.add_argument("--text", action="append", default=[], help="a text input (all texts come first)")
    ap.add_argument("files", nargs="*", help="PNG / WAV / Y4M inputs, in order")
    args = ap.parse_args()
    m = load_model(args.model)
    inputs = [read_input(m.cfg, text=t) for t in args.text] + [read_input(m.cfg, path=f) for f in args.files]
    json.dump(forward(m, inputs), sys.stdout)
    print()


if __name__ == "__main__":
    main()
