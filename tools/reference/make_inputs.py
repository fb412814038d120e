"""Deterministic test inputs for the model check (seeded numpy, stdlib writers, no PIL).

Writes into a directory:
- `texts.json`  — two UTF-8 strings (the first with non-ASCII characters), given via `--text`;
- `image.png`   — S×S RGB, 8-bit, unfiltered rows (stdlib zlib + struct);
- `audio.wav`   — 16 kHz mono 16-bit PCM, 20 900 samples ≈ 1.3 s (stdlib `wave`);
- `video.y4m`   — S×S `C420jpeg`, 11 frames.

`S` is `image.size` of the model's config, so images and frames need no resize. After writing,
each file is read back with the readers of `omni_forward` and compared with the arrays it was
written from, so the reference starts from exactly the drawn pixels and samples.

The video's YUV values are drawn so that no pixel's BT.601 R, G or B lies within 1e-3 of a
rounding tie (x.5): f32 (Rust) and f64 (reference) then round every pixel the same way.

    python make_inputs.py --out DIR [--size S]
"""

from __future__ import annotations

import argparse
import json
import struct
import wave
import zlib
from pathlib import Path

import numpy as np

from omni_forward import read_png, read_wav, read_y4m

SEED = 20261129
TEXTS = [
    "Omnifuse fuses modalities: café, naïve, Straße, 東京の夜, ✓ 🚀!",
    "A second, plain text input.",
]
SAMPLE_RATE = 16000
# 1.30625 s: F = 1 + floor(20500 / 160) = 129 log-mel frames (the floor drops a partial hop) and
# an odd F, so the stride-2 convolution's ceil(F / 2) = 65 is exercised too.
AUDIO_SAMPLES = 20900
VIDEO_FRAMES = 11
TIE_MARGIN = 1e-3


def png_bytes(rgb: np.ndarray) -> bytes:
    """8-bit RGB PNG, every row with filter 0 (none)."""
    height, width, _ = rgb.shape

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def draw_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth colour gradient with noise, `[S, S, 3]` u8."""
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    base = np.stack([255 * xx, 255 * yy, 255 * (1 - xx) * yy + 60 * np.sin(9 * xx)], axis=-1)
    return np.clip(base + rng.normal(0, 25, base.shape), 0, 255).round().astype(np.uint8)


def draw_audio(rng: np.random.Generator) -> np.ndarray:
    """~1.3 s of two tones, a chirp and noise as int16."""
    t = np.arange(AUDIO_SAMPLES) / SAMPLE_RATE
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.15 * np.sin(2 * np.pi * 1250 * t)
    x += 0.1 * np.sin(2 * np.pi * (200 + 1500 * t) * t) + 0.02 * rng.normal(size=t.size)
    return np.round(x * 32767).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.astype("<i2").tobytes())


def _bt601_near_tie(y: np.ndarray, u_full: np.ndarray, v_full: np.ndarray) -> np.ndarray:
    """Pixels whose R, G or B (MODEL.md BT.601 formulas) is within TIE_MARGIN of x.5."""
    c, d, e = y - 16.0, u_full - 128.0, v_full - 128.0
    rgb = [1.164383 * c + 1.596027 * e, 1.164383 * c - 0.391762 * d - 0.812968 * e, 1.164383 * c + 2.017232 * d]
    near = np.zeros(y.shape, dtype=bool)
    for ch in rgb:
        near |= np.abs(ch - np.floor(ch) - 0.5) < TIE_MARGIN
    return near


def draw_video(rng: np.random.Generator, size: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """11 frames of a moving pattern: Y `[S, S]`, U and V `[ceil(S/2), ceil(S/2)]`, u8."""
    half = (size + 1) // 2
    yy, xx = np.mgrid[0:size, 0:size]
    frames = []
    for f in range(VIDEO_FRAMES):
        luma = 16 + 219 * (0.5 + 0.5 * np.sin((xx + 7 * f) / 17.0) * np.cos((yy - 3 * f) / 23.0))
        y = np.clip(luma + rng.normal(0, 12, luma.shape), 0, 255).round()
        u = rng.integers(40, 216, (half, half)).astype(np.float64)
        v = rng.integers(40, 216, (half, half)).astype(np.float64)
        u_full, v_full = u[yy // 2, xx // 2], v[yy // 2, xx // 2]
        # Nudge the luma of near-tie pixels until no channel is near a rounding tie.
        for _ in range(100):
            near = _bt601_near_tie(y, u_full, v_full)
            if not near.any():
                break
            y[near] = np.where(y[near] < 128, y[near] + 1, y[near] - 1)
        else:
            raise RuntimeError("could not move every pixel away from a rounding tie")
        frames.append((y.astype(np.uint8), u.astype(np.uint8), v.astype(np.uint8)))
    return frames


def y4m_bytes(frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> bytes:
    height, width = frames[0][0].shape
    out = [f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\n".encode()]
    for y, u, v in frames:
        out += [b"FRAME\n", y.tobytes(), u.tobytes(), v.tobytes()]
    return b"".join(out)


def make_inputs(out: Path, size: int) -> dict:
    """Write the inputs (round-trip checked) and return their paths and texts."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    paths = {"image": out / "image.png", "audio": out / "audio.wav", "video": out / "video.y4m"}

    image = draw_image(rng, size)
    paths["image"].write_bytes(png_bytes(image))
    assert np.array_equal(read_png(paths["image"].read_bytes()), image), "PNG round trip"

    audio = draw_audio(rng)
    write_wav(paths["audio"], audio)
    pcm, rate = read_wav(paths["audio"])
    assert rate == SAMPLE_RATE and np.array_equal(pcm, audio / 32768.0), "WAV round trip"

    video = draw_video(rng, size)
    paths["video"].write_bytes(y4m_bytes(video))
    back, colour = read_y4m(paths["video"].read_bytes())
    assert colour == "420jpeg" and len(back) == len(video), "Y4M round trip (frames)"
    for (y, u, v), yuv in zip(video, back):
        rows = np.arange(size) // 2
        assert np.array_equal(yuv[..., 0], y), "Y4M round trip (luma)"
        assert np.array_equal(yuv[..., 1], u[np.ix_(rows, rows)]), "Y4M round trip (U)"
        assert np.array_equal(yuv[..., 2], v[np.ix_(rows, rows)]), "Y4M round trip (V)"

    (out / "texts.json").write_text(json.dumps(TEXTS, ensure_ascii=False), encoding="utf-8")
    return {"texts": list(TEXTS), **{k: str(v) for k, v in paths.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--size", type=int, default=224, help="image.size S of the model")
    args = ap.parse_args()
    print(json.dumps(make_inputs(args.out, args.size), ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
