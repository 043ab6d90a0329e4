//! The memory-bandwidth probe: read bandwidth of a DRAM-sized and a last-level-cache-sized
//! buffer, measured by the harness itself in the same run as the kernels it is compared with.

use std::hint::black_box;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::stats::Summary;

/// Where a buffer (or a benchmark's weights) lives while it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resident {
    Dram,
    Cache,
}

impl Resident {
    pub fn name(self) -> &'static str {
        match self {
            Resident::Dram => "dram",
            Resident::Cache => "cache",
        }
    }
}

/// One probe result.
#[derive(Debug, Clone, Serialize)]
pub struct Bandwidth {
    pub resident: Resident,
    pub buffer_bytes: usize,
    pub threads: usize,
    /// How the buffer is read (`avx512`, `avx2`, `scalar`, `neon`).
    pub reader: String,
    /// Median read bandwidth over the repetitions, in GB/s (1e9 bytes per second).
    pub gbps: f64,
    pub gbps_ci95: [f64; 2],
    pub repetitions: usize,
}

/// Last-level cache size from sysfs (Linux), else a 32 MiB guess.
pub fn llc_bytes() -> usize {
    let mut best = (0, 0);
    for i in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
        let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).ok();
        let (Some(level), Some(size)) = (read("level"), read("size")) else {
            continue;
        };
        let level: u32 = level.trim().parse().unwrap_or(0);
        let size = size.trim();
        let bytes = match size.strip_suffix('K') {
            Some(k) => k.parse::<usize>().unwrap_or(0) * 1024,
            None => match size.strip_suffix('M') {
                Some(m) => m.parse::<usize>().unwrap_or(0) << 20,
                None => size.parse().unwrap_or(0),
            },
        };
        if level >= best.0 && bytes > 0 {
            best = (level, bytes);
        }
    }
    if best.1 == 0 {
        32 << 20
    } else {
        best.1
    }
}

/// Buffer sizes: DRAM is at least 8x the LLC (and 512 MiB). Cache is a quarter of the LLC but
/// at most 4 MiB, the size of the largest ternary 2B4T matrix: a VM's reported LLC is shared with
/// other tenants, and the cache-resident cases run from the level that holds a few MiB.
pub fn buffer_bytes(resident: Resident) -> usize {
    let llc = llc_bytes();
    match resident {
        Resident::Dram => (8 * llc).max(512 << 20),
        Resident::Cache => (llc / 4).clamp(1 << 20, 4 << 20),
    }
}

/// Measure read bandwidth with `threads` threads, on a pool of its own.
pub fn measure(resident: Resident, threads: usize, repetitions: usize) -> Bandwidth {
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool.install(|| ProbeBuffer::new(resident, threads).measure(repetitions)),
        Err(_) => {
            ProbeBuffer::summary(resident, buffer_bytes(resident), threads, None, repetitions)
        }
    }
}

/// Bytes of the DRAM buffer that one [`ProbeBuffer::sample`] covers. Short reads, like a
/// kernel's calls, so that a median over many drops the ones a busy host stalled (130 MB reads
/// came out below the kernels timed between them); the buffer is many LLCs, so a slice is read
/// again only after the others have evicted it.
const DRAM_SLICE_BYTES: usize = 8 << 20;

/// The probe's buffer, read whole ([`ProbeBuffer::measure`]) or a slice at a time for
/// interleaving with timed cases ([`ProbeBuffer::sample`]): a shared host's bandwidth drifts
/// (this project's VM read 17 and 31 GB/s a minute apart), so a fraction of bandwidth is only
/// honest against samples taken alongside.
pub struct ProbeBuffer {
    resident: Resident,
    buf: Vec<u64>,
    threads: usize,
    slice_words: usize,
    next: usize,
}

impl ProbeBuffer {
    /// The two readers: plain streaming loads and loads with software prefetch. Kernels that
    /// prefetch beat a plain reader, so callers keep the faster reader's figure.
    pub const READERS: [usize; 2] = [0, PREFETCH];

    /// The buffer for `resident`, read by `threads` threads on the caller's pool.
    pub fn new(resident: Resident, threads: usize) -> ProbeBuffer {
        ProbeBuffer::with_bytes(resident, threads, buffer_bytes(resident))
    }

