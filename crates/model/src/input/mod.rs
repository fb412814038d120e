//! The modal detector and the preprocessing front end (MODEL.md, "Modalities" and
//! "Preprocessing"): raw request inputs — text, file bytes recognised by their magic bytes,
//! pixel tensors, PCM, frame lists — are classified into the four modalities and turned into
//! the exact tensors the encoders consume, with every configured limit enforced by a clear
//! error before anything large is allocated.

pub mod audio;
pub mod image;
pub mod text;
pub mod video;

use std::fmt;
use std::path::Path;

use crate::config::Config;
use crate::error::{Error, Result};

/// One of the four input modalities, with its fixed id (text 0, image 1, audio 2, video 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    /// A UTF-8 string (id 0).
    Text,
    /// A still image (id 1).
    Image,
    /// A sound (id 2).
    Audio,
    /// A sequence of frames (id 3).
    Video,
}

impl Modality {
    /// Every modality, in id order.
    pub const ALL: [Modality; 4] = [Modality::Text, Modality::Image, Modality::Audio, Modality::Video];

    /// The modality id the fusion tables are indexed by.
    pub fn id(self) -> i8 {
        match self {
            Modality::Text => 0,
            Modality::Image => 1,
            Modality::Audio => 2,
            Modality::Video => 3,
        }
    }

    /// The lowercase name (`text`, `image`, `audio`, `video`).
    pub fn name(self) -> &'static str {
        match self {
            Modality::Text => "text",
            Modality::Image => "image",
            Modality::Audio => "audio",
            Modality::Video => "video",
        }
    }

    /// The modality called `s` (ASCII case ignored), if any.
    pub fn parse(s: &str) -> Option<Modality> {
        Modality::ALL.into_iter().find(|m| m.name().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Samples of an `[H, W, 3]` RGB pixel tensor (row-major, channels last).
#[derive(Clone, PartialEq)]
pub enum PixelData {
    /// 8-bit samples.
    U8(Vec<u8>),
    /// Float samples on the 0..=255 scale.
    F32(Vec<f32>),
}

impl PixelData {
    /// Number of samples held.
    pub fn len(&self) -> usize {
        match self {
            PixelData::U8(v) => v.len(),
            PixelData::F32(v) => v.len(),
        }
    }

    /// True when no samples are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for PixelData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PixelData::U8(v) => write!(f, "U8({} samples)", v.len()),
            PixelData::F32(v) => write!(f, "F32({} samples)", v.len()),
        }
    }
}

/// One raw request input, before detection and preprocessing.
#[derive(Clone, PartialEq)]
pub enum RawInput {
    /// A UTF-8 string.
    Text(String),
    /// A file's contents: PNG, JPEG, RIFF/WAVE or YUV4MPEG2, recognised by magic bytes.
    Bytes(Vec<u8>),
    /// An `[height, width, 3]` RGB tensor.
    Pixels {
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
        /// `height · width · 3` samples.
        data: PixelData,
    },
    /// Mono PCM in `[-1, 1]`.
    Pcm {
        /// The samples.
        samples: Vec<f32>,
        /// Their rate in Hz.
        sample_rate: u32,
    },
    /// A video as ordered frames, each `Bytes` (PNG/JPEG) or `Pixels`.
    Frames(Vec<RawInput>),
}

impl fmt::Debug for RawInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawInput::Text(s) => write!(f, "Text({} bytes)", s.len()),
            RawInput::Bytes(b) => write!(f, "Bytes({} bytes: {})", b.len(), describe_bytes(b)),
            RawInput::Pixels { height, width, data } => write!(f, "Pixels({height}×{width}, {data:?})"),
            RawInput::Pcm { samples, sample_rate } => write!(f, "Pcm({} samples at {sample_rate} Hz)", samples.len()),
            RawInput::Frames(frames) => write!(f, "Frames({} frames)", frames.len()),
        }
    }
}

/// A file kind recognised by its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `89 50 4E 47 0D 0A 1A 0A`.
    Png,
    /// `FF D8 FF`.
    Jpeg,
    /// `RIFF` …. `WAVE`.
    Wav,
    /// `YUV4MPEG2 `.
    Y4m,
}

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG_MAGIC: &[u8] = &[0xFF, 0xD8, 0xFF];
const Y4M_MAGIC: &[u8] = b"YUV4MPEG2 ";

