//! The machine a run was measured on, for every report: CPU model, logical cores, the SIMD
//! level the CPU backend uses, the backend, and the operating system.

use serde::{Deserialize, Serialize};

/// A machine description.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Logical cores available to this process.
    pub cores: usize,
    /// SIMD level of the CPU backend (e.g. avx512, avx2, portable).
    pub isa: String,
    /// The device the model ran on.
    pub backend: String,
    /// Operating system, distribution and kernel.
    pub os: String,
}

fn first_line_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

impl Machine {
    /// Describe this machine; `isa` and `backend` come from the caller, which knows them.
    pub fn detect(isa: &str, backend: &str) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = first_line_value(&cpuinfo, "model name")
            .or_else(|| first_line_value(&cpuinfo, "Model"))
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let distro =
            first_line_value(&release.replace('=', ":"), "PRETTY_NAME").map(|s| s.trim_matches('"').to_string());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string());
        let os = [Some(std::env::consts::OS.to_string()), distro, kernel].into_iter().flatten().collect::<Vec<_>>();
        Machine { cpu, cores, isa: isa.to_string(), backend: backend.to_string(), os: os.join(", ") }
    }

    /// One line for people.
    pub fn line(&self) -> String {
        format!("{} ({} cores, {}), backend {}, {}", self.cpu, self.cores, self.isa, self.backend, self.os)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_this_machine() {
        let m = Machine::detect("avx2", "cpu");
        assert!(m.cores >= 1 && !m.cpu.is_empty() && !m.os.is_empty());
        assert!(m.line().contains("avx2") && m.line().contains("backend cpu"));
        assert_eq!(first_line_value("a : 1\nmodel name\t: X Y\n", "model name").as_deref(), Some("X Y"));
    }
}
