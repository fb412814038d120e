//! The CPU device: host buffers, synchronous "stream" (a launch completes before it
//! returns), a thread pool of its own, and a choice of tier (reference or fast).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use omnifuse_core::backend::{check_supported_launch, op_set_support};
use omnifuse_core::op::{Op, OpKind};
use omnifuse_core::{Backend, Buffer, DType, DeviceInfo, DeviceKind, Error, Graph, Result, Support, Tensor};

use crate::fast::Fast;
use crate::kernels::Kernels;
use crate::launch::{In, launch};
use crate::prepack::{Budget, PackStats};
use crate::reference::Reference;
use crate::storage::{self, CpuStorage};
use crate::{features, peak};

/// Which kernels a CPU backend runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// Plain loops: the oracle.
    Reference,
    /// SIMD, blocked, multithreaded.
    Fast,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A CPU backend.
pub struct CpuBackend {
    name: String,
    tier: Tier,
    kernels: &'static dyn Kernels,
    pool: rayon::ThreadPool,
    id: u64,
    peak: OnceLock<(f64, &'static str)>,
    /// Bytes held by this backend's live buffers.
    in_use: Arc<AtomicU64>,
    /// Cap and counters of the packed forms of constant buffers.
    packs: Arc<Budget>,
}

impl CpuBackend {
    /// A backend of `tier` using `threads` threads (0 = one per available core).
    pub fn new(tier: Tier, threads: usize) -> Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("omnifuse-cpu-{i}"))
            .build()
            .map_err(|e| Error::Backend { backend: "cpu".into(), message: format!("thread pool: {e}") })?;
        let (name, kernels): (&str, &'static dyn Kernels) = match tier {
            Tier::Reference => ("cpu-ref", &Reference),
            Tier::Fast => ("cpu", &Fast),
        };
        Ok(CpuBackend {
            name: name.to_string(),
            tier,
            kernels,
            pool,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            peak: OnceLock::new(),
            in_use: Arc::new(AtomicU64::new(0)),
            packs: Budget::from_env(),
        })
    }

    /// The fast tier on all cores.
    pub fn fast() -> Result<Self> {
        Self::new(Tier::Fast, 0)
    }

    /// The reference tier.
    pub fn reference() -> Result<Self> {
        Self::new(Tier::Reference, 1)
    }

    /// The tier.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Threads in the pool.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Run `f` on this backend's thread pool (for benchmarks of peers on the same threads).
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }

    /// The micro-kernel the fast GEMM uses on this machine.
    pub fn gemm_kernel(&self) -> &'static str {
        match self.tier {
            Tier::Reference => "reference loops",
            Tier::Fast => crate::fast::gemm::f32_kernel_name(),
        }
    }

    /// The packed-weight cache's bytes and counters (see [`crate::prepack`]).
    pub fn pack_stats(&self) -> PackStats {
        self.packs.stats()
    }

    fn storage<'a>(&self, buf: &'a Buffer) -> Result<&'a CpuStorage> {
        storage::storage(buf, &self.name, self.id)
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn info(&self) -> DeviceInfo {
        let (peak, how) = *self.peak.get_or_init(|| peak::measure(&self.pool));
        let feats = features::detect();
        let arch = format!("{}{}", std::env::consts::ARCH, if feats.contains(&"avx512f") { "+avx512f" } else { "" });
        DeviceInfo {
            name: self.name.clone(),
            backend: "cpu",
            device_name: features::cpu_name(),
            kind: DeviceKind::Cpu,
            compute_units: self.threads(),
            memory_bytes: features::memory_bytes(),
            arch,
            features: feats.iter().map(|s| s.to_string()).collect(),
            peak_gflops_f32: Some(peak),
            peak_source: format!("measured: {how} chains on {} thread(s)", self.threads()),
        }
    }

    fn supports(&self, kind: OpKind, dtype: DType) -> Support {
        op_set_support(kind, dtype)
    }

    fn alloc(&self, bytes: usize) -> Result<Buffer> {
        Ok(Buffer::new(CpuStorage::new(bytes, &self.name, self.id, self.in_use.clone(), self.packs.clone())?))
    }

    fn memory_in_use(&self) -> Option<u64> {
        Some(self.in_use.load(Ordering::Relaxed))
    }

    /// Only the fast tier packs; the reference tier has nothing to keep.
    fn mark_constant(&self, buf: &Buffer) {
        if self.tier == Tier::Fast
            && let Ok(s) = self.storage(buf)
        {
            s.pack().mark_constant();
        }
    }

    fn upload(&self, dst: &Buffer, src: &[u8]) -> Result<()> {
        let s = self.storage(dst)?;
        if src.len() > s.bytes_len() {
            return Err(Error::invalid(format!("upload of {} bytes into a buffer of {}", src.len(), s.bytes_len())));
        }
        let mut g = s.write()?;
        storage::bytes_mut(&mut g)[..src.len()].copy_from_slice(src);
        Ok(())
    }

    fn download(&self, src: &Buffer, dst: &mut [u8]) -> Result<()> {
        let s = self.storage(src)?;
        if dst.len() > s.bytes_len() {
            return Err(Error::invalid(format!("download of {} bytes from a buffer of {}", dst.len(), s.bytes_len())));
        }
        let g = s.read()?;
        dst.copy_from_slice(&storage::bytes(&g)[..dst.len()]);
        Ok(())
    }

    fn launch(&self, op: &Op, inputs: &[&Tensor], output: &Tensor) -> Result<()> {
        check_supported_launch(self, op, inputs, output)?;
        // Lock distinct buffers in address order (so concurrent launches cannot deadlock):
        // inputs for reading, the output for writing.
        let out_store = self.storage(&output.buf)?;
        let mut distinct: Vec<(usize, &CpuStorage)> = Vec::new();
        for t in inputs {
            let s = self.storage(&t.buf)?;
            if !distinct.iter().any(|(a, _)| *a == t.buf.addr()) {
                distinct.push((t.buf.addr(), s));
            }
        }
        distinct.sort_by_key(|(a, _)| *a);
        let out_addr = output.buf.addr();
        let mut reads = Vec::with_capacity(distinct.len());
        let mut write = None;
        for (addr, s) in &distinct {
            if write.is_none() && out_addr < *addr {
                write = Some(out_store.write()?);
            }
            reads.push((*addr, s.read()?));
        }
        let mut write = match write {
            Some(w) => w,
            None => out_store.write()?,
        };
        let ins: Vec<In> = inputs
            .iter()
            .map(|t| {
                let guard = reads.iter().find(|(a, _)| *a == t.buf.addr()).map(|(_, g)| g);
                let bytes = guard.map_or(&[][..], |g| &storage::bytes(g)[..t.desc.bytes()]);
                let pack = distinct.iter().find(|(a, _)| *a == t.buf.addr()).map(|(_, s)| s.pack());
                In { desc: &t.desc, bytes, pack: pack.filter(|p| p.is_constant()) }
            })
            .collect();
        let out = &mut storage::bytes_mut(&mut write)[..output.desc.bytes()];
        let kernels = self.kernels;
        self.pool.install(|| launch(kernels, op, &ins, &output.desc, out))
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    /// The whole graph runs inside the pool: one hand-off to its threads per graph instead of
    /// one per node (each node's own `install` then runs inline).
    fn execute(&self, graph: &Graph, values: &[Tensor]) -> Result<()> {
        self.pool.install(|| omnifuse_core::exec::launch_in_order(self, graph, values))
    }
}