impl FileKind {
    /// The kind of `bytes`, if their magic bytes are known.
    pub fn sniff(bytes: &[u8]) -> Option<FileKind> {
        if bytes.starts_with(PNG_MAGIC) {
            Some(FileKind::Png)
        } else if bytes.starts_with(JPEG_MAGIC) {
            Some(FileKind::Jpeg)
        } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WAVE".as_slice()) {
            Some(FileKind::Wav)
        } else if bytes.starts_with(Y4M_MAGIC) {
            Some(FileKind::Y4m)
        } else {
            None
        }
    }

    /// The modality a file of this kind carries.
    pub fn modality(self) -> Modality {
        match self {
            FileKind::Png | FileKind::Jpeg => Modality::Image,
            FileKind::Wav => Modality::Audio,
            FileKind::Y4m => Modality::Video,
        }
    }

    /// A short human name (`PNG`, `JPEG`, `RIFF/WAVE`, `YUV4MPEG2`).
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Png => "PNG",
            FileKind::Jpeg => "JPEG",
            FileKind::Wav => "RIFF/WAVE",
            FileKind::Y4m => "YUV4MPEG2",
        }
    }
}

/// What the magic bytes of a file may be, for error messages.
const EXPECTED_MAGIC: &str = "expected PNG (89 50 4E 47 0D 0A 1A 0A), JPEG (FF D8 FF), RIFF/WAVE (52 49 46 46 .. .. .. .. \
                              57 41 56 45) or YUV4MPEG2 (59 55 56 34 4D 50 45 47 32 20)";

/// The first bytes of `bytes` in hex (at most 16), for error messages.
pub(crate) fn hex_prefix(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(16).map(|b| format!("{b:02X}")).collect();
    let more = if bytes.len() > 16 { " …" } else { "" };
    format!("{}{more}", shown.join(" "))
}

fn describe_bytes(bytes: &[u8]) -> String {
    match FileKind::sniff(bytes) {
        Some(kind) => kind.name().to_string(),
        None if bytes.is_empty() => "empty".to_string(),
        None => format!("unknown, starting {}", hex_prefix(bytes)),
    }
}

fn unknown_bytes(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        format!("the file is empty (0 bytes): {EXPECTED_MAGIC}")
    } else {
        format!("unrecognised file of {} bytes starting {}: {EXPECTED_MAGIC}", bytes.len(), hex_prefix(bytes))
    }
}

/// The modality of request input `index`: text is text, bytes go by their magic bytes, pixels are
/// an image, PCM is audio, a frame list is a video (each frame must be PNG/JPEG bytes or pixels).
/// Unknown bytes are an [`Error::Input`] naming the first bytes seen (hex) and what was expected.
pub fn detect(index: usize, input: &RawInput) -> Result<Modality> {
    match input {
        RawInput::Text(_) => Ok(Modality::Text),
        RawInput::Bytes(b) => {
            FileKind::sniff(b).map(FileKind::modality).ok_or_else(|| Error::input(index, unknown_bytes(b)))
        }
        RawInput::Pixels { .. } => Ok(Modality::Image),
        RawInput::Pcm { .. } => Ok(Modality::Audio),
        RawInput::Frames(frames) => {
            for (k, frame) in frames.iter().enumerate() {
                check_frame_kind(frame).map_err(|d| Error::input(index, format!("video frame {k}: {d}")))?;
            }
            Ok(Modality::Video)
        }
    }
}

/// A request's modality mix as a key: one bit per modality present (bit = modality id;
/// text 1, image 2, audio 4, video 8), whatever the order or count of its inputs, and bit 4
/// for an input whose modality cannot be detected. Requests of one mix run the same encoders,
/// which is what same-modality batching groups by.
pub fn mix_key(inputs: &[RawInput]) -> u64 {
    inputs.iter().enumerate().fold(0, |key, (i, x)| {
        key | match detect(i, x) {
            Ok(m) => 1u64 << m.id(),
            Err(_) => 1 << 4,
        }
    })
}

