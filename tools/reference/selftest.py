"""Checks of the numpy reference's own pieces, without the Rust side (a second, dumber way of
computing each thing, or a known answer). Run before comparing, so a reference bug is not
mistaken for a Rust one.

    python selftest.py [--model DIR]   # with a model directory, also a forward-pass smoke test
"""

from __future__ import annotations

import argparse
import math
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

import omni_forward as ref
from make_inputs import make_inputs


def check_log_mel_sine() -> None:
    """A 1 kHz sine: the power spectrum (naive DFT) peaks at bin 32 = 1000·512/16000, and the
    loudest mel band is the one whose triangle weighs bin 32 most."""
    rate = 16000
    t = np.arange(rate) / rate
    x = 0.5 * np.sin(2 * np.pi * 1000 * t)
    frame = np.zeros(ref.NFFT)
    frame[: ref.WIN] = x[: ref.WIN] * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(ref.WIN) / ref.WIN))
    k = np.arange(ref.NFFT // 2 + 1)
    dft = np.exp(-2j * np.pi * np.outer(k, np.arange(ref.NFFT)) / ref.NFFT) @ frame
    assert int(np.argmax(np.abs(dft))) == 32
    filters = ref.mel_filters()
    logmel = ref.log_mel(x, rate, {"audio": {"sample_rate": rate}, "limits": {"max_audio_seconds": 30}})
    assert logmel.shape == (1 + (rate - 400) // 160, 80)
    assert int(np.argmax(logmel.mean(axis=0))) == int(np.argmax(filters[:, 32]))
    # the first frame's band energies equal the naive DFT's
    naive = np.log(filters @ np.abs(dft) ** 2 + 1e-6)
    assert np.allclose(naive, logmel[0], rtol=0, atol=1e-9)
    # silence gives ln(1e-6) everywhere; short input is padded to one frame
    short = ref.log_mel(np.zeros(10), rate, {"audio": {"sample_rate": rate}, "limits": {"max_audio_seconds": 30}})
    assert short.shape == (1, 80) and np.allclose(short, math.log(1e-6))


def check_mel_filters() -> None:
    """HTK points: mel(700) = 2595·log10(2); every filter is a triangle with peak ≤ 1."""
    assert abs(ref.hz_to_mel(700.0) - 2595 * math.log10(2)) < 1e-9
    assert abs(ref.mel_to_hz(ref.hz_to_mel(1234.5)) - 1234.5) < 1e-9
    f = ref.mel_filters()
    assert f.shape == (80, 257) and f.min() == 0.0 and f.max() <= 1.0
    assert (f.sum(axis=1) > 0).all()  # no empty band at 512-point resolution


def check_conv1d_same() -> None:
    """Vectorised Conv1d_same against the formula written as loops, strides 1 and 2, odd and
    even widths."""
    rng = np.random.default_rng(1)
    for width, stride, length in [(3, 1, 7), (5, 1, 4), (3, 2, 9), (4, 2, 6), (7, 1, 2)]:
        x = rng.normal(size=(length, 3))
        w = {"c.weight": rng.normal(size=(width, 3, 2)), "c.bias": rng.normal(size=2)}
        got = ref.conv1d_same(x, ref.Params(w, "c"), stride)
        out_len = math.ceil(length / stride)
        want = np.tile(w["c.bias"], (out_len, 1))
        for t in range(out_len):
            for r in range(width):
                src = t * stride + r - (width - 1) // 2
                if 0 <= src < length:
                    for c in range(3):
                        want[t] += x[src, c] * w["c.weight"][r, c]
        assert got.shape == want.shape and np.allclose(got, want, atol=1e-12), (width, stride, length)


def check_primitives() -> None:
    assert abs(ref.gelu(np.array([1.0]))[0] - 0.8413447460685429) < 1e-15
    x = np.array([[1.0, 2.0, 4.0]])
    p = ref.Params({"n.weight": np.ones(3), "n.bias": np.zeros(3)}, "n")
    y = ref.layer_norm(x, p, 0.0)
    assert np.allclose(y.mean(), 0) and np.allclose((y**2).mean(), 1)  # biased variance
    assert abs(ref.log_softmax(np.array([0.0, math.log(3.0)]))[1] - math.log(0.75)) < 1e-15
    # one head, one query: attention weights from softmax(q·k/√d)
    q, k, v = np.array([[1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 0.0], [0.0, 2.0]])
    a = math.exp(1 / math.sqrt(2)) / (math.exp(1 / math.sqrt(2)) + 1)
    assert np.allclose(ref.multi_head(q, k, v, 1), [[a, 2 * (1 - a)]])


def check_text_and_video_rules() -> None:
    cfg = {"limits": {"max_text_tokens": 8}}
    assert ref.text_tokens("é!", cfg).tolist() == [256, 0xC3, 0xA9, 0x21]
    for bad in ["", " \t\n", "123456789"]:
        try:
            ref.text_tokens(bad, cfg)
            raise AssertionError(f"{bad!r} accepted")
        except ref.InputError:
            pass
    assert ref.sample_frame_indices(11, 8) == [0, 2, 3, 4, 6, 7, 8, 10]
    assert ref.sample_frame_indices(3, 8) == [0, 1, 2]
    assert ref.sample_frame_indices(16, 8) == [1, 3, 5, 7, 9, 11, 13, 15]
    yuv = np.array([[[16, 128, 128], [235, 128, 128], [0, 128, 128], [81, 90, 240]]], dtype=np.uint8)
    # black, white (254.99988 → 255), clamped, and BT.601 red (~255, 0, 0)
    rgb = ref.yuv_to_rgb(yuv)[0].tolist()
    assert rgb[:3] == [[0, 0, 0], [255, 255, 255], [0, 0, 0]] and rgb[3][0] >= 254 and rgb[3][1:] == [0, 0]


def check_png_filters() -> None:
    """The reader undoes all five PNG row filters (our writer only uses filter 0)."""
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    flat = img.reshape(5, 12).astype(np.int64)
    rows = []
    for y in range(5):
        prev = flat[y - 1] if y else np.zeros(12, dtype=np.int64)
        left = np.concatenate([np.zeros(3, dtype=np.int64), flat[y, :-3]])
        upleft = np.concatenate([np.zeros(3, dtype=np.int64), prev[:-3]])
        filt = y  # rows use filters 0, 1, 2, 3, 4
        if filt == 4:
            pa, pb, pc = abs(prev - upleft), abs(left - upleft), abs(left + prev - 2 * upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        else:
            pred = [np.zeros(12, dtype=np.int64), left, prev, (left + prev) // 2][filt]
        rows.append(bytes([filt]) + ((flat[y] - pred) & 255).astype(np.uint8).tobytes())

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 5, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")
    assert np.array_equal(ref.read_png(png), img)


def check_forward(model_dir: str) -> None:
    """Smoke test: every input kind through the whole model, outputs well formed."""
    m = ref.load_model(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        inp = make_inputs(Path(tmp), m.cfg["image"]["size"])
        inputs = [ref.read_input(m.cfg, text=inp["texts"][0])]
        inputs += [ref.read_input(m.cfg, path=inp[k]) for k in ("image", "audio", "video")]
    out = ref.forward(m, inputs)
    assert [i["modality"] for i in out["inputs"]] == ["text", "image", "audio", "video"]
    n_text = 1 + len(inp["texts"][0].encode())
    assert [i["tokens"] for i in out["inputs"]] == [n_text, m.cfg["image"]["size"] ** 2 // m.cfg["image"]["patch"] ** 2 + 1,
                                                     (1 + (20900 - 400) // 160 + 1) // 2, m.cfg["video"]["frames"]]
    for h in out["heads"].values():
        if h["kind"] == "classification":
            assert abs(sum(h["probabilities"]) - 1) < 1e-12
        elif h["kind"] == "retrieval":
            for v in [h["fused"], *h["inputs"]]:
                assert abs(np.linalg.norm(v) - 1) < 1e-12
        else:
            assert all(lp <= 0 for lp in h["logprobs"]) and len(h["tokens"]) == len(h["logprobs"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model directory for the forward smoke test")
    args = ap.parse_args()
    checks = [check_log_mel_sine, check_mel_filters, check_conv1d_same, check_primitives,
              check_text_and_video_rules, check_png_filters]
    if args.model:
        checks.append(lambda: check_forward(args.model))
    for check in checks:
        check()
    print(f"reference self-test: {len(checks)} checks ok")


if __name__ == "__main__":
    main()