    fn with_bytes(resident: Resident, threads: usize, bytes: usize) -> ProbeBuffer {
        let words = bytes / 8;
        let slice_bytes = match resident {
            Resident::Dram => DRAM_SLICE_BYTES,
            Resident::Cache => bytes,
        };
        let probe = ProbeBuffer {
            resident,
            // Distinct values so no page is shared zero-filled memory.
            buf: (0..words).map(|i| i as u64).collect(),
            threads: threads.max(1),
            slice_words: (slice_bytes / 8).clamp(1, words.max(1)),
            next: 0,
        };
        // One untimed read: faults the pages in (first reads of fresh pages ran slow) and fills
        // the cache for the cache case.
        probe.read(0..probe.buf.len(), 0);
        probe
    }

    /// Read `words` of the buffer with `prefetch`; the bandwidth in GB/s.
    fn read(&self, words: std::ops::Range<usize>, prefetch: usize) -> f64 {
        let slice = &self.buf[words];
        if slice.is_empty() {
            return 0.0;
        }
        let chunk = slice.len().div_ceil(self.threads);
        let t = Instant::now();
        let sum: u64 = slice
            .par_chunks(chunk)
            .map(|c| sum_words(c, prefetch))
            .sum();
        black_box(sum);
        (slice.len() * 8) as f64 / t.elapsed().as_secs_f64() / 1e9
    }

    /// `repetitions` whole-buffer reads with each reader, in turn; the faster reader's median.
    pub fn measure(&self, repetitions: usize) -> Bandwidth {
        let mut best: Option<(Summary, usize)> = None;
        for prefetch in ProbeBuffer::READERS {
            // Interleaved with nothing else: each reader gets its own run of repetitions.
            let samples: Vec<f64> = (0..repetitions)
                .map(|_| self.read(0..self.buf.len(), prefetch))
                .collect();
            if let Some(s) = Summary::of(&samples) {
                if best.as_ref().is_none_or(|(b, _)| s.median > b.median) {
                    best = Some((s, prefetch));
                }
            }
        }
        ProbeBuffer::summary(
            self.resident,
            self.buf.len() * 8,
            self.threads,
            best,
            repetitions,
        )
    }

    fn summary(
        resident: Resident,
        buffer_bytes: usize,
        threads: usize,
        best: Option<(Summary, usize)>,
        repetitions: usize,
    ) -> Bandwidth {
        Bandwidth {
            resident,
            buffer_bytes,
            threads,
            reader: match best.as_ref().map(|b| b.1) {
                Some(0) | None => reader_name().to_string(),
                Some(p) => format!("{}+prefetch{p}", reader_name()),
            },
            gbps: best.as_ref().map_or(0.0, |b| b.0.median),
            gbps_ci95: best.as_ref().map_or([0.0; 2], |b| b.0.ci95),
            repetitions,
        }
    }

    /// Read the next slice on the current rayon pool with `prefetch` (one of
    /// [`ProbeBuffer::READERS`]); its bandwidth in GB/s.
    pub fn sample(&mut self, prefetch: usize) -> f64 {
        let start = self.next.min(self.buf.len());
        let end = (start + self.slice_words).min(self.buf.len());
        self.next = if end >= self.buf.len() { 0 } else { end };
        self.read(start..end, prefetch)
    }
}

/// Bytes ahead that the prefetching reader asks for.
const PREFETCH: usize = 4096;

fn reader_name() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            return "avx512";
        }
        if is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        return "neon";
    }
    #[allow(unreachable_code)]
    "scalar"
}

/// Sum of the words, with the widest loads this CPU has (the sum only keeps the reads alive).
fn sum_words(words: &[u64], prefetch: usize) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: avx512f was detected just above.
            return unsafe { x86::sum_avx512(words, prefetch) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: avx2 was detected just above.
            return unsafe { x86::sum_avx2(words, prefetch) };
        }
    }
    let _ = prefetch;
    sum_scalar(words)
}

