//! Image preprocessing: PNG/JPEG decoding with the pixel limit checked from the file header
//! before anything is decoded, pixel tensors, the `crop`/`pad` geometry (triangle-filter
//! resize) and the per-channel normalisation, giving `[S, S, 3]` f32.

use std::io::Cursor;

use ::image::imageops::{self, FilterType};
use ::image::{ImageBuffer, ImageFormat, ImageReader, Limits, Pixel, Primitive, Rgb, Rgb32FImage, RgbImage};

use super::{FileKind, PixelData, RawInput, hex_prefix};
use crate::config::{Config, ResizePolicy};

/// The image geometry and normalisation of a config.
#[derive(Clone, Debug)]
pub(crate) struct ImageSpec {
    /// Side S of the output square.
    pub(crate) size: usize,
    mean: [f32; 3],
    std: [f32; 3],
    policy: ResizePolicy,
    /// Most pixels an input may hold.
    pub(crate) max_pixels: u64,
}

/// A decoded RGB picture, in 8-bit or float (0..=255) samples.
pub(crate) enum Picture {
    /// 8-bit samples.
    U8(RgbImage),
    /// Float samples on the 0..=255 scale.
    F32(Rgb32FImage),
}

impl ImageSpec {
    pub(crate) fn new(config: &Config) -> Self {
        ImageSpec {
            size: config.image.size,
            mean: config.image.mean,
            std: config.image.std,
            policy: config.image.policy,
            max_pixels: config.limits.max_pixels,
        }
    }

    /// `[S, S, 3]` normalised pixels of an image input (PNG/JPEG bytes or a pixel tensor).
    pub(crate) fn prepare(&self, input: &RawInput) -> Result<Vec<f32>, String> {
        let picture = self.picture(input)?;
        self.prepare_picture(&picture)
    }

    /// The picture of an image input, with the pixel limit enforced before decoding.
    pub(crate) fn picture(&self, input: &RawInput) -> Result<Picture, String> {
        match input {
            RawInput::Bytes(bytes) => decode(bytes, self.max_pixels).map(Picture::U8),
            RawInput::Pixels { height, width, data } => from_pixels(*height, *width, data, self.max_pixels),
            other => Err(format!("{other:?} is not an image: expected PNG/JPEG bytes or an RGB pixel tensor")),
        }
    }

    /// Geometry then normalisation of a decoded picture.
    pub(crate) fn prepare_picture(&self, picture: &Picture) -> Result<Vec<f32>, String> {
        let values = match picture {
            Picture::U8(img) => self.square(img)?,
            Picture::F32(img) => self.square(img)?,
        };
        Ok(self.normalise(&values))
    }

    /// `x = (v / 255 − mean[c]) / std[c]` for every sample of an `[S, S, 3]` 0..=255 array.
    fn normalise(&self, values: &[f32]) -> Vec<f32> {
        values
            .chunks_exact(3)
            .flat_map(|px| (0..3).map(move |c| (px[c] / 255.0 - self.mean[c]) / self.std[c]))
            .collect()
    }

    /// The `[S, S, 3]` 0..=255 samples of `img` after the resize policy.
    fn square<T>(&self, img: &ImageBuffer<Rgb<T>, Vec<T>>) -> Result<Vec<f32>, String>
    where
        T: Primitive + Into<f32> + 'static,
        Rgb<T>: Pixel<Subpixel = T>,
    {
        let s = u32::try_from(self.size).map_err(|_| format!("image.size {} is too large", self.size))?;
        let (w, h) = img.dimensions();
        if (w, h) == (s, s) {
            return Ok(window(img, 0, 0, s));
        }
        let (nw, nh) = resized_dimensions(w, h, s, self.policy);
        if u64::from(nw) * u64::from(nh) > self.max_pixels.max(u64::from(s) * u64::from(s)) {
            return Err(format!(
                "image of {w}×{h} would be resized to {nw}×{nh}, over limits.max_pixels = {}: the aspect ratio is too \
                 extreme",
                self.max_pixels
            ));
        }
        let resized =
            if (nw, nh) == (w, h) { img.clone() } else { imageops::resize(img, nw, nh, FilterType::Triangle) };
        Ok(match self.policy {
            ResizePolicy::Crop => window(&resized, (nw - s) / 2, (nh - s) / 2, s),
            ResizePolicy::Pad => window(&resized, 0, 0, s),
        })
    }
}

