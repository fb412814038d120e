//! How an engine is configured: the C options struct (`omnifuse_engine_options`), the same
//! settings as a JSON object, their defaults, and the checks both go through.

use std::ffi::c_char;
use std::path::PathBuf;
use std::time::Duration;

use omnifuse_model::Precision;
use omnifuse_serve::BatchPolicy;
use serde_json::{Map, Value};

use crate::status::{Failure, OMNIFUSE_STATUS_UNSUPPORTED, Outcome};
use crate::text::opt_cstr;

/// Settings of a new engine; fill it with `omnifuse_engine_options_init` first, then change
/// the fields you need. Strings are borrowed only during `omnifuse_engine_create`: they may
/// be freed as soon as it returns. New fields are only ever appended; `struct_size` tells the
/// library which ones the caller knows.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct omnifuse_engine_options {
    /// `sizeof(omnifuse_engine_options)` as the caller compiled it (set by `_init`).
    pub struct_size: usize,
    /// Model directory (`config.toml`, `model.safetensors`, optional `tokenizer.json`);
    /// NULL runs the built-in preset named by `preset`.
    pub model_dir: *const c_char,
    /// Built-in preset used when `model_dir` is NULL: `"omni-small"` (NULL) or `"omni-base"`.
    pub preset: *const c_char,
    /// Backend family or device name as the registry knows it: `"cpu"` (NULL), `"cpu-ref"`,
    /// `"opencl"`, `"opencl:0:1"`, …
    pub backend: *const c_char,
    /// Device index appended to `backend` as `backend:device`; -1 (the default) uses the
    /// name as given.
    pub device: i32,
    /// Numeric precision of the model: `"fp32"`, `"fp16"` or `"int8"`; NULL runs the model as
    /// its weights are (an INT8 directory in INT8, else FP32).
    pub precision: *const c_char,
    /// CPU threads of the CPU backend; 0 (the default) uses one per core.
    pub threads: u32,
    /// Most requests fused into one batch (default 16).
    pub max_batch: u32,
    /// Most estimated tokens per batch (default 8192; a larger request still runs alone).
    pub max_batch_tokens: u32,
    /// Longest a request waits for others to join its batch, in microseconds. 0 (the
    /// default): a batch starts as soon as the engine is free and holds every request that
    /// queued while the previous batch ran.
    pub max_delay_us: u64,
    /// Most requests waiting; beyond it submissions get `OMNIFUSE_STATUS_OVERLOADED`
    /// (default 1024).
    pub queue_capacity: u32,
}

/// Engine settings in Rust terms, after checking.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Model directory, or `None` for the preset.
    pub model_dir: Option<PathBuf>,
    /// Preset name.
    pub preset: String,
    /// Registry device name.
    pub device: String,
    /// CPU threads (0 = all cores).
    pub threads: usize,
    /// The batching policy.
    pub policy: BatchPolicy,
    /// The precision asked for (`None`: as the weights are).
    pub precision: Option<Precision>,
}

const DEFAULT_PRESET: &str = "omni-small";
const DEFAULT_BACKEND: &str = "cpu";
const PRECISIONS: &str = "fp32, fp16 or int8";

impl Default for Settings {
    fn default() -> Self {
        let policy = BatchPolicy { max_delay: Duration::ZERO, ..BatchPolicy::default() };
        Settings {
            model_dir: None,
            preset: DEFAULT_PRESET.into(),
            device: DEFAULT_BACKEND.into(),
            threads: 0,
            policy,
            precision: None,
        }
    }
}

/// The default options, as `omnifuse_engine_options_init` writes them.
pub fn default_options() -> omnifuse_engine_options {
    let s = Settings::default();
    omnifuse_engine_options {
        struct_size: size_of::<omnifuse_engine_options>(),
        model_dir: std::ptr::null(),
        preset: std::ptr::null(),
        backend: std::ptr::null(),
        device: -1,
        precision: std::ptr::null(),
        threads: 0,
        max_batch: clamp_u32(s.policy.max_batch),
        max_batch_tokens: clamp_u32(s.policy.max_tokens),
        max_delay_us: 0,
        queue_capacity: clamp_u32(s.policy.queue_capacity),
    }
}

