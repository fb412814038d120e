//! Resident memory of a process over time: a thread reads `VmRSS` from `/proc/PID/status`
//! every so often, labelling each sample with the phase of the run it was taken in.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A process's resident set size now, in bytes (`None` where `/proc` does not say).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Samples of one process's RSS, by phase, taken until stopped.
pub struct Sampler {
    phase: Arc<Mutex<&'static str>>,
    samples: Arc<Mutex<Vec<(&'static str, u64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Start sampling `pid` every `period`, in phase `phase`.
    pub fn start(pid: u32, period: Duration, phase: &'static str) -> Sampler {
        let phase = Arc::new(Mutex::new(phase));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s, halt) = (phase.clone(), samples.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                while !halt.load(Ordering::Relaxed) {
                    if let Some(bytes) = rss_bytes(pid) {
                        let now = *p.lock().unwrap_or_else(|e| e.into_inner());
                        s.lock().unwrap_or_else(|e| e.into_inner()).push((now, bytes));
                    }
                    std::thread::sleep(period);
                }
            })
            .ok();
        Sampler { phase, samples, stop, thread }
    }

    /// Label the samples from now on.
    pub fn set_phase(&self, phase: &'static str) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase;
    }

    /// Stop; the samples taken, in order.
    pub fn finish(mut self) -> Vec<(&'static str, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// (min, max) of the samples of `phase` (every phase when `None`).
pub fn range(samples: &[(&'static str, u64)], phase: Option<&str>) -> Option<(u64, u64)> {
    let v: Vec<u64> = samples.iter().filter(|(p, _)| phase.is_none_or(|want| *p == want)).map(|(_, b)| *b).collect();
    Some((*v.iter().min()?, *v.iter().max()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_rss_and_ranges_by_phase() {
        assert!(rss_bytes(std::process::id()).is_some_and(|b| b > 0));
        let s = [("a", 5), ("b", 9), ("a", 3)];
        assert_eq!(range(&s, Some("a")), Some((3, 5)));
        assert_eq!(range(&s, None), Some((3, 9)));
        assert_eq!(range(&s, Some("c")), None);
    }
}