/// Size after resizing `w×h`: `crop` brings the shorter side to `s`, `pad` the longer side; the
/// other side keeps the aspect ratio, rounded to the nearest integer (halves up), at least 1.
pub fn resized_dimensions(w: u32, h: u32, s: u32, policy: ResizePolicy) -> (u32, u32) {
    let scale = |other: u32, side: u32| -> u32 {
        let (o, sd, sz) = (u64::from(other), u64::from(side.max(1)), u64::from(s));
        u32::try_from((2 * o * sz + sd) / (2 * sd)).unwrap_or(u32::MAX).max(1)
    };
    let width_is_reference = match policy {
        ResizePolicy::Crop => w <= h,
        ResizePolicy::Pad => w >= h,
    };
    if width_is_reference { (s, scale(h, w)) } else { (scale(w, h), s) }
}

/// The `s×s` window of `img` at `(x0, y0)` as 0..=255 f32 samples; pixels outside `img` are 0
/// (black), which is how `pad` fills its canvas.
fn window<T>(img: &ImageBuffer<Rgb<T>, Vec<T>>, x0: u32, y0: u32, s: u32) -> Vec<f32>
where
    T: Primitive + Into<f32> + 'static,
    Rgb<T>: Pixel<Subpixel = T>,
{
    let mut out = Vec::with_capacity(s as usize * s as usize * 3);
    for y in 0..s {
        for x in 0..s {
            match img.get_pixel_checked(x0 + x, y0 + y) {
                Some(px) => out.extend(px.0.iter().map(|&v| v.into())),
                None => out.extend([0.0; 3]),
            }
        }
    }
    out
}

/// Refuse `w×h` when empty or over `max_pixels`.
pub(crate) fn check_pixels(w: u64, h: u64, max_pixels: u64) -> Result<(), String> {
    if w == 0 || h == 0 {
        return Err(format!("image is {w}×{h}: expected positive dimensions"));
    }
    match w.checked_mul(h) {
        Some(n) if n <= max_pixels => Ok(()),
        n => Err(format!(
            "image of {w}×{h} = {} pixels is over limits.max_pixels = {max_pixels}",
            n.map_or_else(|| "too many".to_string(), |n| n.to_string())
        )),
    }
}

/// Decode PNG/JPEG bytes into RGB8 (alpha dropped, grey expanded), reading the dimensions from
/// the file header first so an oversized image is refused without allocating it.
pub(crate) fn decode(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, String> {
    let (format, name, (w, h)) = match FileKind::sniff(bytes) {
        Some(FileKind::Png) => (ImageFormat::Png, "PNG", png_dimensions(bytes)?),
        Some(FileKind::Jpeg) => (ImageFormat::Jpeg, "JPEG", jpeg_dimensions(bytes)?),
        _ => return Err(format!("bytes starting {} are not PNG or JPEG", hex_prefix(bytes))),
    };
    check_pixels(u64::from(w), u64::from(h), max_pixels)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    let needed = u64::from(w) * u64::from(h) * 8 + (64 << 20);
    limits.max_alloc = Some(needed.max(512 << 20));
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| format!("corrupt {name} image (header says {w}×{h}): {e}"))?;
    Ok(img.to_rgb8())
}

/// Width and height from a PNG's IHDR chunk (which must come first).
fn png_dimensions(bytes: &[u8]) -> Result<(u32, u32), String> {
    if bytes.get(12..16) != Some(b"IHDR".as_slice()) {
        return Err(format!(
            "corrupt PNG: expected the IHDR chunk at byte 8, found {}",
            hex_prefix(bytes.get(8..).unwrap_or_default())
        ));
    }
    match (be32(bytes, 16), be32(bytes, 20)) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err(format!("corrupt PNG: the file ends inside its IHDR chunk ({} bytes)", bytes.len())),
    }
}

