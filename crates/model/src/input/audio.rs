//! Audio preprocessing: RIFF/WAVE decoding (integer 8/16/24/32-bit and float 32-bit, channels
//! averaged), a windowed-sinc resampler to the model's rate, the length limit, and the log-mel
//! front end of MODEL.md (400-sample periodic Hann frames every 160 samples, 512-point real FFT,
//! 80 HTK mel filters, `ln(· + 1e-6)`), giving `[F, 80]` f32. Internal arithmetic is f64.

use std::f64::consts::PI;
use std::fmt;
use std::io::Cursor;
use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::config::{Config, MELS};

/// Samples per analysis frame.
pub const FRAME: usize = 400;
/// Samples between frame starts.
pub const HOP: usize = 160;
/// FFT length (frames are zero-padded to it).
pub const N_FFT: usize = 512;
/// Power-spectrum bins `0..=N_FFT/2`.
pub const BINS: usize = N_FFT / 2 + 1;
/// Sample rate the mel scale is laid out for (MODEL.md: bin `k` is at `k·16000/512` Hz, the
/// filters span `0..8000` Hz).
pub const MEL_RATE: f64 = 16_000.0;
/// Highest input sample rate accepted, in Hz.
pub const MAX_INPUT_RATE: u32 = 768_000;

/// Zero crossings of the resampling sinc on each side of its centre (at the cutoff frequency).
pub const SINC_ZEROS: f64 = 16.0;
/// Cutoff of the resampling low-pass, as a fraction of the lower of the two Nyquist rates.
pub const SINC_ROLLOFF: f64 = 0.95;
/// Largest precomputed resampling kernel table, in taps.
const TABLE_MAX: u64 = 1 << 21;

/// The audio front end of a [`super::Preprocessor`]: limits, window, filterbank and FFT plan.
#[derive(Clone)]
pub(crate) struct AudioPrep {
    sample_rate: u32,
    max_seconds: f32,
    window: Vec<f64>,
    filters: Vec<Vec<f64>>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl fmt::Debug for AudioPrep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioPrep")
            .field("sample_rate", &self.sample_rate)
            .field("max_seconds", &self.max_seconds)
            .finish_non_exhaustive()
    }
}

impl AudioPrep {
    pub(crate) fn new(config: &Config) -> Self {
        AudioPrep {
            sample_rate: config.audio.sample_rate,
            max_seconds: config.limits.max_audio_seconds,
            window: hann_window(),
            filters: mel_filterbank(),
            fft: RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT),
        }
    }

    /// Log-mel `[F, 80]` and F of RIFF/WAVE bytes.
    pub(crate) fn prepare_wav(&self, bytes: &[u8]) -> Result<(Vec<f32>, usize), String> {
        let (samples, rate) = decode_wav(bytes, self.max_seconds)?;
        self.prepare_samples(&samples, rate)
    }

    /// Log-mel `[F, 80]` and F of mono f32 PCM at `rate`.
    pub(crate) fn prepare_pcm(&self, samples: &[f32], rate: u32) -> Result<(Vec<f32>, usize), String> {
        check_rate(rate)?;
        check_length(samples.len(), rate, self.max_seconds)?;
        if let Some((i, bad)) = samples.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(format!("PCM sample {i} is {bad}: expected finite samples in [-1, 1]"));
        }
        let samples: Vec<f64> = samples.iter().map(|&x| f64::from(x)).collect();
        self.prepare_samples(&samples, rate)
    }

    fn prepare_samples(&self, samples: &[f64], rate: u32) -> Result<(Vec<f32>, usize), String> {
        check_length(samples.len(), rate, self.max_seconds)?;
        let resampled = resample(samples, rate, self.sample_rate);
        self.logmel(&resampled)
    }

    /// `[F, 80]` log-mel of samples at the model's rate (zero-padded to 400 when shorter).
    pub(crate) fn logmel(&self, x: &[f64]) -> Result<(Vec<f32>, usize), String> {
        let mut padded = x.to_vec();
        if padded.len() < FRAME {
            padded.resize(FRAME, 0.0);
        }
        let frames = 1 + (padded.len() - FRAME) / HOP;
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f64; BINS];
        let mut out = Vec::with_capacity(frames * MELS);
        for frame in padded.windows(FRAME).step_by(HOP) {
            input.fill(0.0);
            for ((dst, &s), &w) in input.iter_mut().zip(frame).zip(&self.window) {
                *dst = s * w;
            }
            self.fft.process_with_scratch(&mut input, &mut spectrum, &mut scratch).map_err(|e| format!("FFT: {e}"))?;
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.re * c.re + c.im * c.im;
            }
            for filter in &self.filters {
                let energy: f64 = filter.iter().zip(&power).map(|(w, p)| w * p).sum();
                out.push((energy + 1e-6).ln() as f32);
            }
        }
        Ok((out, frames))
    }
}

