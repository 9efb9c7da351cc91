//! Measuring the running machine: its memory read bandwidth (the bound on decode speed) and,
//! in [`calibrate`](super::calibrate), which of the bit-exact kernel candidates streams weights
//! fastest on it.
//!
//! Decode reads every weight once per token, so it can go no faster than
//! `read bandwidth / bytes per token`. Which kernel reaches that bound differs between CPUs of
//! the same ISA (an AVX-512 matvec tuned on one Xeon streamed half the bandwidth of the AVX2 one
//! on a Zen 4 EPYC), so the choice is measured here, on buffers larger than the last-level cache.

use std::time::Instant;

/// Bytes of the largest data cache this CPU reports (Linux sysfs), if known.
pub fn last_level_cache_bytes() -> Option<usize> {
    let dir = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    let mut best: Option<(u32, usize)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        let read = |f: &str| std::fs::read_to_string(p.join(f)).ok();
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
        else {
            continue;
        };
        if kind.trim() == "Instruction" {
            continue;
        }
        let (Ok(level), Some(bytes)) = (level.trim().parse::<u32>(), parse_cache_size(&size))
        else {
            continue;
        };
        if best.is_none_or(|(l, _)| level > l) {
            best = Some((level, bytes));
        }
    }
    best.map(|(_, b)| b)
}

/// sysfs cache sizes: "32K", "2048K", "32M".
fn parse_cache_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (num, mul) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1 << 10),
        b'M' => (&s[..s.len() - 1], 1 << 20),
        b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>().ok().map(|n| n * mul)
}

/// Size of a buffer that streams from DRAM rather than from cache: twice the last-level cache,
/// at least 64 MiB and at most 1 GiB (a VM may report its host's whole L3).
pub fn dram_buffer_bytes() -> usize {
    let llc = last_level_cache_bytes().unwrap_or(32 << 20);
    (2 * llc).clamp(64 << 20, 1 << 30)
}

/// The machine's memory read bandwidth in GB/s (1e9 bytes/s) with `threads` threads, each
/// streaming its own part of a [`dram_buffer_bytes`] buffer with wide loads: the best of
/// `passes` passes after one untimed pass. This is what a decode step can at most read.
pub fn read_bandwidth(threads: usize, passes: usize) -> f64 {
    let threads = threads.max(1);
    let words = dram_buffer_bytes() / 8;
    // Non-zero contents: a zero page may be backed by the shared zero page and never hit DRAM.
    let buf: Vec<u64> = (0..words as u64).collect();
    let chunk = words.div_ceil(threads);
    let mut best = 0.0f64;
    for pass in 0..=passes.max(1) {
        let t = Instant::now();
        let sums: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = buf
                .chunks(chunk)
                .map(|part| s.spawn(move || read_all(part)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(sums);
        if pass > 0 && secs > 0.0 {
            best = best.max((words * 8) as f64 / secs / 1e9);
        }
    }
    best
}

/// Reads every word of `v` and returns a value depending on all of them (so the loads stay).
fn read_all(v: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked just above).
        return unsafe { read_all_avx2(v) };
    }
    read_all_portable(v)
}

fn read_all_portable(v: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a ^= x;
        }
    }
    let tail = chunks.remainder().iter().fold(0, |a, x| a ^ x);
    acc.iter().fold(tail, |a, x| a ^ x)
}

/// Four independent 256-bit load streams per cache line pair: the widest loop every AVX2
/// kernel could run, so its rate is the ceiling for theirs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn read_all_avx2(v: &[u64]) -> u64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_si256(); 4];
    let mut chunks = v.chunks_exact(16);
    for c in &mut chunks {
        let p = c.as_ptr() as *const __m256i;
        for (j, a) in acc.iter_mut().enumerate() {
            // SAFETY: `c` holds 16 u64 = 4 x 32 bytes; loadu needs no alignment.
            *a = _mm256_xor_si256(*a, unsafe { _mm256_loadu_si256(p.add(j)) });
        }
    }
    let x = _mm256_xor_si256(
        _mm256_xor_si256(acc[0], acc[1]),
        _mm256_xor_si256(acc[2], acc[3]),
    );
    let mut lanes = [0u64; 4];
    // SAFETY: `lanes` is 32 writable bytes.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, x) };
    lanes
        .iter()
        .fold(read_all_portable(chunks.remainder()), |a, l| a ^ l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_sizes_parse() {
        assert_eq!(parse_cache_size("32K\n"), Some(32 << 10));
        assert_eq!(parse_cache_size("30M"), Some(30 << 20));
        assert_eq!(parse_cache_size("512"), Some(512));
        assert_eq!(parse_cache_size("x"), None);
    }

    #[test]
    fn read_loops_agree() {
        let v: Vec<u64> = (0..1003u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let want = v.iter().fold(0, |a, x| a ^ x);
        assert_eq!(read_all_portable(&v), want);
        assert_eq!(read_all(&v), want);
    }
}