/// A frame of a frame list must be an image: PNG/JPEG bytes or pixels.
fn check_frame_kind(frame: &RawInput) -> std::result::Result<(), String> {
    let seen = match frame {
        RawInput::Pixels { .. } => return Ok(()),
        RawInput::Bytes(b) => match FileKind::sniff(b) {
            Some(FileKind::Png | FileKind::Jpeg) => return Ok(()),
            Some(kind) => format!("{} bytes", kind.name()),
            None => unknown_bytes(b),
        },
        RawInput::Text(_) => "text".to_string(),
        RawInput::Pcm { .. } => "PCM audio".to_string(),
        RawInput::Frames(_) => "a nested frame list".to_string(),
    };
    Err(format!("is {seen}: expected PNG or JPEG bytes or an RGB pixel tensor"))
}

/// An input after preprocessing: exactly what its encoder consumes.
#[derive(Clone, Debug, PartialEq)]
pub enum Prepared {
    /// Token ids: `[CLS]` + UTF-8 bytes, or a tokenizer's ids.
    Text {
        /// The ids.
        ids: Vec<i32>,
    },
    /// `[S, S, 3]` normalised pixels.
    Image {
        /// The pixels.
        pixels: Vec<f32>,
    },
    /// `[frames, 80]` log-mel features.
    Audio {
        /// The features, frame-major.
        logmel: Vec<f32>,
        /// Number of frames F.
        frames: usize,
    },
    /// `[frames, S, S, 3]` normalised pixels of the sampled frames.
    Video {
        /// The pixels, frame-major.
        pixels: Vec<f32>,
        /// Number of sampled frames N.
        frames: usize,
    },
}

impl Prepared {
    /// The modality this input was prepared as.
    pub fn modality(&self) -> Modality {
        match self {
            Prepared::Text { .. } => Modality::Text,
            Prepared::Image { .. } => Modality::Image,
            Prepared::Audio { .. } => Modality::Audio,
            Prepared::Video { .. } => Modality::Video,
        }
    }

    /// A text input's token ids.
    pub fn text_ids(&self) -> Option<&[i32]> {
        match self {
            Prepared::Text { ids } => Some(ids),
            _ => None,
        }
    }

    /// An image input's `[S, S, 3]` pixels.
    pub fn image_pixels(&self) -> Option<&[f32]> {
        match self {
            Prepared::Image { pixels } => Some(pixels),
            _ => None,
        }
    }

    /// An audio input's log-mel features and frame count.
    pub fn audio_frames(&self) -> Option<(&[f32], usize)> {
        match self {
            Prepared::Audio { logmel, frames } => Some((logmel, *frames)),
            _ => None,
        }
    }

    /// A video input's frame pixels and frame count.
    pub fn video_frames(&self) -> Option<(&[f32], usize)> {
        match self {
            Prepared::Video { pixels, frames } => Some((pixels, *frames)),
            _ => None,
        }
    }
}

/// Turns raw inputs into [`Prepared`] tensors under one config: holds the tokenizer (if any),
/// the image geometry, and the audio front end's precomputed Hann window, mel filterbank and
/// FFT plan, so preparing an input does no setup work. Cheap to share between threads.
#[derive(Clone, Debug)]
pub struct Preprocessor {
    text: text::TextPrep,
    image: image::ImageSpec,
    audio: audio::AudioPrep,
    video: video::VideoSpec,
}

impl Preprocessor {
    /// A preprocessor for `config`, with the HF tokenizer of `tokenizer_json` when given (its
    /// vocabulary must fit `config.text.vocab`), else the built-in byte vocabulary.
    pub fn new(config: &Config, tokenizer_json: Option<&Path>) -> Result<Self> {
        Ok(Preprocessor {
            text: text::TextPrep::new(config, tokenizer_json)?,
            image: image::ImageSpec::new(config),
            audio: audio::AudioPrep::new(config),
            video: video::VideoSpec::new(config),
        })
    }