/// The periodic Hann window `w[i] = 0.5 − 0.5·cos(2πi / 400)`, `i = 0..400`.
pub fn hann_window() -> Vec<f64> {
    (0..FRAME).map(|i| 0.5 - 0.5 * (2.0 * PI * i as f64 / FRAME as f64).cos()).collect()
}

/// HTK mel of a frequency in Hz: `2595·log10(1 + f/700)`.
pub fn hz_to_mel(f: f64) -> f64 {
    2595.0 * (1.0 + f / 700.0).log10()
}

/// Frequency in Hz of an HTK mel value (inverse of [`hz_to_mel`]).
pub fn mel_to_hz(m: f64) -> f64 {
    700.0 * (10f64.powf(m / 2595.0) - 1.0)
}

/// The 80 × 257 triangular mel filterbank of MODEL.md: 82 points equally spaced in mel from
/// `mel(0)` to `mel(8000)`, filter `j` rising from `f_j` to `f_{j+1}` and falling to `f_{j+2}`,
/// evaluated at bin frequencies `k·16000/512`.
pub fn mel_filterbank() -> Vec<Vec<f64>> {
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(MEL_RATE / 2.0));
    let points: Vec<f64> = (0..MELS + 2).map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (MELS + 1) as f64)).collect();
    points
        .windows(3)
        .map(|p| {
            let (a, b, c) = (p[0], p[1], p[2]);
            (0..BINS)
                .map(|k| {
                    let f = k as f64 * MEL_RATE / N_FFT as f64;
                    ((f - a) / (b - a)).min((c - f) / (c - b)).max(0.0)
                })
                .collect()
        })
        .collect()
}

fn check_rate(rate: u32) -> Result<(), String> {
    if rate == 0 || rate > MAX_INPUT_RATE {
        return Err(format!("audio sample rate {rate} Hz is not supported: expected 1..={MAX_INPUT_RATE} Hz"));
    }
    Ok(())
}

/// Refuse empty audio and audio longer than `max_seconds`.
fn check_length(samples: usize, rate: u32, max_seconds: f32) -> Result<(), String> {
    if samples == 0 {
        return Err("audio has no samples: expected at least one".to_string());
    }
    let seconds = samples as f64 / f64::from(rate.max(1));
    if seconds > f64::from(max_seconds) {
        return Err(format!(
            "audio of {seconds:.3} s ({samples} samples at {rate} Hz) is longer than limits.max_audio_seconds = \
             {max_seconds}"
        ));
    }
    Ok(())
}

