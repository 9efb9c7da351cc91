//! The contested entries of the kernel table and their candidates: for each hot product several
//! bit-exact implementations that differ in how they stream memory (rows per pass, prefetch
//! distance, 256- or 512-bit lanes, the integer instruction). Which one is fastest differs
//! between CPUs of the same ISA, so [`super::tune`] measures them on the running machine and
//! composes the default table from the winners; `BITNET_KERNEL_<ENTRY>=<name>` forces one.
//!
//! A candidate's name says what it is: `<isa>-<lanes>-<rows>row-pf<distance>`, e.g.
//! `avx512-zmm-4row-pf8k` is the AVX-512 kernel on 512-bit registers that streams four weight
//! rows per pass, each prefetched 8 KiB ahead; `avx2-ymm-1row-8tok` a product tile of one weight
//! row by eight tokens. Where a variant has one implementation of an entry (aarch64), the
//! candidate is named by its variant (`neon`, `dotprod`). Every candidate is compared with the
//! scalar reference bit for bit by the kernel tests, which iterate over [`candidates`].

use super::{table, KernelTable, Kind};
use super::{BlockQ8K, I8Rows, MatDims};
use crate::tensor::blocks::{BlockQ6K, BlockQ8_0};
use half::f16;

/// The signature of the I2_S entries (`i2s`, `i2s_vec`).
pub type I2sFn = fn(&[u8], f32, &I8Rows, MatDims, &mut [f32]);
/// The signature of `f16_ggml`.
pub type F16Fn = fn(&[f16], &[f16], MatDims, &mut [f32]);
/// The signature of `q8_0`.
pub type Q8_0Fn = fn(&[BlockQ8_0], &[BlockQ8_0], MatDims, &mut [f32]);
/// The signature of `q6_k`.
pub type Q6KFn = fn(&[BlockQ6K], &[BlockQ8K], MatDims, &mut [f32]);
/// The signature of `f16_ggml_strided_group`.
pub type GroupFn = fn(&[f16], usize, &[f32], usize, &mut [f32]);

/// The function of one candidate, by signature.
#[derive(Clone, Copy)]
pub(crate) enum EntryFn {
    I2s(I2sFn),
    F16(F16Fn),
    Q8_0(Q8_0Fn),
    Q6K(Q6KFn),
    Group(GroupFn),
}

impl EntryFn {
    /// The function's address: two candidates with the same address are the same kernel.
    fn addr(self) -> usize {
        match self {
            EntryFn::I2s(f) => f as usize,
            EntryFn::F16(f) => f as usize,
            EntryFn::Q8_0(f) => f as usize,
            EntryFn::Q6K(f) => f as usize,
            EntryFn::Group(f) => f as usize,
        }
    }
}

/// A table entry whose candidates compete on the running machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entry {
    /// `i2s_vec`: I2_S x 1 token, decode's layers (bound by memory bandwidth).
    I2sVec,
    /// `i2s`: I2_S x 2 or more tokens, prompt processing (bound by integer throughput).
    I2s,
    /// `f16_ggml`: the F16 lm_head of decode as the file has it.
    F16Ggml,
    /// `q8_0`: the lm_head with `--head-q8`.
    Q8_0,
    /// `q6_k`: the lm_head of files with a Q6_K embedding.
    Q6K,
    /// `f16_ggml_strided_group`: single-token attention (Q·K over the cached keys, P·V over the
    /// V rows, the query heads of one KV head together).
    F16Group,
}

impl Entry {
    pub const ALL: [Entry; 6] = [
        Entry::I2sVec,
        Entry::I2s,
        Entry::F16Ggml,
        Entry::Q8_0,
        Entry::Q6K,
        Entry::F16Group,
    ];