fn clamp_u32(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn device_name(backend: &str, device: Option<i64>) -> Outcome<String> {
    match device {
        None => Ok(backend.to_string()),
        Some(d) if d < 0 => Ok(backend.to_string()),
        Some(d) if backend.contains(':') => Err(Failure::invalid(format!(
            "backend \"{backend}\" already names a device, and device is {d}: give one or the other"
        ))),
        Some(d) => Ok(format!("{backend}:{d}")),
    }
}

fn check_precision(precision: Option<&str>) -> Outcome<Option<Precision>> {
    match precision {
        None => Ok(None),
        Some(p) => p.parse::<Precision>().map(Some).map_err(|_| {
            Failure::new(
                OMNIFUSE_STATUS_UNSUPPORTED,
                format!("precision \"{p}\" is not available: expected {PRECISIONS}"),
            )
        }),
    }
}

fn policy(max_batch: u64, max_tokens: u64, delay_us: u64, capacity: u64) -> Outcome<BatchPolicy> {
    let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let p = BatchPolicy {
        max_batch: size(max_batch),
        max_tokens: size(max_tokens),
        max_delay: Duration::from_micros(delay_us),
        queue_capacity: size(capacity),
        preferred_sizes: Vec::new(),
        grouping: false,
    };
    p.validate().map_err(|e| Failure::invalid(e.to_string()))?;
    Ok(p)
}

impl Settings {
    /// Settings from the C options struct.
    ///
    /// # Safety
    /// `o`'s string fields are NULL or NUL-terminated strings.
    pub unsafe fn from_options(o: &omnifuse_engine_options) -> Outcome<Settings> {
        if o.struct_size < size_of::<omnifuse_engine_options>() {
            return Err(Failure::invalid(format!(
                "options.struct_size is {}, expected at least {}: fill the options with omnifuse_engine_options_init",
                o.struct_size,
                size_of::<omnifuse_engine_options>()
            )));
        }
        // SAFETY: the string fields are NULL or NUL-terminated by our contract.
        let model_dir = unsafe { opt_cstr(o.model_dir, "options.model_dir")? };
        // SAFETY: as above.
        let preset = unsafe { opt_cstr(o.preset, "options.preset")? };
        // SAFETY: as above.
        let backend = unsafe { opt_cstr(o.backend, "options.backend")? };
        // SAFETY: as above.
        let precision = unsafe { opt_cstr(o.precision, "options.precision")? };
        let precision = check_precision(precision)?;
        Ok(Settings {
            precision,
            model_dir: model_dir.map(PathBuf::from),
            preset: preset.unwrap_or(DEFAULT_PRESET).to_string(),
            device: device_name(backend.unwrap_or(DEFAULT_BACKEND), Some(i64::from(o.device)))?,
            threads: o.threads as usize,
            policy: policy(
                u64::from(o.max_batch),
                u64::from(o.max_batch_tokens),
                o.max_delay_us,
                u64::from(o.queue_capacity),
            )?,
        })
    }

    /// Settings from a JSON object with the option names as keys (`model_dir`, `preset`,
    /// `backend`, `device`, `precision`, `threads`, `max_batch`, `max_batch_tokens`,
    /// `max_delay_us`, `queue_capacity`); absent keys keep their defaults, unknown keys are
    /// errors.
    pub fn from_json(text: &str) -> Outcome<Settings> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| Failure::invalid(format!("engine options: not valid JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(Failure::invalid(format!("engine options: expected a JSON object, got {value}")));
        };
        let d = default_options();
        let string = |key: &str| -> Outcome<Option<String>> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => {
                    Err(Failure::invalid(format!("engine options: \"{key}\" is {other}: expected a string")))
                }
            }
        };
        let number = |key: &str, default: u64| -> Outcome<u64> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v.as_u64().ok_or_else(|| {
                    Failure::invalid(format!("engine options: \"{key}\" is {v}: expected a non-negative integer"))
                }),
            }
        };
        check_keys(&map)?;
        let precision = string("precision")?;
        let precision = check_precision(precision.as_deref())?;
        let device =
            match map.get("device") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_i64().ok_or_else(|| {
                    Failure::invalid(format!("engine options: \"device\" is {v}: expected an integer"))
                })?),
            };
        let backend = string("backend")?.unwrap_or_else(|| DEFAULT_BACKEND.into());
        Ok(Settings {
            precision,
            model_dir: string("model_dir")?.map(PathBuf::from),
            preset: string("preset")?.unwrap_or_else(|| DEFAULT_PRESET.into()),
            device: device_name(&backend, device)?,
            threads: usize::try_from(number("threads", 0)?).unwrap_or(usize::MAX),
            policy: policy(
                number("max_batch", u64::from(d.max_batch))?,
                number("max_batch_tokens", u64::from(d.max_batch_tokens))?,
                number("max_delay_us", d.max_delay_us)?,
                number("queue_capacity", u64::from(d.queue_capacity))?,
            )?,
        })
    }
}

const KEYS: [&str; 10] = [
    "model_dir",
    "preset",
    "backend",
    "device",
    "precision",
    "threads",
    "max_batch",
    "max_batch_tokens",
    "max_delay_us",
    "queue_capacity",
];

fn check_keys(map: &Map<String, Value>) -> Outcome {
    match map.keys().find(|k| !KEYS.contains(&k.as_str())) {
        Some(k) => {
            Err(Failure::invalid(format!("engine options: unknown key \"{k}\": expected one of {}", KEYS.join(", "))))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn json_and_struct_defaults_agree() {
        let from_json = Settings::from_json("{}").unwrap();
        // SAFETY: the default options hold only NULL strings.
        let from_struct = unsafe { Settings::from_options(&default_options()) }.unwrap();
        assert_eq!(from_json, from_struct);
        assert_eq!(from_json, Settings::default());
    }

    #[test]
    fn bad_settings_are_named() {
        let e = Settings::from_json(r#"{"precision":"int4"}"#).unwrap_err();
        assert_eq!(e.status, OMNIFUSE_STATUS_UNSUPPORTED);
        assert!(e.message.contains("\"int4\"") && e.message.contains("fp32"), "{}", e.message);
        let e = Settings::from_json(r#"{"max_batch":0}"#).unwrap_err();
        assert!(e.message.contains("max_batch"), "{}", e.message);
        let e = Settings::from_json(r#"{"colour":1}"#).unwrap_err();
        assert!(e.message.contains("unknown key \"colour\""), "{}", e.message);
        let e = Settings::from_json(r#"{"backend":"cpu:0","device":1}"#).unwrap_err();
        assert!(e.message.contains("cpu:0"), "{}", e.message);
        let s = Settings::from_json(r#"{"backend":"opencl","device":2,"max_delay_us":1500}"#).unwrap();
        assert_eq!((s.device.as_str(), s.policy.max_delay), ("opencl:2", Duration::from_micros(1500)));
    }
}