/// Decode RIFF/WAVE bytes into mono f64 samples (channels averaged, integers divided by
/// `2^(bits−1)`) and their rate; the length limit is checked from the header before reading.
pub(crate) fn decode_wav(bytes: &[u8], max_seconds: f32) -> Result<(Vec<f64>, u32), String> {
    let mut reader = hound::WavReader::new(Cursor::new(bytes)).map_err(|e| format!("unreadable WAV file: {e}"))?;
    let spec = reader.spec();
    check_rate(spec.sample_rate)?;
    let channels = usize::from(spec.channels);
    if channels == 0 {
        return Err("WAV file declares 0 channels: expected at least one".to_string());
    }
    check_length(reader.duration() as usize, spec.sample_rate, max_seconds)?;
    let interleaved: Vec<f64> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / f64::from(1u32 << (bits - 1));
            read_all(reader.samples::<i32>().map(|s| s.map(|v| f64::from(v) * scale)))?
        }
        (hound::SampleFormat::Float, 32) => read_all(reader.samples::<f32>().map(|s| s.map(f64::from)))?,
        (format, bits) => {
            return Err(format!(
                "WAV sample format {format:?} with {bits} bits is not supported: expected integer 8/16/24/32-bit or \
                 float 32-bit"
            ));
        }
    };
    let mono: Vec<f64> = interleaved.chunks_exact(channels).map(|c| c.iter().sum::<f64>() / channels as f64).collect();
    Ok((mono, spec.sample_rate))
}

