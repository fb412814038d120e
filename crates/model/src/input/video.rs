//! Video preprocessing: the YUV4MPEG2 (Y4M) parser (4:2:0 and 4:4:4, BT.601 limited range to
//! RGB), frame-list inputs, and the even frame sampling `floor((i + 0.5)·T / N)`; every sampled
//! frame then goes through the image path, giving `[N, S, S, 3]` f32.

use ::image::RgbImage;

use super::image::{ImageSpec, Picture, check_pixels};
use super::{RawInput, hex_prefix};
use crate::config::Config;

/// Longest header line (stream or frame) accepted, in bytes.
const MAX_HEADER: usize = 64 * 1024;

/// The video limits and sampling of a config.
#[derive(Clone, Debug)]
pub(crate) struct VideoSpec {
    frames: usize,
    max_frames: usize,
}

impl VideoSpec {
    pub(crate) fn new(config: &Config) -> Self {
        VideoSpec { frames: config.video.frames, max_frames: config.limits.max_video_frames }
    }

    /// `[N, S, S, 3]` pixels and N of a Y4M file.
    pub(crate) fn prepare_y4m(&self, bytes: &[u8], image: &ImageSpec) -> Result<(Vec<f32>, usize), String> {
        let video = Y4m::parse(bytes, image.max_pixels, self.max_frames)?;
        let picks = sample_indices(video.frames.len(), self.frames);
        let mut pixels = Vec::new();
        for &t in &picks {
            let rgb = video.frame_rgb(t)?;
            pixels.extend(image.prepare_picture(&Picture::U8(rgb)).map_err(|e| format!("video frame {t}: {e}"))?);
        }
        Ok((pixels, picks.len()))
    }

    /// `[N, S, S, 3]` pixels and N of a frame list (only the sampled frames are decoded).
    pub(crate) fn prepare_frames(&self, list: &[RawInput], image: &ImageSpec) -> Result<(Vec<f32>, usize), String> {
        self.check_count(list.len())?;
        let picks = sample_indices(list.len(), self.frames);
        let mut pixels = Vec::new();
        for &t in &picks {
            let frame = list.get(t).ok_or_else(|| format!("video frame {t} is missing"))?;
            pixels.extend(image.prepare(frame).map_err(|e| format!("video frame {t}: {e}"))?);
        }
        Ok((pixels, picks.len()))
    }

    fn check_count(&self, count: usize) -> Result<(), String> {
        if count == 0 {
            return Err("video has no frames: expected at least one".to_string());
        }
        if count > self.max_frames {
            return Err(format!("video has {count} frames, over limits.max_video_frames = {}", self.max_frames));
        }
        Ok(())
    }
}

/// Indices of the `min(wanted, total)` frames taken from `total`: `floor((i + 0.5)·total / N)`
/// for `i = 0..N` (computed exactly in integers).
pub fn sample_indices(total: usize, wanted: usize) -> Vec<usize> {
    let n = wanted.min(total);
    (0..n).map(|i| ((2 * i + 1) as u128 * total as u128 / (2 * n) as u128) as usize).collect()
}

/// Chroma layout of a Y4M stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chroma {
    /// 4:2:0: one U and one V sample per 2×2 luma block.
    C420,
    /// 4:4:4: full-resolution chroma.
    C444,
}

/// A parsed Y4M stream: its geometry and a slice of every frame's planar data.
#[derive(Debug)]
struct Y4m<'a> {
    width: usize,
    height: usize,
    chroma: Chroma,
    frames: Vec<&'a [u8]>,
}

