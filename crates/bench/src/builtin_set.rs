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
//! Every pair also has a class, its mood — negative, neutral or positive, the labels of
//! `omni-small`'s sentiment head — drawn uniformly and carried by every modality: two of a
//! text's five topic words are mood words; an image's or video's background is dark and cool,
//! grey, or bright and warm; an audio clip's two lowest-drawn partials lie low (80–300 Hz),
//! in the middle (400–1000 Hz) or high (1.2–3 kHz). The rest of the content is
//! drawn as before, so requests of one class still differ as much as retrieval needs. So classification has a right answer as well, and a head trained on
//! these classes (see `omnifuse fit-head`) has margins that mean something.
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

/// The classes, in the order of `omni-small`'s sentiment labels.
pub const MOODS: [&str; 3] = ["negative", "neutral", "positive"];

/// Words of each mood; a text's topic takes two of its mood's.
const MOOD_WORDS: [&[&str]; 3] = [
    &[
        "sad", "broken", "cold", "grim", "lost", "angry", "lonely", "ruined", "afraid", "bitter", "gloomy", "tired",
        "crying", "painful", "empty", "hopeless",
    ],
    &[
        "grey", "plain", "ordinary", "usual", "flat", "square", "standard", "middle", "level", "routine", "neutral",
        "medium", "regular", "typical", "normal", "common",
    ],
    &[
        "happy",
        "joyful",
        "warm",
        "lovely",
        "cheerful",
        "glad",
        "sunny",
        "gentle",
        "delight",
        "smiling",
        "proud",
        "kind",
        "laughing",
        "hopeful",
        "golden",
        "wonderful",
    ],
];

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

/// A background colour of mood `m`: dark and cool, grey, or bright and warm.
fn backdrop(m: usize, rng: &mut ChaCha8Rng) -> [f32; 3] {
    match m {
        0 => [rng.random_range(0.0..70.0), rng.random_range(0.0..70.0), rng.random_range(30.0..110.0)],
        1 => {
            let v: f32 = rng.random_range(90.0..170.0);
            [v + rng.random_range(-12.0..12.0), v + rng.random_range(-12.0..12.0), v + rng.random_range(-12.0..12.0)]
        }
        _ => [rng.random_range(200.0..255.0), rng.random_range(140.0..230.0), rng.random_range(20.0..110.0)],
    }
}

fn scene(m: usize, rng: &mut ChaCha8Rng, w: usize, h: usize) -> Scene {
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
    Scene { w, h, top: backdrop(m, rng), bottom: backdrop(m, rng), discs }
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

/// A clip of mood `m`: partials low, in the middle or high.
fn clip(m: usize, rng: &mut ChaCha8Rng) -> Clip {
    let n = rng.random_range(2..=3);
    let band = [(80.0, 300.0), (400.0, 1000.0), (1200.0, 3000.0)][m.min(2)];
    Clip {
        partials: (0..n)
            .map(|i| {
                let f = if i < 2 { rng.random_range(band.0..band.1) } else { rng.random_range(80.0..3000.0) };
                (f, rng.random_range(0.05..0.3))
            })
            .collect(),
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

/// A text of mood `m`: 8 to 32 words, about three in four from its own five-word topic (three
/// content words, two of the mood's), the rest common.
fn words(m: usize, rng: &mut ChaCha8Rng) -> (Vec<&'static str>, Vec<&'static str>) {
    let mood = MOOD_WORDS[m.min(2)];
    let topic: Vec<&'static str> = (0..8)
        .map(
            |i| if i < 6 { TOPICAL[rng.random_range(0..TOPICAL.len())] } else { mood[rng.random_range(0..mood.len())] },
        )
        .collect();
    let n = rng.random_range(8..=32);
    let w = (0..n).map(|_| pick(&topic, rng)).collect();
    (w, topic)
}

fn pick(topic: &[&'static str], rng: &mut ChaCha8Rng) -> &'static str {
    if rng.random_bool(0.9) {
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

/// One original request and its partner, of the modalities `kinds` and mood `m`.
fn pair(kinds: &[String], m: usize, rng: &mut ChaCha8Rng) -> (Vec<RawInput>, Vec<RawInput>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for k in kinds {
        match k.as_str() {
            "image" => {
                let (w, h) = (rng.random_range(160..=320), rng.random_range(160..=320));
                let s = scene(m, rng, w, h);
                let p = perturbation(rng);
                a.push(render(&s, 0.0, EXACT, rng));
                b.push(render(&s, 0.0, p, rng));
            }
            "audio" => {
                let c = clip(m, rng);
                let g = rng.random_range(0.7..1.0);
                a.push(sound(&c, 1.0, false, rng));
                b.push(sound(&c, g, true, rng));
            }
            "video" => {
                let s = scene(m, rng, 160, 120);
                let frames = rng.random_range(4..=12);
                let p = perturbation(rng);
                a.push(RawInput::Frames((0..frames).map(|t| render(&s, t as f32, EXACT, rng)).collect()));
                b.push(RawInput::Frames((0..frames).map(|t| render(&s, t as f32, p, rng)).collect()));
            }
            _ => {
                let (w, topic) = words(m, rng);
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
        let m = rng.random_range(0..MOODS.len());
        let (a, b) = pair(kinds, m, &mut rng);
        let group = format!("p{k}");
        let label = Some(MOODS[m].to_string());
        out.push(Item { name: format!("builtin-{k}a"), inputs: a, label: label.clone(), pair: Some(group.clone()) });
        if out.len() < n {
            out.push(Item { name: format!("builtin-{k}b"), inputs: b, label, pair: Some(group) });
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
        let a = items(201, 3);
        assert_eq!(a.len(), 201);
        assert_eq!(a[200].pair, None, "odd count: the last one has no partner");
        for k in 0..50 {
            let (x, y) = (&a[2 * k], &a[2 * k + 1]);
            assert_eq!(x.pair, y.pair);
            assert_eq!(x.label, y.label, "partners share their class");
            assert!(MOODS.contains(&x.label.as_deref().unwrap_or("")));
            assert_eq!(x.inputs.len(), y.inputs.len());
            for (p, q) in x.inputs.iter().zip(&y.inputs) {
                assert_eq!(std::mem::discriminant(p), std::mem::discriminant(q));
                assert_ne!(bytes(p), bytes(q), "a partner is perturbed, not a copy");
            }
        }
        let b = items(201, 3);
        assert!(a.iter().zip(&b).all(|(x, y)| x.inputs.iter().map(bytes).eq(y.inputs.iter().map(bytes))));
        assert!(a.iter().any(|i| i.inputs.len() == 4), "the four-modality mix is drawn");
        for m in MOODS {
            assert!(a.iter().any(|i| i.label.as_deref() == Some(m)), "class {m} is drawn");
        }
    }
}
