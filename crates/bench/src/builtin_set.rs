//! The built-in accuracy set: seeded requests with structured content, in near-duplicate
//! pairs, so that retrieval has a right answer.
//!
//! Why not the benchmark workload: its images are white noise and its audio pure tones, which
//! is fine for timing but not for accuracy. Noise images all look alike to an encoder, so the
//! nearest other request is decided by differences far below FP32's own margin, and "R@1
//! agreement" measured on them counts coin flips. Here every request has a partner that is the
//! same content, perturbed the way a second capture of it would be:
//! - text: 8 to 32 words, most of them from the text's own five-word topic; the partner has
//!   about one word in eight replaced (at least one);
//! - images (160 to 320 pixels a side): a gradient background with 3 to 6 coloured discs; the
//!   partner is shifted by up to 3 pixels, its brightness scaled by 0.9 to 1.1 and ±6 of
//!   uniform noise added;
//! - audio (1 to 3 s at 16 kHz): two to three partials under a slow envelope; the partner has
//!   its gain scaled by 0.7 to 1.0 and noise 30 dB below the signal;
//! - video (4 to 12 frames of 160 × 120): discs moving on straight lines over a gradient; the
//!   partner's frames are perturbed like images.
//!
//! Request `2k` and `2k + 1` form group `p<k>`; with an odd count the last request has no
//! partner. The modality mix is the accuracy harness's (every modality and the common
//! combinations).