impl<'a> Y4m<'a> {
    /// Parse the stream header and locate every frame, checking sizes and limits.
    fn parse(bytes: &'a [u8], max_pixels: u64, max_frames: usize) -> Result<Self, String> {
        let (header, mut pos) = line(bytes, 0).ok_or_else(|| {
            format!("Y4M stream header has no terminating newline within its first {MAX_HEADER} bytes")
        })?;
        let (width, height, chroma) = parse_header(header)?;
        check_pixels(width as u64, height as u64, max_pixels).map_err(|e| format!("Y4M frame size: {e}"))?;
        let frame_len = frame_bytes(width, height, chroma).ok_or("Y4M frame size overflows")?;
        let mut frames = Vec::new();
        while pos < bytes.len() {
            let t = frames.len();
            if t >= max_frames {
                return Err(format!("video has more than limits.max_video_frames = {max_frames} frames"));
            }
            let rest = bytes.get(pos..).unwrap_or_default();
            if !rest.starts_with(b"FRAME") {
                return Err(misplaced_frame(bytes, pos, t, frame_len));
            }
            let (_, start) =
                line(bytes, pos).ok_or_else(|| format!("Y4M frame {t} header has no terminating newline"))?;
            let data = bytes.get(start..start.saturating_add(frame_len)).ok_or_else(|| {
                format!(
                    "Y4M frame {t} is truncated: expected {frame_len} bytes of frame data ({width}×{height} {chroma:?}), \
                     seen {}",
                    bytes.len().saturating_sub(start)
                )
            })?;
            frames.push(data);
            pos = start + frame_len;
        }
        if frames.is_empty() {
            return Err("video has no frames: expected at least one FRAME".to_string());
        }
        Ok(Y4m { width, height, chroma, frames })
    }

    /// Frame `t` converted to RGB8 (BT.601 limited range; 4:2:0 chroma taken at `(y/2, x/2)`).
    fn frame_rgb(&self, t: usize) -> Result<RgbImage, String> {
        let data = self.frames.get(t).ok_or_else(|| format!("video frame {t} is missing"))?;
        let (w, h) = (self.width, self.height);
        let (cw, chroma_w, chroma_plane) = match self.chroma {
            Chroma::C420 => (w.div_ceil(2), 2, w.div_ceil(2) * h.div_ceil(2)),
            Chroma::C444 => (w, 1, w * h),
        };
        let (luma, chroma) = data.split_at_checked(w * h).ok_or("video frame is shorter than its luma plane")?;
        let (u_plane, v_plane) =
            chroma.split_at_checked(chroma_plane).ok_or("video frame is shorter than its U plane")?;
        let mut rgb = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                let ci = (y / chroma_w) * cw + x / chroma_w;
                let sample = |plane: &[u8], i: usize| plane.get(i).copied().unwrap_or(128);
                rgb.extend(yuv_to_rgb(sample(luma, y * w + x), sample(u_plane, ci), sample(v_plane, ci)));
            }
        }
        let too_big = || format!("video frame of {w}×{h} is too large");
        let (w32, h32) = (u32::try_from(w).map_err(|_| too_big())?, u32::try_from(h).map_err(|_| too_big())?);
        RgbImage::from_raw(w32, h32, rgb).ok_or_else(too_big)
    }
}

/// BT.601 limited range YUV → RGB, each channel rounded and clamped to `0..=255`.
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = f32::from(y) - 16.0;
    let d = f32::from(u) - 128.0;
    let e = f32::from(v) - 128.0;
    let to_u8 = |x: f32| x.round().clamp(0.0, 255.0) as u8;
    [
        to_u8(1.164383 * c + 1.596027 * e),
        to_u8(1.164383 * c - 0.391762 * d - 0.812968 * e),
        to_u8(1.164383 * c + 2.017232 * d),
    ]
}

/// The line starting at `from` (without its `\n`) and the position after the `\n`.
fn line(bytes: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let rest = bytes.get(from..)?;
    let end = rest.iter().take(MAX_HEADER).position(|&b| b == b'\n')?;
    Some((rest.get(..end)?, from + end + 1))
}