fn read_all(samples: impl Iterator<Item = hound::Result<f64>>) -> Result<Vec<f64>, String> {
    let mut out = Vec::new();
    for (i, s) in samples.enumerate() {
        out.push(s.map_err(|e| format!("corrupt or truncated WAV data at sample {i}: {e}"))?);
    }
    Ok(out)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Resample `x` from rate `from` to rate `to` (identity when they agree).
///
/// The kernel is a Hann-windowed sinc low-pass: with the cutoff `fc = 0.95·min(1, to/from)`
/// (in cycles per input sample × 2, i.e. as a fraction of the input Nyquist rate), output sample
/// `j` sits at input position `t = j·from/to` and is `Σ_i x[i]·h(t − i)` with
/// `h(d) = fc·sinc(fc·d)·(0.5 + 0.5·cos(π·d/R))` for `|d| < R = 16/fc` (16 zero crossings of
/// the sinc each side), 0 beyond; `sinc(u) = sin(πu)/(πu)`. Samples outside the input are zero.
/// The output has `ceil(n·to/from)` samples. Kernel values are tabulated per phase (`t`'s
/// fractional part takes `to/gcd(from, to)` values) when the table is small.
pub fn resample(x: &[f64], from: u32, to: u32) -> Vec<f64> {
    if from == to || from == 0 || to == 0 || x.is_empty() {
        return x.to_vec();
    }
    let g = gcd(u64::from(from), u64::from(to));
    let (p, q) = (u64::from(from) / g, u64::from(to) / g);
    let fc = SINC_ROLLOFF * (f64::from(to) / f64::from(from)).min(1.0);
    let reach = (SINC_ZEROS / fc).ceil() as i64;
    let taps = (2 * reach + 2) as usize;
    let kernel = |d: f64| sinc_kernel(d, fc);
    let tap_offsets = || (-reach..=reach + 1).map(|k| k as f64);
    let table: Option<Vec<f64>> = (q * taps as u64 <= TABLE_MAX)
        .then(|| (0..q).flat_map(|phase| tap_offsets().map(move |k| kernel(phase as f64 / q as f64 - k))).collect());
    let n = x.len() as u64;
    let len = (n * q).div_ceil(p);
    let mut out = Vec::with_capacity(len as usize);
    for j in 0..len {
        let (base, phase) = ((j * p / q) as i64, (j * p) % q);
        let first = base - reach;
        let mut acc = 0.0;
        for (t, k) in (-reach..=reach + 1).enumerate() {
            let i = first + t as i64;
            let Some(&xi) = usize::try_from(i).ok().and_then(|i| x.get(i)) else { continue };
            let h = match &table {
                Some(tab) => tab.get(phase as usize * taps + t).copied().unwrap_or(0.0),
                None => kernel(phase as f64 / q as f64 - k as f64),
            };
            acc += xi * h;
        }
        out.push(acc);
    }
    out
}

/// The resampling kernel `h(d)` at distance `d` input samples, for cutoff `fc`.
fn sinc_kernel(d: f64, fc: f64) -> f64 {
    let half = SINC_ZEROS / fc;
    if d.abs() >= half {
        return 0.0;
    }
    let u = fc * d;
    let sinc = if u.abs() < 1e-12 { 1.0 } else { (PI * u).sin() / (PI * u) };
    fc * sinc * (0.5 + 0.5 * (PI * d / half).cos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::tests::wav;

    fn prep() -> AudioPrep {
        AudioPrep::new(&Config::omni_small())
    }

    fn sine(freq: f64, rate: u32, seconds: f64, amp: f64) -> Vec<f64> {
        let n = (seconds * f64::from(rate)) as usize;
        (0..n).map(|i| amp * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()).collect()
    }

    #[test]
    fn filterbank_matches_the_formula_at_hand_computed_points() {
        let fb = mel_filterbank();
        assert_eq!((fb.len(), fb[0].len()), (80, 257));
        // mel(8000) = 2595·log10(1 + 8000/700) = 2840.0230…; step = that / 81 = 35.0620…;
        // f_1 = 700·(10^(35.0620/2595) − 1) = 22.1200… Hz, f_2 = 44.9391… Hz.
        // Filter 0 at bin 1 (31.25 Hz) is on its falling side: (f_2 − 31.25)/(f_2 − f_1).
        let step = 2595.0 * (1.0f64 + 8000.0 / 700.0).log10() / 81.0;
        let f = |i: f64| 700.0 * (10f64.powf(i * step / 2595.0) - 1.0);
        assert!((f(1.0) - 22.1201).abs() < 1e-3 && (f(2.0) - 44.9391).abs() < 1e-3, "{} {}", f(1.0), f(2.0));
        let want = (f(2.0) - 31.25) / (f(2.0) - f(1.0));
        assert!((fb[0][1] - want).abs() < 1e-12, "{} vs {want}", fb[0][1]);
        assert!((fb[0][1] - 0.599_898_79).abs() < 1e-8 && (fb[1][1] - 0.400_101_21).abs() < 1e-8);
        assert_eq!(fb[0][0], 0.0);
        // Filter 1 at bin 1 rises: (31.25 − f_1)/(f_2 − f_1).
        assert!((fb[1][1] - (31.25 - f(1.0)) / (f(2.0) - f(1.0))).abs() < 1e-12);
        // The last filter peaks at f_80 and reaches 0 at 8000 Hz (bin 256).
        assert!(fb[79][256].abs() < 1e-9, "{}", fb[79][256]);
        let k = (f(80.0) * 512.0 / 16000.0).round() as usize;
        let fk = k as f64 * 31.25;
        let w = ((fk - f(79.0)) / (f(80.0) - f(79.0))).min((f(81.0) - fk) / (f(81.0) - f(80.0)));
        assert!((fb[79][k] - w).abs() < 1e-12 && w > 0.5);
    }

    #[test]
    fn hann_is_periodic() {
        let w = hann_window();
        assert_eq!(w[0], 0.0);
        assert!((w[200] - 1.0).abs() < 1e-15 && (w[100] - 0.5).abs() < 1e-12 && (w[300] - 0.5).abs() < 1e-12);
    }

    #[test]
    fn logmel_of_a_sine_peaks_in_the_bin_holding_its_frequency() {
        let fb = mel_filterbank();
        for freq in [440.0, 1000.0, 3000.0] {
            let x = sine(freq, 16000, 0.5, 0.5);
            let (logmel, frames) = prep().logmel(&x).unwrap();
            assert_eq!(frames, 1 + (8000 - 400) / 160);
            let row = &logmel[5 * 80..6 * 80];
            let peak = (0..80).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            // The filter with the largest weight at the sine's FFT bin.
            let k = (freq * 512.0 / 16000.0).round() as usize;
            let best = (0..80).max_by(|&a, &b| fb[a][k].total_cmp(&fb[b][k])).unwrap();
            assert!(peak.abs_diff(best) <= 1, "{freq} Hz: peak {peak}, expected {best}");
            assert!(row[peak] > row[(peak + 20) % 80] + 5.0);
        }
    }

    #[test]
    fn short_audio_is_padded_and_silence_is_ln_eps() {
        let (logmel, frames) = prep().logmel(&[0.0; 10]).unwrap();
        assert_eq!((frames, logmel.len()), (1, 80));
        assert!(logmel.iter().all(|&v| (v - (1e-6f64).ln() as f32).abs() < 1e-5));
        let (_, frames) = prep().logmel(&[0.0; 400 + 160 * 3 + 159]).unwrap();
        assert_eq!(frames, 4);
    }

    #[test]
    fn resampling_keeps_frequency_and_amplitude() {
        let x = sine(1000.0, 44100, 1.0, 0.8);
        let y = resample(&x, 44100, 16000);
        assert_eq!(y.len(), 16000);
        // Away from the edges: amplitude within 2 %, and the projection on a 1 kHz sine at 16 kHz.
        let mid = &y[1000..15000];
        let peak = mid.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!((peak - 0.8).abs() < 0.016, "peak {peak}");
        let (mut c, mut s) = (0.0, 0.0);
        for (i, v) in mid.iter().enumerate() {
            let ph = 2.0 * PI * 1000.0 * (i + 1000) as f64 / 16000.0;
            c += v * ph.cos();
            s += v * ph.sin();
        }
        let amp = 2.0 * (c * c + s * s).sqrt() / mid.len() as f64;
        assert!((amp - 0.8).abs() < 0.016, "amplitude at 1 kHz {amp}");
        let up = resample(&sine(440.0, 8000, 0.5, 0.5), 8000, 16000);
        let want = sine(440.0, 16000, 0.5, 0.5);
        let err = up[500..7500].iter().zip(&want[500..7500]).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(err < 0.02, "upsampling error {err}");
        assert_eq!(resample(&x[..100], 44100, 44100), x[..100].to_vec());
    }

    #[test]
    fn wav_decoding_scales_and_averages() {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16000,
            bits_per_sample: 24,
            sample_format: hound::SampleFormat::Int,
        };
        let mut out = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        for v in [1 << 22, 0, -(1 << 23), -(1 << 23)] {
            w.write_sample(v).unwrap();
        }
        w.finalize().unwrap();
        let (x, rate) = decode_wav(&out.into_inner(), 30.0).unwrap();
        assert_eq!((x, rate), (vec![0.25, -1.0], 16000));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut out = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        w.write_sample(0.5f32).unwrap();
        w.finalize().unwrap();
        assert_eq!(decode_wav(&out.into_inner(), 30.0).unwrap(), (vec![0.5], 8000));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 8,
            sample_format: hound::SampleFormat::Int,
        };
        let mut out = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        w.write_sample(-64i8).unwrap();
        w.finalize().unwrap();
        assert_eq!(decode_wav(&out.into_inner(), 30.0).unwrap(), (vec![-0.5], 8000));
    }

    #[test]
    fn truncated_and_corrupt_wavs_are_clear_errors() {
        let mut bytes = wav(&[0.25; 1000], 16000);
        bytes.truncate(bytes.len() - 501);
        let err = prep().prepare_wav(&bytes).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        let err = prep().prepare_wav(&bytes[..30]).unwrap_err();
        assert!(err.contains("unreadable WAV"), "{err}");
    }

    #[test]
    fn length_limits() {
        let ok = wav(&[0.0; 16000 * 3], 16000);
        let mut short = Config::omni_small();
        short.limits.max_audio_seconds = 2.5;
        let err = AudioPrep::new(&short).prepare_wav(&ok).unwrap_err();
        assert!(err.contains("3.000 s") && err.contains("max_audio_seconds = 2.5"), "{err}");
        let err = prep().prepare_pcm(&vec![0.0; 44100 * 31], 44100).unwrap_err();
        assert!(err.contains("longer than"), "{err}");
        assert!(prep().prepare_pcm(&[], 16000).unwrap_err().contains("no samples"));
        assert!(prep().prepare_pcm(&[0.0], 0).unwrap_err().contains("0 Hz"));
        let (_, frames) = prep().prepare_pcm(&vec![0.0; 44100], 44100).unwrap();
        assert_eq!(frames, 1 + (16000 - 400) / 160);
    }
}