use omnifuse_model::input::{PixelData, RawInput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::accuracy::Item;
use crate::workload;

/// Words every text draws from.
const COMMON: &[&str] = &["the", "a", "at", "on", "in", "is", "that", "this", "what", "over", "under", "and", "with"];

/// Content words; each text takes its own handful of them as its topic.
const TOPICAL: &[&str] = &[
    "calm",
    "sea",
    "dawn",
    "red",
    "car",
    "street",
    "music",
    "plays",
    "softly",
    "two",
    "dogs",
    "run",
    "park",
    "city",
    "lights",
    "night",
    "describe",
    "picture",
    "sound",
    "green",
    "hill",
    "rain",
    "old",
    "bridge",
    "river",
    "bright",
    "morning",
    "children",
    "sing",
    "loud",
    "blue",
    "train",
    "station",
    "quiet",
    "forest",
    "birds",
    "wind",
    "snow",
    "mountain",
    "kitchen",
    "bread",
    "market",
    "window",
    "candle",
    "storm",
    "harbour",
    "boats",
    "garden",
    "roses",
    "violin",
    "drums",
    "crowd",
    "stadium",
    "desert",
    "camel",
    "library",
    "books",
    "clock",
    "tower",
    "bicycle",
    "lantern",
    "festival",
    "dancers",
    "ocean",
    "waves",
    "island",
    "volcano",
    "smoke",
    "engine",
    "airport",
    "plane",
    "coffee",
    "table",
    "letter",
    "painting",
    "museum",
    "statue",
    "winter",
    "summer",
    "autumn",
    "leaves",
    "meadow",
    "horses",
    "village",
    "church",
    "bells",
    "thunder",
    "lightning",
    "moon",
    "stars",
    "telescope",
    "laboratory",
    "robot",
    "factory",
    "workers",
    "bakery",
    "cheese",
    "orchard",
    "apples",
    "fishing",
    "net",
];

/// Modality mixes and their weights (every modality and the common combinations).
const MIX: &str = "text=0.3,image=0.2,audio=0.15,video=0.1,text+image=0.15,text+audio=0.05,text+image+audio+video=0.05";

/// A disc on an image: centre, radius, colour, and (for video) velocity per frame.
#[derive(Clone, Copy)]
struct Disc {
    x: f32,
    y: f32,
    r: f32,
    rgb: [f32; 3],
    vx: f32,
    vy: f32,
}

/// The content of one image (or every frame of a video).
#[derive(Clone)]
struct Scene {
    w: usize,
    h: usize,
    top: [f32; 3],
    bottom: [f32; 3],
    discs: Vec<Disc>,
}

fn colour(rng: &mut ChaCha8Rng) -> [f32; 3] {
    [rng.random_range(0.0..255.0), rng.random_range(0.0..255.0), rng.random_range(0.0..255.0)]
}

fn scene(rng: &mut ChaCha8Rng, w: usize, h: usize) -> Scene {
    let n = rng.random_range(3..=6);
    let discs = (0..n)
        .map(|_| Disc {
            x: rng.random_range(0.0..w as f32),
            y: rng.random_range(0.0..h as f32),
            r: rng.random_range(0.08..0.3) * w.min(h) as f32,
            rgb: colour(rng),
            vx: rng.random_range(-4.0..4.0),
            vy: rng.random_range(-3.0..3.0),
        })
        .collect();
    Scene { w, h, top: colour(rng), bottom: colour(rng), discs }
}

/// How a partner differs from its original image: shift, brightness, noise amplitude.
#[derive(Clone, Copy)]
struct Perturb {
    dx: f32,
    dy: f32,
    gain: f32,
    noise: f32,
}

const EXACT: Perturb = Perturb { dx: 0.0, dy: 0.0, gain: 1.0, noise: 0.0 };

fn perturbation(rng: &mut ChaCha8Rng) -> Perturb {
    Perturb {
        dx: rng.random_range(-3i32..=3) as f32,
        dy: rng.random_range(-3i32..=3) as f32,
        gain: rng.random_range(0.9..1.1),
        noise: 6.0,
    }
}

/// Render `s` at frame `t` with perturbation `p`.
fn render(s: &Scene, t: f32, p: Perturb, rng: &mut ChaCha8Rng) -> RawInput {
    let mut data = Vec::with_capacity(s.w * s.h * 3);
    for y in 0..s.h {
        let v = y as f32 / s.h.max(1) as f32;
        for x in 0..s.w {
            let (fx, fy) = (x as f32 - p.dx, y as f32 - p.dy);
            let mut px = [0f32; 3];
            for (c, o) in px.iter_mut().enumerate() {
                *o = s.top[c] * (1.0 - v) + s.bottom[c] * v;
            }
            for d in &s.discs {
                let (cx, cy) = (d.x + d.vx * t, d.y + d.vy * t);
                if (fx - cx).powi(2) + (fy - cy).powi(2) <= d.r * d.r {
                    px = d.rgb;
                }
            }
            for o in px {
                let n = if p.noise > 0.0 { rng.random_range(-p.noise..=p.noise) } else { 0.0 };
                data.push((o * p.gain + n).round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    RawInput::Pixels { height: s.h, width: s.w, data: PixelData::U8(data) }
}

/// An audio clip: partials (frequency, amplitude), length and envelope rate.
#[derive(Clone)]
struct Clip {
    partials: Vec<(f32, f32)>,
    len: usize,
    env: f32,
}

fn clip(rng: &mut ChaCha8Rng) -> Clip {
    let n = rng.random_range(2..=3);
    Clip {
        partials: (0..n).map(|_| (rng.random_range(80.0..3000.0), rng.random_range(0.05..0.3))).collect(),
        len: rng.random_range(16_000..=48_000),
        env: rng.random_range(0.5..4.0),
    }
}

fn sound(c: &Clip, gain: f32, noisy: bool, rng: &mut ChaCha8Rng) -> RawInput {
    let rms: f32 = c.partials.iter().map(|p| p.1 * p.1 / 2.0).sum::<f32>().sqrt();
    let noise = if noisy { rms * 10f32.powf(-30.0 / 20.0) * 3f32.sqrt() } else { 0.0 };
    let samples = (0..c.len)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            let env = 0.6 + 0.4 * (std::f32::consts::TAU * c.env * t).sin();
            let s: f32 = c.partials.iter().map(|&(f, a)| a * (std::f32::consts::TAU * f * t).sin()).sum();
            let n = if noise > 0.0 { rng.random_range(-noise..=noise) } else { 0.0 };
            (gain * env * s + n).clamp(-1.0, 1.0)
        })
        .collect();
    RawInput::Pcm { samples, sample_rate: 16_000 }
}

/// A text: 8 to 32 words, about three in four from its own five-word topic, the rest common.
fn words(rng: &mut ChaCha8Rng) -> (Vec<&'static str>, Vec<&'static str>) {
    let topic: Vec<&'static str> = (0..5).map(|_| TOPICAL[rng.random_range(0..TOPICAL.len())]).collect();
    let n = rng.random_range(8..=32);
    let w = (0..n).map(|_| pick(&topic, rng)).collect();
    (w, topic)
}

fn pick(topic: &[&'static str], rng: &mut ChaCha8Rng) -> &'static str {
    if rng.random_bool(0.75) {
        topic[rng.random_range(0..topic.len())]
    } else {
        COMMON[rng.random_range(0..COMMON.len())]
    }
}

/// The partner text: about one word in eight (at least one) replaced by another of the topic
/// or a common word.
fn edited(w: &[&'static str], topic: &[&'static str], rng: &mut ChaCha8Rng) -> Vec<&'static str> {
    let mut out = w.to_vec();
    let edits = (w.len() / 8).max(1);
    for _ in 0..edits {
        let at = rng.random_range(0..out.len());
        out[at] = pick(topic, rng);
    }
    out
}

/// One original request and its partner, of the modalities `kinds`.
fn pair(kinds: &[String], rng: &mut ChaCha8Rng) -> (Vec<RawInput>, Vec<RawInput>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for k in kinds {
        match k.as_str() {
            "image" => {
                let (w, h) = (rng.random_range(160..=320), rng.random_range(160..=320));
                let s = scene(rng, w, h);
                let p = perturbation(rng);
                a.push(render(&s, 0.0, EXACT, rng));
                b.push(render(&s, 0.0, p, rng));
            }
            "audio" => {
                let c = clip(rng);
                let g = rng.random_range(0.7..1.0);
                a.push(sound(&c, 1.0, false, rng));
                b.push(sound(&c, g, true, rng));
            }
            "video" => {
                let s = scene(rng, 160, 120);
                let frames = rng.random_range(4..=12);
                let p = perturbation(rng);
                a.push(RawInput::Frames((0..frames).map(|t| render(&s, t as f32, EXACT, rng)).collect()));
                b.push(RawInput::Frames((0..frames).map(|t| render(&s, t as f32, p, rng)).collect()));
            }
            _ => {
                let (w, topic) = words(rng);
                let e = edited(&w, &topic, rng);
                a.push(RawInput::Text(w.join(" ")));
                b.push(RawInput::Text(e.join(" ")));
            }
        }
    }
    (a, b)
}

/// `n` seeded requests in pairs (see the module docs).
pub fn items(n: usize, seed: u64) -> Vec<Item> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mix = workload::parse_mix(MIX).unwrap_or_default();
    let mut out = Vec::with_capacity(n);
    let mut k = 0;
    while out.len() < n {
        let kinds = workload::pick(&mix, &mut rng).map(|e| e.modalities.as_slice()).unwrap_or_default();
        let (a, b) = pair(kinds, &mut rng);
        let group = format!("p{k}");
        out.push(Item { name: format!("builtin-{k}a"), inputs: a, label: None, pair: Some(group.clone()) });
        if out.len() < n {
            out.push(Item { name: format!("builtin-{k}b"), inputs: b, label: None, pair: Some(group) });
        } else if let Some(last) = out.last_mut() {
            last.pair = None;
        }
        k += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(i: &RawInput) -> Vec<u8> {
        match i {
            RawInput::Pixels { data: PixelData::U8(d), .. } => d.clone(),
            RawInput::Text(t) => t.as_bytes().to_vec(),
            RawInput::Pcm { samples, .. } => samples.iter().flat_map(|s| s.to_le_bytes()).collect(),
            RawInput::Frames(f) => f.iter().flat_map(bytes).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn pairs_share_modalities_but_not_bytes_and_the_seed_repeats() {
        let a = items(41, 3);
        assert_eq!(a.len(), 41);
        assert_eq!(a[40].pair, None, "odd count: the last one has no partner");
        for k in 0..20 {
            let (x, y) = (&a[2 * k], &a[2 * k + 1]);
            assert_eq!(x.pair, y.pair);
            assert_eq!(x.inputs.len(), y.inputs.len());
            for (p, q) in x.inputs.iter().zip(&y.inputs) {
                assert_eq!(std::mem::discriminant(p), std::mem::discriminant(q));
                assert_ne!(bytes(p), bytes(q), "a partner is perturbed, not a copy");
            }
        }
        let b = items(41, 3);
        assert!(a.iter().zip(&b).all(|(x, y)| x.inputs.iter().map(bytes).eq(y.inputs.iter().map(bytes))));
        assert!(a.iter().any(|i| i.inputs.len() == 4), "the four-modality mix is drawn");
    }
}
