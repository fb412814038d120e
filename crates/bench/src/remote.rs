//! A remote target: a running `omnifuse serve` reached through the HTTP client. Workload
//! requests become wire inputs once, up front (pixel tensors → PNG, PCM → 16-bit WAV, frame
//! lists → PNG frames), so encoding them is never timed. A batch's requests are sent at once,
//! one connection each, and the server's own batcher groups them again; each answer's stage
//! times are the server's.

use std::collections::HashMap;
use std::io::Cursor;

use omnifuse_client::{Input, Parameters, UnifiedModelClient};
use omnifuse_model::input::{PixelData, RawInput};

use crate::target::{Completion, Target, stage_map};
use crate::workload::Request;

/// A server at an endpoint, answering with the parameters given here.
pub struct HttpTarget {
    client: UnifiedModelClient,
    endpoint: String,
    params: Parameters,
    /// Wire inputs of each pooled request, found by the request's address.
    wire: HashMap<usize, Vec<Input>>,
}

fn png(height: usize, width: usize, data: &PixelData) -> Result<Vec<u8>, String> {
    let bytes: Vec<u8> = match data {
        PixelData::U8(v) => v.clone(),
        PixelData::F32(v) => v.iter().map(|x| x.round().clamp(0.0, 255.0) as u8).collect(),
    };
    let (w, h) = (u32::try_from(width).map_err(|e| e.to_string())?, u32::try_from(height).map_err(|e| e.to_string())?);
    let img = image::RgbImage::from_raw(w, h, bytes)
        .ok_or_else(|| format!("pixels of {height}×{width}×3 do not match their sample count"))?;
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).map_err(|e| format!("PNG encoding failed: {e}"))?;
    Ok(out.into_inner())
}

fn wav(samples: &[f32], rate: u32) -> Result<Vec<u8>, String> {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut out = Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut out, spec).map_err(|e| e.to_string())?;
    for &s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).map_err(|e| e.to_string())?;
    }
    w.finalize().map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}

/// One workload input as a wire input.
pub fn wire_input(x: &RawInput) -> Result<Input, String> {
    Ok(match x {
        RawInput::Text(t) => Input::Text(t.clone()),
        RawInput::Bytes(b) => Input::file("input", b.clone()).map_err(|e| e.to_string())?,
        RawInput::Pixels { height, width, data } => Input::Image(png(*height, *width, data)?),
        RawInput::Pcm { samples, sample_rate } => Input::Audio(wav(samples, *sample_rate)?),
        RawInput::Frames(frames) => Input::Frames(
            frames
                .iter()
                .map(|f| match f {
                    RawInput::Pixels { height, width, data } => png(*height, *width, data),
                    RawInput::Bytes(b) => Ok(b.clone()),
                    other => Err(format!("a video frame must be an image, not {other:?}")),
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

impl HttpTarget {
    /// A target for `endpoint` (`http://host:port`) that will be sent requests of `pool`.
    pub fn new(endpoint: &str, api_key: Option<&str>, params: Parameters, pool: &[Request]) -> Result<Self, String> {
        let client = UnifiedModelClient::new(endpoint, api_key).map_err(|e| e.to_string())?;
        let mut wire = HashMap::with_capacity(pool.len());
        for (i, r) in pool.iter().enumerate() {
            let inputs =
                r.iter().map(wire_input).collect::<Result<Vec<_>, _>>().map_err(|e| format!("request {i}: {e}"))?;
            wire.insert(r as *const Request as usize, inputs);
        }
        Ok(HttpTarget { client, endpoint: endpoint.to_string(), params, wire })
    }

    fn one(&self, r: &Request) -> Result<Completion, String> {
        let owned;
        let inputs = match self.wire.get(&(r as *const Request as usize)) {
            Some(w) => w,
            None => {
                owned = r.iter().map(wire_input).collect::<Result<Vec<_>, _>>()?;
                &owned
            }
        };
        let resp = self.client.infer(inputs, &self.params).map_err(|e| e.to_string())?;
        let t = &resp.timing_ms;
        Ok(Completion { stages_ms: stage_map(t.preprocess, &t.encode, t.fuse, &t.heads, t.total), cache: None })
    }
}

impl Target for HttpTarget {
    fn describe(&self) -> String {
        format!("server at {}", self.endpoint)
    }

    fn run_batch(&self, batch: &[&Request]) -> Vec<Result<Completion, String>> {
        if batch.len() == 1 {
            return vec![self.one(batch[0])];
        }
        std::thread::scope(|s| {
            let handles: Vec<_> = batch.iter().map(|r| s.spawn(move || self.one(r))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a sender thread panicked".into()))).collect()
        })
    }
}
