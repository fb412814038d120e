//! CPU feature detection at run time, so one binary uses AVX-512 where it exists and falls
//! back to AVX2+FMA or portable code elsewhere.

/// Instruction-set features detected on this CPU, by name.
pub fn detect() -> Vec<&'static str> {
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => { $( if std::arch::is_x86_feature_detected!($f) { v.push($f); } )* };
        }
        probe!(
            "sse4.2",
            "avx",
            "avx2",
            "fma",
            "f16c",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avx512bf16",
            "avx512fp16",
            "avxvnni"
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => { $( if std::arch::is_aarch64_feature_detected!($f) { v.push($f); } )* };
        }
        probe!("neon", "fp16", "dotprod", "i8mm", "bf16", "sve", "sve2");
    }
    v
}

/// The CPU's model name (from /proc/cpuinfo on Linux), or the architecture when unknown.
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| format!("{} CPU", std::env::consts::ARCH))
}

/// Physical memory in bytes (from /proc/meminfo on Linux), 0 when unknown.
pub fn memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).map(|kb| kb * 1024))
        })
        .unwrap_or(0)
}

/// The SIMD level a fast kernel is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust, vectorised for the build target only (any CPU).
    Portable,
    /// AVX2 + FMA (+ F16C).
    Avx2,
    /// AVX-512 F/BW/VL/DQ.
    Avx512,
}

impl Isa {
    /// Name for reports and for `OMNIFUSE_CPU_ISA`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Every level this CPU can run, lowest first.
    pub fn available() -> Vec<Isa> {
        let mut v = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") && has!("f16c") {
                v.push(Isa::Avx2);
                if has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512dq") {
                    v.push(Isa::Avx512);
                }
            }
        }
        v
    }

    /// The level fast kernels use: the best available, capped by `OMNIFUSE_CPU_ISA`
    /// (`portable`, `avx2`, `avx512`) when set — to compare levels or qualify a lower one.
    pub fn active() -> Isa {
        static ACTIVE: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *ACTIVE.get_or_init(|| {
            let avail = Isa::available();
            let best = avail.last().copied().unwrap_or(Isa::Portable);
            let cap =
                std::env::var("OMNIFUSE_CPU_ISA").ok().and_then(|v| avail.iter().copied().find(|i| i.name() == v));
            cap.map_or(best, |c| c.min(best))
        })
    }
}