    /// The table field's name: `i2s_vec`, `i2s`, `f16_ggml`, `q8_0`, `q6_k`,
    /// `f16_ggml_strided_group`.
    pub fn name(self) -> &'static str {
        match self {
            Entry::I2sVec => "i2s_vec",
            Entry::I2s => "i2s",
            Entry::F16Ggml => "f16_ggml",
            Entry::Q8_0 => "q8_0",
            Entry::Q6K => "q6_k",
            Entry::F16Group => "f16_ggml_strided_group",
        }
    }

    pub fn from_name(name: &str) -> Option<Entry> {
        Entry::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The environment variable that forces this entry's candidate: `BITNET_KERNEL_` and the
    /// name in capitals (`BITNET_KERNEL_I2S_VEC`, ..., `BITNET_KERNEL_F16_GGML_STRIDED_GROUP`).
    pub fn env_var(self) -> String {
        format!("BITNET_KERNEL_{}", self.name().to_ascii_uppercase())
    }

    /// This entry of `t`.
    pub(crate) fn get(self, t: &KernelTable) -> EntryFn {
        match self {
            Entry::I2sVec => EntryFn::I2s(t.i2s_vec),
            Entry::I2s => EntryFn::I2s(t.i2s),
            Entry::F16Ggml => EntryFn::F16(t.f16_ggml),
            Entry::Q8_0 => EntryFn::Q8_0(t.q8_0),
            Entry::Q6K => EntryFn::Q6K(t.q6_k),
            Entry::F16Group => EntryFn::Group(t.f16_ggml_strided_group),
        }
    }

    /// The address of this entry's function in `t` (equal addresses: the same kernel).
    pub fn addr(self, t: &KernelTable) -> usize {
        self.get(t).addr()
    }

    /// Whether `f` has this entry's signature.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn fits(self, f: EntryFn) -> bool {
        matches!(
            (self, f),
            (Entry::I2sVec | Entry::I2s, EntryFn::I2s(_))
                | (Entry::F16Ggml, EntryFn::F16(_))
                | (Entry::Q8_0, EntryFn::Q8_0(_))
                | (Entry::Q6K, EntryFn::Q6K(_))
                | (Entry::F16Group, EntryFn::Group(_))
        )
    }
}

/// One bit-exact implementation of a table entry, usable on this CPU.
#[derive(Clone, Copy)]
pub struct Candidate {
    entry: Entry,
    name: &'static str,
    f: EntryFn,
    /// The variant whose CPU features it needs.
    kind: Kind,
}

impl std::fmt::Debug for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.entry.name(), self.name)
    }
}

impl Candidate {
    /// A named candidate (the x86 modules name theirs; aarch64 has table-level ones only).
    /// `f` must have `entry`'s signature (checked: the lists are static, so
    /// a mismatch is a programming error caught by every test run).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn new(kind: Kind, entry: Entry, name: &'static str, f: EntryFn) -> Candidate {
        assert!(
            entry.fits(f),
            "candidate {name} does not fit {}",
            entry.name()
        );
        Candidate {
            entry,
            name,
            f,
            kind,
        }
    }

    /// `entry` of a variant's table, named by the variant.
    pub fn of_table(entry: Entry, t: &KernelTable) -> Candidate {
        Candidate {
            entry,
            name: t.name(),
            f: entry.get(t),
            kind: t.kind,
        }
    }

    pub fn entry(&self) -> Entry {
        self.entry
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The variant whose CPU features this candidate needs.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The function's address (equal addresses: the same kernel).
    pub fn addr(&self) -> usize {
        self.f.addr()
    }

    /// Puts this candidate into its entry of `t`.
    pub fn apply(&self, t: &mut KernelTable) {
        match (self.entry, self.f) {
            (Entry::I2sVec, EntryFn::I2s(f)) => t.i2s_vec = f,
            (Entry::I2s, EntryFn::I2s(f)) => t.i2s = f,
            (Entry::F16Ggml, EntryFn::F16(f)) => t.f16_ggml = f,
            (Entry::Q8_0, EntryFn::Q8_0(f)) => t.q8_0 = f,
            (Entry::Q6K, EntryFn::Q6K(f)) => t.q6_k = f,
            (Entry::F16Group, EntryFn::Group(f)) => t.f16_ggml_strided_group = f,
            // `new` and `of_table` only build fitting pairs.
            _ => unreachable!("candidate {} does not fit {}", self.name, self.entry.name()),
        }
    }
}