/// Width, height and chroma layout from the stream header line.
fn parse_header(header: &[u8]) -> Result<(usize, usize, Chroma), String> {
    let text = String::from_utf8_lossy(header);
    let mut words = text.split(' ').filter(|w| !w.is_empty());
    if words.next() != Some("YUV4MPEG2") {
        return Err(format!("Y4M header must start with YUV4MPEG2, found {}", hex_prefix(header)));
    }
    let (mut width, mut height, mut chroma) = (None, None, Chroma::C420);
    for word in words {
        let (tag, value) = word.split_at_checked(1).unwrap_or((word, ""));
        let number = || value.parse::<usize>().map_err(|_| format!("Y4M header {tag}{value}: expected {tag}<integer>"));
        match tag {
            "W" => width = Some(number()?),
            "H" => height = Some(number()?),
            "C" => chroma = parse_chroma(value)?,
            _ => {}
        }
    }
    match (width, height) {
        (Some(w), Some(h)) => Ok((w, h, chroma)),
        _ => Err(format!("Y4M header '{text}' lacks its W (width) or H (height) tag")),
    }
}

fn parse_chroma(value: &str) -> Result<Chroma, String> {
    match value {
        "420jpeg" | "420paldv" | "420mpeg2" | "420" => Ok(Chroma::C420),
        "444" => Ok(Chroma::C444),
        other => Err(format!(
            "Y4M colourspace C{other} is not supported: expected C420jpeg, C420paldv, C420mpeg2, C420 or C444"
        )),
    }
}

/// Bytes of one frame's planar data.
fn frame_bytes(width: usize, height: usize, chroma: Chroma) -> Option<usize> {
    let luma = width.checked_mul(height)?;
    let chroma_plane = match chroma {
        Chroma::C420 => width.div_ceil(2).checked_mul(height.div_ceil(2))?,
        Chroma::C444 => luma,
    };
    luma.checked_add(chroma_plane.checked_mul(2)?)
}