    /// Detect the modality of request input `index` and preprocess it as MODEL.md says,
    /// enforcing the config's limits. Every problem is an [`Error::Input`] naming `index`.
    pub fn prepare(&self, index: usize, input: &RawInput) -> Result<Prepared> {
        let modality = detect(index, input)?;
        self.prepare_as(modality, input).map_err(|detail| Error::input(index, detail))
    }

    fn prepare_as(&self, modality: Modality, input: &RawInput) -> std::result::Result<Prepared, String> {
        match (modality, input) {
            (Modality::Text, RawInput::Text(s)) => Ok(Prepared::Text { ids: self.text.ids(s)? }),
            (Modality::Image, _) => Ok(Prepared::Image { pixels: self.image.prepare(input)? }),
            (Modality::Audio, RawInput::Bytes(b)) => {
                let (logmel, frames) = self.audio.prepare_wav(b)?;
                Ok(Prepared::Audio { logmel, frames })
            }
            (Modality::Audio, RawInput::Pcm { samples, sample_rate }) => {
                let (logmel, frames) = self.audio.prepare_pcm(samples, *sample_rate)?;
                Ok(Prepared::Audio { logmel, frames })
            }
            (Modality::Video, RawInput::Bytes(b)) => {
                let (pixels, frames) = self.video.prepare_y4m(b, &self.image)?;
                Ok(Prepared::Video { pixels, frames })
            }
            (Modality::Video, RawInput::Frames(list)) => {
                let (pixels, frames) = self.video.prepare_frames(list, &self.image)?;
                Ok(Prepared::Video { pixels, frames })
            }
            (m, other) => Err(format!("{other:?} cannot be prepared as {m}")),
        }
    }

