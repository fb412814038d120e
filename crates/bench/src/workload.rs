//! Seeded workloads: a modality mix (`text=0.4,image=0.3,…`, combinations like `text+image`)
//! and requests drawn from it with documented size distributions — text 8 to 64 words, images
//! 160 to 320 pixels a side, audio 1 to 3 s at 16 kHz, video 4 to 12 frames of 160 × 120 — from
//! a ChaCha8 generator, so the same seed gives the same requests.

use omnifuse_model::input::{PixelData, RawInput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A request: its inputs, in order.
pub type Request = Vec<RawInput>;

/// One entry of a mix: the modalities of a request and its weight.
#[derive(Clone, Debug, PartialEq)]
pub struct MixEntry {
    /// Modalities of the request, in input order (`text`, `image`, `audio`, `video`).
    pub modalities: Vec<String>,
    /// Relative weight.
    pub weight: f64,
}

/// A bad workload description.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("workload: {0}")]
pub struct WorkloadError(pub String);

/// Parse `text=0.4,image=0.3,text+image=0.3`.
pub fn parse_mix(s: &str) -> Result<Vec<MixEntry>, WorkloadError> {
    let mut mix = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (names, w) = part
            .split_once('=')
            .ok_or_else(|| WorkloadError(format!("'{part}' is not MODALITY[+MODALITY…]=WEIGHT")))?;
        let weight: f64 =
            w.trim().parse().map_err(|_| WorkloadError(format!("weight '{w}' of '{part}' is not a number")))?;
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(WorkloadError(format!("weight of '{part}' must be a non-negative number")));
        }
        let modalities: Vec<String> = names.split('+').map(|m| m.trim().to_lowercase()).collect();
        if let Some(bad) = modalities.iter().find(|m| !["text", "image", "audio", "video"].contains(&m.as_str())) {
            return Err(WorkloadError(format!(
                "unknown modality '{bad}' in '{part}': expected text, image, audio, video"
            )));
        }
        mix.push(MixEntry { modalities, weight });
    }
    if mix.iter().map(|m| m.weight).sum::<f64>() <= 0.0 {
        return Err(WorkloadError(format!("mix '{s}' has no positive weight")));
    }
    Ok(mix)
}

const WORDS: &[&str] = &[
    "the", "a", "calm", "sea", "at", "dawn", "red", "car", "on", "street", "music", "plays", "softly", "two", "dogs",
    "run", "in", "park", "city", "lights", "night", "describe", "this", "picture", "what", "sound", "is", "that",
];

fn text(rng: &mut ChaCha8Rng) -> RawInput {
    let n = rng.random_range(8..=64);
    let words: Vec<&str> = (0..n).map(|_| WORDS[rng.random_range(0..WORDS.len())]).collect();
    RawInput::Text(words.join(" "))
}

fn pixels(rng: &mut ChaCha8Rng, w: usize, h: usize) -> RawInput {
    let data: Vec<u8> = (0..w * h * 3).map(|_| rng.random::<u8>()).collect();
    RawInput::Pixels { height: h, width: w, data: PixelData::U8(data) }
}

fn input(rng: &mut ChaCha8Rng, modality: &str) -> RawInput {
    match modality {
        "image" => {
            let (w, h) = (rng.random_range(160..=320), rng.random_range(160..=320));
            pixels(rng, w, h)
        }
        "audio" => {
            let n = rng.random_range(16_000..=48_000);
            let f = rng.random_range(100.0f32..2000.0);
            let samples = (0..n).map(|i| 0.3 * (i as f32 * f * std::f32::consts::TAU / 16_000.0).sin()).collect();
            RawInput::Pcm { samples, sample_rate: 16_000 }
        }
        "video" => {
            let frames = rng.random_range(4..=12);
            RawInput::Frames((0..frames).map(|_| pixels(rng, 160, 120)).collect())
        }
        _ => text(rng),
    }
}

/// One entry of `mix`, drawn by weight with one uniform draw from `rng` (`None` only for an
/// empty mix).
pub fn pick<'a>(mix: &'a [MixEntry], rng: &mut ChaCha8Rng) -> Option<&'a MixEntry> {
    let total: f64 = mix.iter().map(|m| m.weight).sum();
    let mut x = rng.random::<f64>() * total;
    mix.iter()
        .find(|m| {
            x -= m.weight;
            x < 0.0
        })
        .or(mix.last())
}

/// `n` requests drawn from `mix` with `seed`.
pub fn generate(mix: &[MixEntry], n: usize, seed: u64) -> Vec<Request> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let entry = pick(mix, &mut rng);
            entry.map(|e| e.modalities.iter().map(|m| input(&mut rng, m)).collect()).unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_bad_ones_are_named() {
        let m = parse_mix("text=0.4, image=0.3,text+image=0.3").unwrap();
        assert_eq!(m[2].modalities, vec!["text", "image"]);
        assert!(parse_mix("smell=1").unwrap_err().to_string().contains("smell"));
        assert!(parse_mix("text").unwrap_err().to_string().contains("MODALITY"));
        assert!(parse_mix("text=x").unwrap_err().to_string().contains("not a number"));
        assert!(parse_mix("text=0").unwrap_err().to_string().contains("no positive weight"));
    }

    #[test]
    fn the_same_seed_gives_the_same_requests_in_the_mixed_proportions() {
        let mix = parse_mix("text=3,image=1").unwrap();
        let a = generate(&mix, 200, 7);
        let b = generate(&mix, 200, 7);
        let kinds = |r: &[Request]| {
            r.iter().map(|q| format!("{:?}", q.first().map(std::mem::discriminant))).collect::<Vec<_>>()
        };
        assert_eq!(kinds(&a), kinds(&b));
        let texts = a.iter().filter(|q| matches!(q.first(), Some(RawInput::Text(_)))).count();
        assert!((120..=180).contains(&texts), "about 3/4 text, got {texts}/200");
        assert_ne!(kinds(&a), kinds(&generate(&mix, 200, 8)), "another seed, other requests");
    }
}