/// Width and height from a JPEG's frame header (the first SOFn marker segment).
fn jpeg_dimensions(bytes: &[u8]) -> Result<(u32, u32), String> {
    let mut i = 2;
    loop {
        match bytes.get(i) {
            Some(0xFF) => {}
            Some(b) => return Err(format!("corrupt JPEG: expected a marker (FF) at byte {i}, found {b:02X}")),
            None => return Err(format!("corrupt JPEG: the file ends at byte {i} before its frame header (SOF)")),
        }
        while bytes.get(i) == Some(&0xFF) {
            i += 1;
        }
        let Some(&marker) = bytes.get(i) else {
            return Err(format!("corrupt JPEG: the file ends at byte {i} inside a marker"));
        };
        i += 1;
        match marker {
            0x01 | 0xD0..=0xD8 => continue,
            0xD9 | 0xDA => {
                return Err(format!("corrupt JPEG: marker {marker:02X} comes before any frame header (SOF)"));
            }
            _ => {}
        }
        let Some(len) = be16(bytes, i) else {
            return Err(format!("corrupt JPEG: the file ends at byte {i} inside marker {marker:02X}"));
        };
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            return match (be16(bytes, i + 3), be16(bytes, i + 5)) {
                (Some(h), Some(w)) => Ok((u32::from(w), u32::from(h))),
                _ => Err(format!("corrupt JPEG: the file ends inside its frame header at byte {i}")),
            };
        }
        if len < 2 {
            return Err(format!("corrupt JPEG: marker {marker:02X} at byte {i} has length {len}, expected at least 2"));
        }
        i += usize::from(len);
    }
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// A picture from an `[height, width, 3]` tensor, checked for shape, limit and (for floats)
/// finite 0..=255 values.
pub(crate) fn from_pixels(height: usize, width: usize, data: &PixelData, max_pixels: u64) -> Result<Picture, String> {
    check_pixels(width as u64, height as u64, max_pixels)?;
    let expected = height.checked_mul(width).and_then(|n| n.checked_mul(3));
    if expected != Some(data.len()) {
        return Err(format!(
            "pixel tensor of {height}×{width}×3 needs {} samples, got {}",
            expected.map_or_else(|| "too many".to_string(), |n| n.to_string()),
            data.len()
        ));
    }
    let too_big = || format!("pixel tensor of {height}×{width} is too large");
    let (w, h) = (u32::try_from(width).map_err(|_| too_big())?, u32::try_from(height).map_err(|_| too_big())?);
    match data {
        PixelData::U8(v) => RgbImage::from_raw(w, h, v.clone()).map(Picture::U8).ok_or_else(too_big),
        PixelData::F32(v) => {
            if let Some((i, bad)) = v.iter().enumerate().find(|(_, x)| !(x.is_finite() && (0.0..=255.0).contains(*x))) {
                return Err(format!("pixel sample {i} is {bad}: expected a finite value in 0..=255"));
            }
            Rgb32FImage::from_raw(w, h, v.clone()).map(Picture::F32).ok_or_else(too_big)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::tests::{jpeg, png};

    fn spec(size: usize, policy: ResizePolicy) -> ImageSpec {
        let mut config = Config::omni_small();
        config.image.size = size;
        config.image.policy = policy;
        config.image.mean = [0.0; 3];
        config.image.std = [1.0 / 255.0; 3];
        ImageSpec::new(&config)
    }

    /// The normalised RGB at (x, y) of an `[S, S, 3]` output, back on the 0..=255 scale.
    fn at(out: &[f32], s: usize, x: usize, y: usize) -> [f32; 3] {
        let i = (y * s + x) * 3;
        [out[i], out[i + 1], out[i + 2]]
    }

    fn near(a: [f32; 3], b: [f32; 3]) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1.5)
    }

    #[test]
    fn square_image_is_used_unchanged_and_normalised() {
        let mut config = Config::omni_small();
        config.image.size = 2;
        config.image.mean = [0.5, 0.25, 0.0];
        config.image.std = [0.5, 0.5, 2.0];
        let spec = ImageSpec::new(&config);
        let bytes = png(2, 2, |x, y| [(x * 255) as u8, (y * 51) as u8, 255]);
        let out = spec.prepare(&RawInput::Bytes(bytes)).unwrap();
        let want = [-1.0, -0.5, 0.5, 1.0, -0.5, 0.5, -1.0, -0.1, 0.5, 1.0, -0.1, 0.5];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn crop_takes_the_centre_of_a_wide_image() {
        // 2:1 image: red, then green over more than the middle half, then blue → the centred
        // crop (source columns 16..48, plus the filter's reach of 2) sees only green.
        let bytes = png(64, 32, |x, _| match x {
            0..12 => [255, 0, 0],
            12..52 => [0, 255, 0],
            _ => [0, 0, 255],
        });
        let s = 16;
        let out = spec(s, ResizePolicy::Crop).prepare(&RawInput::Bytes(bytes)).unwrap();
        assert_eq!(out.len(), s * s * 3);
        for (x, y) in [(0, 0), (15, 0), (0, 15), (15, 15), (8, 8)] {
            assert!(near(at(&out, s, x, y), [0.0, 255.0, 0.0]), "{x},{y}: {:?}", at(&out, s, x, y));
        }
        assert_eq!(resized_dimensions(64, 32, 16, ResizePolicy::Crop), (32, 16));
        assert_eq!(resized_dimensions(30, 61, 16, ResizePolicy::Crop), (16, 33));
    }

    #[test]
    fn pad_puts_the_image_top_left_on_black() {
        let bytes = png(64, 32, |x, _| if x < 32 { [255, 0, 0] } else { [0, 0, 255] });
        let s = 16;
        let out = spec(s, ResizePolicy::Pad).prepare(&RawInput::Bytes(bytes)).unwrap();
        assert!(near(at(&out, s, 0, 0), [255.0, 0.0, 0.0]));
        assert!(near(at(&out, s, 15, 0), [0.0, 0.0, 255.0]));
        assert!(near(at(&out, s, 15, 7), [0.0, 0.0, 255.0]));
        for x in 0..s {
            assert_eq!(at(&out, s, x, 8), [0.0; 3], "row 8 must be padding");
            assert_eq!(at(&out, s, x, 15), [0.0; 3]);
        }
        assert_eq!(resized_dimensions(32, 64, 16, ResizePolicy::Pad), (8, 16));
    }

    #[test]
    fn huge_png_header_is_refused_before_decoding() {
        let mut bytes = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
        bytes.extend(20000u32.to_be_bytes());
        bytes.extend(20000u32.to_be_bytes());
        bytes.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
        let start = std::time::Instant::now();
        let err = spec(16, ResizePolicy::Crop).prepare(&RawInput::Bytes(bytes)).unwrap_err();
        assert!(start.elapsed().as_millis() < 100);
        assert!(err.contains("20000×20000") && err.contains("max_pixels = 40000000"), "{err}");
    }

    #[test]
    fn corrupt_images_are_clear_errors() {
        let mut bytes = png(8, 8, |x, y| [x as u8, y as u8, 0]);
        let n = bytes.len();
        bytes[n / 2..].fill(0x55);
        let err = spec(8, ResizePolicy::Crop).prepare(&RawInput::Bytes(bytes)).unwrap_err();
        assert!(err.contains("corrupt PNG") && err.contains("8×8"), "{err}");
        let err = spec(8, ResizePolicy::Crop).prepare(&RawInput::Bytes(b"\x89PNG\r\n\x1a\nxx".to_vec())).unwrap_err();
        assert!(err.contains("IHDR"), "{err}");
        let mut j = jpeg(16, 16);
        j.truncate(j.len() / 2);
        assert!(spec(8, ResizePolicy::Crop).prepare(&RawInput::Bytes(j)).is_err());
        let err = spec(8, ResizePolicy::Crop).prepare(&RawInput::Bytes(vec![0xFF, 0xD8, 0xFF])).unwrap_err();
        assert!(err.contains("corrupt JPEG"), "{err}");
    }

    #[test]
    fn grey_alpha_is_expanded_and_alpha_dropped() {
        let img = ::image::GrayAlphaImage::from_fn(2, 2, |x, _| ::image::LumaA([if x == 0 { 10 } else { 200 }, 0]));
        let mut bytes = Cursor::new(Vec::new());
        img.write_to(&mut bytes, ImageFormat::Png).unwrap();
        let out = spec(2, ResizePolicy::Crop).prepare(&RawInput::Bytes(bytes.into_inner())).unwrap();
        assert!(near(at(&out, 2, 0, 1), [10.0; 3]) && near(at(&out, 2, 1, 0), [200.0; 3]), "{out:?}");
    }

    #[test]
    fn jpeg_header_gives_dimensions() {
        assert_eq!(jpeg_dimensions(&jpeg(40, 24)).unwrap(), (40, 24));
        let out = spec(8, ResizePolicy::Crop).prepare(&RawInput::Bytes(jpeg(40, 24))).unwrap();
        assert!(near(at(&out, 8, 4, 4), [128.0; 3]), "{:?}", at(&out, 8, 4, 4));
    }

    #[test]
    fn pixel_tensors_are_checked() {
        let sp = spec(2, ResizePolicy::Crop);
        let f = RawInput::Pixels { height: 2, width: 2, data: PixelData::F32(vec![100.5; 12]) };
        assert!(sp.prepare(&f).unwrap().iter().all(|&v| (v - 100.5).abs() < 1e-3));
        let short = RawInput::Pixels { height: 2, width: 2, data: PixelData::U8(vec![0; 11]) };
        assert!(sp.prepare(&short).unwrap_err().contains("needs 12 samples, got 11"));
        let nan = RawInput::Pixels { height: 1, width: 1, data: PixelData::F32(vec![0.0, f32::NAN, 0.0]) };
        assert!(sp.prepare(&nan).unwrap_err().contains("sample 1"));
        let huge = RawInput::Pixels { height: usize::MAX, width: 3, data: PixelData::U8(vec![]) };
        assert!(sp.prepare(&huge).unwrap_err().contains("max_pixels"));
        let extreme = RawInput::Pixels { height: 1, width: 100_000, data: PixelData::U8(vec![0; 300_000]) };
        let err = spec(224, ResizePolicy::Crop).prepare(&extreme).unwrap_err();
        assert!(err.contains("aspect ratio"), "{err}");
    }
}