fn sum_scalar(words: &[u64]) -> u64 {
    // Four independent chains so the adds do not serialise the loads; aarch64 vectorises this.
    let mut acc = [0u64; 4];
    let mut chunks = words.chunks_exact(4);
    for c in &mut chunks {
        for (a, w) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(*w);
        }
    }
    let tail: u64 = chunks.remainder().iter().fold(0, |s, w| s.wrapping_add(*w));
    acc.iter().fold(tail, |s, a| s.wrapping_add(*a))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn sum_avx512(words: &[u64], prefetch: usize) -> u64 {
        let mut acc = [_mm512_setzero_si512(); 4];
        let mut chunks = words.chunks_exact(32);
        for c in &mut chunks {
            if prefetch > 0 {
                // Four lines per step; a prefetch past the end cannot fault.
                let p = c.as_ptr().cast::<u8>().wrapping_add(prefetch);
                for line in 0..4 {
                    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64 * line).cast());
                }
            }
            for (j, a) in acc.iter_mut().enumerate() {
                // SAFETY: c holds 32 words, so words 8j..8j+8 are in bounds; loadu needs no alignment.
                let v = unsafe { _mm512_loadu_si512(c.as_ptr().add(8 * j).cast()) };
                *a = _mm512_add_epi64(*a, v);
            }
        }
        let total = _mm512_add_epi64(
            _mm512_add_epi64(acc[0], acc[1]),
            _mm512_add_epi64(acc[2], acc[3]),
        );
        let tail = super::sum_scalar(chunks.remainder());
        (_mm512_reduce_add_epi64(total) as u64).wrapping_add(tail)
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn sum_avx2(words: &[u64], prefetch: usize) -> u64 {
        let mut acc = [_mm256_setzero_si256(); 4];
        let mut chunks = words.chunks_exact(16);
        for c in &mut chunks {
            if prefetch > 0 {
                // Two lines per step; a prefetch past the end cannot fault.
                let p = c.as_ptr().cast::<u8>().wrapping_add(prefetch);
                _mm_prefetch::<_MM_HINT_T0>(p.cast());
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64).cast());
            }
            for (j, a) in acc.iter_mut().enumerate() {
                // SAFETY: c holds 16 words, so words 4j..4j+4 are in bounds; loadu needs no alignment.
                let v = unsafe { _mm256_loadu_si256(c.as_ptr().add(4 * j).cast()) };
                *a = _mm256_add_epi64(*a, v);
            }
        }
        let mut lanes = [0u64; 4];
        let total = _mm256_add_epi64(
            _mm256_add_epi64(acc[0], acc[1]),
            _mm256_add_epi64(acc[2], acc[3]),
        );
        // SAFETY: lanes is 32 bytes, exactly one __m256i.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), total) };
        lanes
            .iter()
            .fold(super::sum_scalar(chunks.remainder()), |s, l| {
                s.wrapping_add(*l)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reader_sums_the_same() {
        let words: Vec<u64> = (0..1003).map(|i| i * 0x9e37_79b9).collect();
        let expected = words.iter().fold(0u64, |s, w| s.wrapping_add(*w));
        assert_eq!(sum_scalar(&words), expected);
        assert_eq!(sum_words(&words, 0), expected);
        assert_eq!(sum_words(&words, PREFETCH), expected);
    }

    /// A sample walks the slices in turn and wraps at the end; a cache buffer is one slice;
    /// every read reports a rate.
    #[test]
    fn probe_samples_each_slice_in_turn() {
        let cache = ProbeBuffer::with_bytes(Resident::Cache, 2, 8 * 1000);
        assert_eq!(
            cache.slice_words, 1000,
            "a cache probe reads its whole buffer"
        );
        let b = cache.measure(2);
        assert!(b.gbps.is_finite() && b.gbps > 0.0, "{b:?}");
        assert_eq!((b.buffer_bytes, b.repetitions), (8000, 2));
        let mut s = ProbeBuffer::with_bytes(Resident::Dram, 2, 3 * DRAM_SLICE_BYTES + 8 * 100);
        let slice = DRAM_SLICE_BYTES / 8;
        let mut starts = Vec::new();
        for _ in 0..5 {
            starts.push(s.next);
            let gbps = s.sample(PREFETCH);
            assert!(gbps.is_finite() && gbps > 0.0, "{gbps}");
        }
        // Three whole slices, a short last one, then the first again.
        assert_eq!(starts, [0, slice, 2 * slice, 3 * slice, 0]);
    }

    #[test]
    fn llc_is_detected_or_guessed() {
        assert!(llc_bytes() >= 1 << 20);
        assert!(buffer_bytes(Resident::Dram) >= 8 * llc_bytes());
    }
}