/// Every candidate of `entry` this CPU can run, each a different function (the first name of a
/// function wins), in a fixed order. Includes the entry of every usable SIMD variant's table;
/// `scalar` and `c` are not candidates (they are never faster).
pub fn candidates(entry: Entry) -> Vec<Candidate> {
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    super::x86::candidates(entry, &mut out);
    #[cfg(not(target_arch = "x86_64"))]
    // i8mm last: its entries other than `i2s` are dotprod's functions, named `dotprod`.
    for kind in [Kind::NeonDotprod, Kind::Neon, Kind::NeonI8mm] {
        if let Some(t) = table(kind) {
            out.push(Candidate::of_table(entry, t));
        }
    }
    let mut distinct: Vec<Candidate> = Vec::with_capacity(out.len());
    for c in out {
        if !distinct.iter().any(|d| d.addr() == c.addr()) {
            distinct.push(c);
        }
    }
    distinct
}

/// [`candidates`] of every entry.
pub fn all() -> Vec<Candidate> {
    Entry::ALL.into_iter().flat_map(candidates).collect()
}

/// [`all`] that a CPU with just `kind`'s features could run: what `BITNET_KERNEL=<kind>`
/// calibrates among (`avx2` on an AVX-512 machine: the AVX2 candidates, as on an AVX2-only CPU).
pub fn all_for(kind: Kind) -> Vec<Candidate> {
    all()
        .into_iter()
        .filter(|c| kind.includes(c.kind))
        .collect()
}

/// The candidate `name` of `entry`: a candidate name, or a variant name (`avx2`, `scalar`, ...:
/// that variant's entry, under its candidate name when it has one). Errors list the choices.
pub fn find(entry: Entry, name: &str) -> Result<Candidate, String> {
    let cands = candidates(entry);
    if let Some(c) = cands.iter().find(|c| c.name == name) {
        return Ok(*c);
    }
    if let Some(t) = Kind::from_name(name).and_then(table) {
        let c = Candidate::of_table(entry, t);
        return Ok(cands
            .into_iter()
            .find(|d| d.addr() == c.addr())
            .unwrap_or(c));
    }
    let mut names: Vec<&str> = cands.iter().map(|c| c.name).collect();
    names.extend(super::available().iter().map(|t| t.name()));
    Err(format!(
        "{}={name} is not a candidate here (choose from: {})",
        entry.env_var(),
        names.join(", ")
    ))
}

/// The candidates forced by `BITNET_KERNEL_<ENTRY>` variables (empty or `auto`: not forced). A
/// name not usable here is logged and ignored.
pub(crate) fn forced_by_env() -> Vec<Candidate> {
    let mut out = Vec::new();
    for entry in Entry::ALL {
        let Ok(name) = std::env::var(entry.env_var()) else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || name == "auto" {
            continue;
        }
        match find(entry, name) {
            Ok(c) => out.push(c),
            Err(e) => crate::log::log_warn!("bitnet: {e}; not forced"),
        }
    }
    out
}

/// `t` with the `forced` candidates ([`forced_by_env`]) in their entries, and `how` with them
/// appended (`"...; i2s_vec=avx2-ymm-2row-pf3k [BITNET_KERNEL_I2S_VEC]"`).
pub(crate) fn apply_forced(
    mut t: KernelTable,
    how: String,
    forced: &[Candidate],
) -> (KernelTable, String) {
    let mut how = how;
    if !forced.is_empty() {
        how.push(';');
    }
    for c in forced {
        c.apply(&mut t);
        how.push_str(&format!(
            " {}={} [{}]",
            c.entry.name(),
            c.name,
            c.entry.env_var()
        ));
    }
    (t, how)
}