/// The error for a frame that does not start where the previous frame's size says: the
/// previous frame held a different number of bytes than the header implies.
fn misplaced_frame(bytes: &[u8], pos: usize, t: usize, frame_len: usize) -> String {
    let found = hex_prefix(bytes.get(pos..).unwrap_or_default());
    if t == 0 {
        return format!("expected FRAME at byte {pos} after the Y4M header, found {found}");
    }
    let prev_start = pos.saturating_sub(frame_len);
    let next = bytes.get(prev_start..).and_then(|r| r.windows(5).position(|w| w == b"FRAME"));
    let seen = next.unwrap_or(bytes.len() - prev_start);
    format!(
        "Y4M frame {} has {seen} bytes of frame data, expected {frame_len} from the header's frame size \
         (no FRAME at byte {pos}, found {found})",
        t - 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::image::ImageSpec;
    use crate::input::tests::{png, y4m};

    fn specs(frames: usize, max_frames: usize) -> (VideoSpec, ImageSpec) {
        let mut config = Config::omni_small();
        config.video.frames = frames;
        config.limits.max_video_frames = max_frames;
        config.image.size = 4;
        config.image.mean = [0.0; 3];
        config.image.std = [1.0 / 255.0; 3];
        (VideoSpec::new(&config), ImageSpec::new(&config))
    }

    #[test]
    fn sampling_indices() {
        assert_eq!(sample_indices(10, 4), vec![1, 3, 6, 8]);
        assert_eq!(sample_indices(3, 8), vec![0, 1, 2]);
        assert_eq!(sample_indices(100, 1), vec![50]);
        assert_eq!(sample_indices(9, 3), vec![1, 4, 7]);
        assert_eq!(sample_indices(0, 3), Vec::<usize>::new());
    }

    #[test]
    fn y4m_444_frames_are_sampled_and_converted() {
        let (video, image) = specs(2, 100);
        let (pixels, n) = video.prepare_y4m(&y4m(4, 4, 5), &image).unwrap();
        assert_eq!((n, pixels.len()), (2, 2 * 4 * 4 * 3));
        // Frames 1 and 3 (luma 17 and 19, neutral chroma) → grey round(1.164383·(Y − 16)).
        assert!(pixels[..48].iter().all(|&v| (v - 1.0).abs() < 1e-3), "{:?}", &pixels[..3]);
        assert!(pixels[48..].iter().all(|&v| (v - 3.0).abs() < 1e-3), "{:?}", &pixels[48..51]);
    }

    #[test]
    fn y4m_420_chroma_is_sampled_at_half_resolution() {
        // 3×2 frame, no C tag (→ 420jpeg): chroma planes are 2×1; U/V of column pair 1 are red-ish.
        let mut bytes = b"YUV4MPEG2 W3 H2 F30:1\nFRAME\n".to_vec();
        bytes.extend([100u8; 6]);
        bytes.extend([128, 90]);
        bytes.extend([128, 240]);
        let y = Y4m::parse(&bytes, 100, 10).unwrap();
        let rgb = y.frame_rgb(0).unwrap();
        let grey = yuv_to_rgb(100, 128, 128);
        assert_eq!(grey, [98, 98, 98]);
        assert_eq!(rgb.get_pixel(0, 0).0, grey);
        assert_eq!(rgb.get_pixel(1, 1).0, grey);
        let red = yuv_to_rgb(100, 90, 240);
        assert_eq!(red, [255, 22, 21]);
        assert_eq!(rgb.get_pixel(2, 0).0, red);
        assert_eq!(rgb.get_pixel(2, 1).0, red);
    }

    #[test]
    fn y4m_errors_name_what_was_expected() {
        let (video, image) = specs(8, 3);
        let mut wrong = b"YUV4MPEG2 W4 H4 C444\nFRAME\n".to_vec();
        wrong.extend([16u8; 40]);
        wrong.extend(b"FRAME\n");
        wrong.extend([16u8; 48]);
        let err = video.prepare_y4m(&wrong, &image).unwrap_err();
        assert!(err.contains("frame 0 has 40 bytes") && err.contains("expected 48"), "{err}");
        let mut truncated = y4m(4, 4, 2);
        truncated.truncate(truncated.len() - 10);
        let err = video.prepare_y4m(&truncated, &image).unwrap_err();
        assert!(
            err.contains("frame 1 is truncated") && err.contains("expected 48") && err.contains("seen 38"),
            "{err}"
        );
        let err = video.prepare_y4m(&y4m(4, 4, 4), &image).unwrap_err();
        assert!(err.contains("max_video_frames = 3"), "{err}");
        let err = video.prepare_y4m(b"YUV4MPEG2 W20000 H20000 C420\nFRAME\n", &image).unwrap_err();
        assert!(err.contains("20000×20000") && err.contains("max_pixels"), "{err}");
        let err = video.prepare_y4m(b"YUV4MPEG2 W2 H2 Cmono\n", &image).unwrap_err();
        assert!(err.contains("Cmono") && err.contains("C444"), "{err}");
        let err = video.prepare_y4m(b"YUV4MPEG2 W2 H2\n", &image).unwrap_err();
        assert!(err.contains("no frames"), "{err}");
        let err = video.prepare_y4m(b"YUV4MPEG2 W2\n", &image).unwrap_err();
        assert!(err.contains("H (height)"), "{err}");
    }

    #[test]
    fn frame_lists_are_sampled() {
        let (video, image) = specs(2, 10);
        let frames: Vec<RawInput> = (0..4u8).map(|t| RawInput::Bytes(png(4, 4, move |_, _| [t * 10, 0, 0]))).collect();
        let (pixels, n) = video.prepare_frames(&frames, &image).unwrap();
        assert_eq!(n, 2);
        assert!((pixels[0] - 10.0).abs() < 1e-3 && (pixels[48] - 30.0).abs() < 1e-3, "{} {}", pixels[0], pixels[48]);
        assert!(video.prepare_frames(&[], &image).unwrap_err().contains("no frames"));
        let (few, image) = specs(2, 3);
        assert!(few.prepare_frames(&frames, &image).unwrap_err().contains("4 frames"));
    }
}