    /// Side S of the square images are brought to.
    pub fn image_size(&self) -> usize {
        self.image.size
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// PNG bytes of an RGB image given by a pixel function.
    pub(crate) fn png(width: u32, height: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
        let img = ::image::RgbImage::from_fn(width, height, |x, y| ::image::Rgb(f(x, y)));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, ::image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn the_mix_key_is_the_set_of_modalities() {
        let text = RawInput::Text("hi".into());
        let pixels = RawInput::Pixels { height: 1, width: 1, data: PixelData::U8(vec![0; 3]) };
        let pcm = RawInput::Pcm { samples: vec![0.0; 4], sample_rate: 16_000 };
        assert_eq!(mix_key(std::slice::from_ref(&text)), 1);
        assert_eq!(mix_key(&[text.clone(), pixels.clone()]), mix_key(&[pixels.clone(), text.clone(), text.clone()]));
        assert_eq!(mix_key(&[pixels.clone(), pcm.clone()]), 2 | 4);
        assert_eq!(mix_key(&[RawInput::Frames(vec![pixels])]), 8);
        assert_eq!(mix_key(&[RawInput::Bytes(b"??".to_vec()), pcm]), 16 | 4, "undetectable: its own bit");
    }

    /// JPEG bytes of a flat grey image.
    pub(crate) fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let img = ::image::RgbImage::from_pixel(width, height, ::image::Rgb([128, 128, 128]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, ::image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    /// 16-bit mono WAV bytes of `samples` (in [-1, 1]) at `rate`.
    pub(crate) fn wav(samples: &[f32], rate: u32) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut out = std::io::Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        for s in samples {
            w.write_sample((s * 32767.0).round() as i16).unwrap();
        }
        w.finalize().unwrap();
        out.into_inner()
    }

    /// A C444 Y4M of `frames` frames, frame `t` all luma `16 + t`, chroma 128.
    pub(crate) fn y4m(width: usize, height: usize, frames: usize) -> Vec<u8> {
        let mut out = format!("YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C444\n").into_bytes();
        for t in 0..frames {
            out.extend_from_slice(b"FRAME\n");
            out.extend(std::iter::repeat_n(16 + t as u8, width * height));
            out.extend(std::iter::repeat_n(128u8, 2 * width * height));
        }
        out
    }

    #[test]
    fn modality_ids_names_and_parse() {
        for (i, m) in Modality::ALL.into_iter().enumerate() {
            assert_eq!(m.id() as usize, i);
            assert_eq!(Modality::parse(m.name()), Some(m));
        }
        assert_eq!(Modality::parse("IMAGE"), Some(Modality::Image));
        assert_eq!(Modality::parse("picture"), None);
        assert_eq!(serde_json::to_string(&Modality::Video).unwrap(), "\"video\"");
    }

    #[test]
    fn detects_each_kind() {
        let cases = [
            (RawInput::Text("hi".into()), Modality::Text),
            (RawInput::Bytes(png(2, 2, |_, _| [0, 0, 0])), Modality::Image),
            (RawInput::Bytes(jpeg(8, 8)), Modality::Image),
            (RawInput::Bytes(wav(&[0.0; 10], 16000)), Modality::Audio),
            (RawInput::Bytes(y4m(2, 2, 1)), Modality::Video),
            (RawInput::Pixels { height: 1, width: 1, data: PixelData::U8(vec![0; 3]) }, Modality::Image),
            (RawInput::Pcm { samples: vec![0.0], sample_rate: 16000 }, Modality::Audio),
            (RawInput::Frames(vec![RawInput::Bytes(png(2, 2, |_, _| [0, 0, 0]))]), Modality::Video),
        ];
        for (input, want) in cases {
            assert_eq!(detect(0, &input).unwrap(), want, "{input:?}");
        }
    }

    #[test]
    fn unknown_bytes_name_what_was_seen_and_expected() {
        let err = detect(3, &RawInput::Bytes(b"GIF89a\x01\x00".to_vec())).unwrap_err().to_string();
        assert!(err.starts_with("input 3:"), "{err}");
        assert!(err.contains("47 49 46 38 39 61"), "{err}");
        assert!(err.contains("PNG") && err.contains("YUV4MPEG2"), "{err}");
        let err = detect(0, &RawInput::Bytes(Vec::new())).unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
        let err = detect(0, &RawInput::Frames(vec![RawInput::Bytes(wav(&[0.0], 8000))])).unwrap_err().to_string();
        assert!(err.contains("frame 0") && err.contains("RIFF/WAVE"), "{err}");
    }

    #[test]
    fn prepare_routes_each_modality() {
        let config = Config::omni_small();
        let pre = Preprocessor::new(&config, None).unwrap();
        let s = config.image.size;
        let text = pre.prepare(0, &RawInput::Text("ab".into())).unwrap();
        assert_eq!(text, Prepared::Text { ids: vec![256, 97, 98] });
        let img = pre.prepare(1, &RawInput::Bytes(png(5, 3, |_, _| [255, 0, 0]))).unwrap();
        let Prepared::Image { pixels } = &img else { panic!("{img:?}") };
        assert_eq!(pixels.len(), s * s * 3);
        let audio = pre.prepare(2, &RawInput::Bytes(wav(&[0.1; 800], 16000))).unwrap();
        assert_eq!(audio.modality(), Modality::Audio);
        let Prepared::Audio { logmel, frames } = &audio else { panic!("{audio:?}") };
        assert_eq!((*frames, logmel.len()), (3, 3 * 80));
        let video = pre.prepare(3, &RawInput::Bytes(y4m(4, 4, 3))).unwrap();
        let Prepared::Video { pixels, frames } = &video else { panic!("{video:?}") };
        assert_eq!((*frames, pixels.len()), (3, 3 * s * s * 3));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Damaged files of every kind give errors (or, by luck, results) — never a panic.
        #[test]
        fn damaged_files_never_panic(kind in 0usize..4, cut in 0usize..2000, flips in proptest::collection::vec((0usize..4000, 0u8..=255), 0..8)) {
            let config = Config::omni_small();
            let pre = Preprocessor::new(&config, None).unwrap();
            let mut bytes = match kind {
                0 => png(9, 5, |x, y| [x as u8 * 20, y as u8 * 40, 3]),
                1 => jpeg(9, 5),
                2 => wav(&[0.25; 700], 22050),
                _ => y4m(6, 4, 3),
            };
            for (at, value) in flips {
                let n = bytes.len();
                bytes[at % n] = value;
            }
            bytes.truncate(bytes.len().saturating_sub(cut));
            let _ = pre.prepare(0, &RawInput::Bytes(bytes));
        }
    }
}
