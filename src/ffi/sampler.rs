//! Sampler group: chains, every sampler of the fork's API, sample/accept/apply/reset/clone.
//!
//! A `bitnet_sampler` wraps one Rust [`Sampler`] and is itself a `Sampler`. bitnet_sampler_chain_add
//! moves the handle's box into the chain as it is (a `Box<bitnet_sampler>` coerced to
//! `Box<dyn Sampler>` keeps its address), so the handle stays valid while the chain owns it, and
//! bitnet_sampler_chain_get/_remove turn a chain member back into the same handle. This relies
//! on one invariant: every member of a chain reachable from C is a `bitnet_sampler`, which holds
//! because chain_add is the only way in and `bitnet_sampler::clone_box` clones into
//! `bitnet_sampler`s.

use super::context::{bitnet_context, ctx_ref};
use super::{
    bitnet_token, borrow, borrow_mut, call, call_void, free_handle, into_handle, slice, slice_mut,
};
use crate::error::{Error, Result};
use crate::sampling::{
    Chain, ChainParams, Dist, Greedy, LogitBias, LogitBiasSampler, MinP, Mirostat, MirostatV2,
    Penalties, Sampler, Softmax, Temp, TempExt, TokenData, TokenDataArray, TopK, TopP, Typical,
};
use std::ffi::{c_char, CString};
use std::sync::Mutex;

/// A sampler or a sampler chain (opaque). Free with bitnet_sampler_free, except a sampler
/// added to a chain: the chain owns it then.
pub struct bitnet_sampler {
    inner: Box<dyn Sampler>,
}

impl Sampler for bitnet_sampler {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn apply(&mut self, cur: &mut TokenDataArray) {
        self.inner.apply(cur)
    }
    fn accept(&mut self, token: i32) {
        self.inner.accept(token)
    }
    fn reset(&mut self) {
        self.inner.reset()
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(bitnet_sampler {
            inner: self.inner.clone_box(),
        })
    }
    fn seed(&self) -> u32 {
        self.inner.seed()
    }
    fn as_chain(&self) -> Option<&Chain> {
        self.inner.as_chain()
    }
    fn as_chain_mut(&mut self) -> Option<&mut Chain> {
        self.inner.as_chain_mut()
    }
}

pub(crate) fn new_sampler(s: impl Sampler + 'static) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || {
        Ok(into_handle(bitnet_sampler { inner: Box::new(s) }))
    })
}

fn chain_ref<'a>(chain: *const bitnet_sampler) -> Result<&'a Chain> {
    let s = borrow(chain, "chain")?;
    s.as_chain().ok_or_else(|| {
        Error::invalid_argument(format!("chain: sampler {:?} is not a chain", s.name()))
    })
}

fn chain_mut<'a>(chain: *mut bitnet_sampler) -> Result<&'a mut Chain> {
    let s = borrow_mut(chain, "chain")?;
    let name = s.name();
    s.as_chain_mut()
        .ok_or_else(|| Error::invalid_argument(format!("chain: sampler {name:?} is not a chain")))
}

/// Chain options (llama_sampler_chain_params).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_sampler_chain_params {
    /// Skip timing (bitnet_perf_sampler then reports 0 ms; counts are kept).
    pub no_perf: bool,
}

/// One candidate token (llama_token_data).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_token_data {
    pub id: bitnet_token,
    pub logit: f32,
    pub p: f32,
}

/// Candidates for bitnet_sampler_apply (llama_token_data_array): `size` entries at `data`;
/// `selected` is an index into data (-1: none); `sorted`: descending by logit.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_token_data_array {
    pub data: *mut bitnet_token_data,
    pub size: usize,
    pub selected: i64,
    pub sorted: bool,
}

/// A fixed bias added to one token's logit (llama_logit_bias).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_logit_bias {
    pub token: bitnet_token,
    pub bias: f32,
}

/// The defaults: no_perf = true.
#[no_mangle]
pub extern "C" fn bitnet_sampler_chain_default_params() -> bitnet_sampler_chain_params {
    let params = || bitnet_sampler_chain_params {
        no_perf: ChainParams::default().no_perf,
    };
    call(params(), || Ok(params()))
}

/// An empty chain: samplers run in the order they are added.
#[no_mangle]
pub extern "C" fn bitnet_sampler_chain_init(
    params: bitnet_sampler_chain_params,
) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || {
        Ok(new_sampler(Chain::new(ChainParams {
            no_perf: params.no_perf,
        })))
    })
}

/// Appends `smpl` to `chain`, which takes ownership (do not free smpl afterwards). On error
/// (NULL, chain not a chain, smpl == chain) nothing changes and the caller keeps smpl.
#[no_mangle]
pub extern "C" fn bitnet_sampler_chain_add(chain: *mut bitnet_sampler, smpl: *mut bitnet_sampler) {
    call_void(|| {
        if smpl.is_null() {
            return Err(super::null_arg("smpl"));
        }
        if std::ptr::eq(chain, smpl) {
            return Err(Error::invalid_argument("a chain cannot be added to itself"));
        }
        let c = chain_mut(chain)?;
        // Adding a member twice would free it twice when the chain is freed. Detectable here (a
        // member's handle is its address); a sampler owned by another chain is not.
        let already = (0..c.len() as i32).any(|i| {
            c.get(i).is_some_and(|m| {
                std::ptr::eq((m as *const dyn Sampler).cast::<u8>(), smpl.cast::<u8>())
            })
        });
        if already {
            return Err(Error::invalid_argument(
                "the sampler is already in this chain",
            ));
        }
        // SAFETY: smpl is a live handle from into_handle; ownership moves into the chain and the
        // box keeps its address (see the module comment).
        let boxed: Box<bitnet_sampler> = unsafe { Box::from_raw(smpl) };
        c.add(boxed);
        Ok(())
    })
}

/// The i-th sampler of the chain, still owned by it; NULL if i is out of range.
#[no_mangle]
pub extern "C" fn bitnet_sampler_chain_get(
    chain: *const bitnet_sampler,
    i: i32,
) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || {
        let c = chain_ref(chain)?;
        let s = c.get(i).ok_or_else(|| {
            Error::invalid_argument(format!("sampler index {i} is outside 0..{}", c.len()))
        })?;
        // Every chain member is a bitnet_sampler (module invariant): the data pointer of the
        // trait object is the handle.
        Ok((s as *const dyn Sampler)
            .cast::<bitnet_sampler>()
            .cast_mut())
    })
}

/// Number of samplers in the chain; -1 if chain is NULL or not a chain.
#[no_mangle]
pub extern "C" fn bitnet_sampler_chain_n(chain: *const bitnet_sampler) -> i32 {
    call(-1, || Ok(chain_ref(chain)?.len() as i32))
}

/// Removes the i-th sampler from the chain and gives it back to the caller (free it with
/// bitnet_sampler_free); NULL if i is out of range.
#[no_mangle]
pub extern "C" fn bitnet_sampler_chain_remove(
    chain: *mut bitnet_sampler,
    i: i32,
) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || {
        let c = chain_mut(chain)?;
        let n = c.len();
        let s = c.remove(i).ok_or_else(|| {
            Error::invalid_argument(format!("sampler index {i} is outside 0..{n}"))
        })?;
        // The member is a Box<bitnet_sampler> (module invariant): hand back the same handle.
        Ok(Box::into_raw(s).cast::<bitnet_sampler>())
    })
}

/// Greedy: picks the highest logit (first on ties).
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_greedy() -> *mut bitnet_sampler {
    new_sampler(Greedy)
}

/// Samples a token: computes the candidates' probabilities (sort by logit, softmax), then draws
/// from them with std::mt19937(seed) as libstdc++'s discrete_distribution does;
/// BITNET_DEFAULT_SEED = a random seed. As in current llama.h, no softmax is needed before it.
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_dist(seed: u32) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || Ok(new_sampler(Dist::new(seed))))
}

/// Sorts the candidates by logit and computes their probabilities (the fork's softmax sampler,
/// which current llama.h no longer has).
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_softmax() -> *mut bitnet_sampler {
    new_sampler(Softmax)
}

/// Keeps the k highest logits (k <= 0: all, still sorted).
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_top_k(k: i32) -> *mut bitnet_sampler {
    new_sampler(TopK { k })
}

/// Nucleus sampling: keeps the smallest prefix with cumulative probability >= p (at least
/// min_keep tokens).
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_top_p(p: f32, min_keep: usize) -> *mut bitnet_sampler {
    new_sampler(TopP { p, min_keep })
}

/// Keeps tokens whose probability is at least p times the top one's (at least min_keep).
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_min_p(p: f32, min_keep: usize) -> *mut bitnet_sampler {
    new_sampler(MinP { p, min_keep })
}

/// Locally typical sampling with mass p (at least min_keep tokens).
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_typical(p: f32, min_keep: usize) -> *mut bitnet_sampler {
    new_sampler(Typical { p, min_keep })
}

/// Divides every logit by t (as the fork: t <= 0 is not special-cased).
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_temp(t: f32) -> *mut bitnet_sampler {
    new_sampler(Temp { t })
}

/// Dynamic temperature in [t - delta, t + delta] driven by the entropy (delta <= 0: temp(t)).
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_temp_ext(
    t: f32,
    delta: f32,
    exponent: f32,
) -> *mut bitnet_sampler {
    new_sampler(TempExt { t, delta, exponent })
}

/// Repetition penalties over the last penalty_last_n accepted tokens (0: disabled), with
/// current llama.h's signature: `n_vocab` (the vocabulary size) comes first. NULL if n_vocab
/// is negative.
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_penalties(
    n_vocab: i32,
    penalty_last_n: i32,
    penalty_repeat: f32,
    penalty_freq: f32,
    penalty_present: f32,
) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || {
        if n_vocab < 0 {
            return Err(Error::invalid_argument(format!(
                "n_vocab {n_vocab} is negative"
            )));
        }
        Ok(new_sampler(Penalties::new(
            penalty_last_n,
            penalty_repeat,
            penalty_freq,
            penalty_present,
        )))
    })
}

/// Mirostat v1 (computes probabilities itself and selects). NULL if n_vocab <= 0.
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_mirostat(
    n_vocab: i32,
    seed: u32,
    tau: f32,
    eta: f32,
    m: i32,
) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || {
        if n_vocab <= 0 || m <= 0 {
            return Err(Error::invalid_argument(format!(
                "mirostat: n_vocab {n_vocab} and m {m} must be positive"
            )));
        }
        Ok(new_sampler(Mirostat::new(n_vocab, seed, tau, eta, m)))
    })
}

/// Mirostat v2 (computes probabilities itself and selects).
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_mirostat_v2(
    seed: u32,
    tau: f32,
    eta: f32,
) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || {
        Ok(new_sampler(MirostatV2::new(seed, tau, eta)))
    })
}

/// Adds fixed biases to chosen tokens' logits. NULL if n_vocab <= 0, n_logit_bias < 0,
/// logit_bias is NULL with n_logit_bias > 0, or a token is outside 0..n_vocab-1.
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_logit_bias(
    n_vocab: i32,
    n_logit_bias: i32,
    logit_bias: *const bitnet_logit_bias,
) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || {
        if n_vocab <= 0 {
            return Err(Error::invalid_argument(format!(
                "logit_bias: n_vocab {n_vocab} must be positive"
            )));
        }
        let biases = slice(logit_bias, n_logit_bias as i64, "logit_bias")?;
        if let Some(b) = biases.iter().find(|b| !(0..n_vocab).contains(&b.token)) {
            return Err(Error::invalid_token(format!(
                "logit_bias: token {} is outside 0..{n_vocab}",
                b.token
            )));
        }
        let biases: Vec<LogitBias> = biases
            .iter()
            .map(|b| LogitBias {
                token: b.token,
                bias: b.bias,
            })
            .collect();
        Ok(new_sampler(LogitBiasSampler::new(n_vocab, &biases)))
    })
}

/// Samples from the logits of batch token `idx` of the last decode (negative: from the end):
/// builds the candidates (all tokens, id order), applies the sampler(s), takes the selected
/// token and accepts it. BITNET_TOKEN_NULL on error (NULL handles, bad idx, no logits for
/// idx, nothing selected because the chain does not end in greedy/dist/mirostat).
#[no_mangle]
pub extern "C" fn bitnet_sampler_sample(
    smpl: *mut bitnet_sampler,
    ctx: *mut bitnet_context,
    idx: i32,
) -> bitnet_token {
    call(super::BITNET_TOKEN_NULL, || {
        let s = borrow_mut(smpl, "smpl")?;
        let c = ctx_ref(ctx)?;
        // Backend sampling drew this output's token already: hand it out and accept it.
        if let Some(token) = c.backend.token(&c.ctx, idx) {
            s.accept(token);
            return Ok(token);
        }
        let logits = c.ctx.logits_ith(idx)?;
        if let Some(chain) = s.as_chain_mut() {
            return chain.sample(logits);
        }
        // A single sampler samples through a one-element chain (Chain::sample is the one
        // implementation of llama_sampler_sample), then goes back to its handle.
        let mut tmp = Chain::new(ChainParams { no_perf: true });
        tmp.add(std::mem::replace(&mut s.inner, Box::new(Greedy)));
        let result = tmp.sample(logits);
        s.inner = tmp
            .remove(0)
            .ok_or_else(|| Error::internal("sampler lost from its temporary chain"))?;
        result
    })
}

/// Tells the sampler which token was chosen (penalties and mirostat keep history).
#[no_mangle]
pub extern "C" fn bitnet_sampler_accept(smpl: *mut bitnet_sampler, token: bitnet_token) {
    call_void(|| {
        borrow_mut(smpl, "smpl")?.accept(token);
        Ok(())
    })
}

/// Applies the sampler to caller-owned candidates: it may reorder and shorten them (size),
/// set selected and sorted. The data pointer is not changed.
#[no_mangle]
pub extern "C" fn bitnet_sampler_apply(
    smpl: *mut bitnet_sampler,
    cur_p: *mut bitnet_token_data_array,
) {
    call_void(|| {
        let s = borrow_mut(smpl, "smpl")?;
        let cur = borrow_mut(cur_p, "cur_p")?;
        let size = i64::try_from(cur.size)
            .map_err(|_| Error::invalid_argument("cur_p->size is too large"))?;
        let data = slice_mut(cur.data, size, "cur_p->data")?;
        let mut arr = TokenDataArray {
            data: data
                .iter()
                .map(|d| TokenData {
                    id: d.id,
                    logit: d.logit,
                    p: d.p,
                })
                .collect(),
            selected: cur.selected,
            sorted: cur.sorted,
        };
        s.apply(&mut arr);
        if arr.data.len() > data.len() {
            return Err(Error::internal(format!(
                "sampler {:?} grew the candidates from {} to {}",
                s.name(),
                data.len(),
                arr.data.len()
            )));
        }
        for (out, d) in data.iter_mut().zip(&arr.data) {
            *out = bitnet_token_data {
                id: d.id,
                logit: d.logit,
                p: d.p,
            };
        }
        cur.size = arr.data.len();
        cur.selected = arr.selected;
        cur.sorted = arr.sorted;
        Ok(())
    })
}

/// Back to the initial state: RNGs re-seeded, histories cleared (every member of a chain).
#[no_mangle]
pub extern "C" fn bitnet_sampler_reset(smpl: *mut bitnet_sampler) {
    call_void(|| {
        borrow_mut(smpl, "smpl")?.reset();
        Ok(())
    })
}

/// A copy with the same state (a chain is copied with all its members). NULL if smpl is NULL.
#[no_mangle]
pub extern "C" fn bitnet_sampler_clone(smpl: *const bitnet_sampler) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || {
        let s = borrow(smpl, "smpl")?;
        Ok(into_handle(bitnet_sampler {
            inner: s.inner.clone_box(),
        }))
    })
}

/// Gives `dst` the state of `src` (llama.h `llama_sampler_copy`): afterwards dst samples as src
/// would (RNG, history, a chain's members: members of dst handed out by bitnet_sampler_chain_get
/// are freed, as in llama.cpp). Both must be the same kind of sampler (same name), else nothing
/// changes and an error is recorded. NULL or src == dst: no-op.
#[no_mangle]
pub extern "C" fn bitnet_sampler_copy(src: *const bitnet_sampler, dst: *mut bitnet_sampler) {
    call_void(|| {
        if src.is_null() || dst.is_null() || std::ptr::eq(src, dst) {
            return Ok(());
        }
        let s = borrow(src, "src")?;
        let d = borrow_mut(dst, "dst")?;
        if s.inner.name() != d.inner.name() {
            return Err(Error::invalid_argument(format!(
                "bitnet_sampler_copy: cannot copy a {} sampler into a {} sampler",
                s.inner.name(),
                d.inner.name()
            )));
        }
        d.inner = s.inner.clone_box();
        Ok(())
    })
}

/// Frees a sampler or chain (with its members). Never free a sampler a chain owns. NULL is a
/// no-op.
#[no_mangle]
pub extern "C" fn bitnet_sampler_free(smpl: *mut bitnet_sampler) {
    call_void(|| {
        free_handle(smpl);
        Ok(())
    })
}

/// The seed in use (for a chain: that of its last seeded member); BITNET_DEFAULT_SEED for
/// samplers without randomness or a NULL smpl.
#[no_mangle]
pub extern "C" fn bitnet_sampler_get_seed(smpl: *const bitnet_sampler) -> u32 {
    call(super::BITNET_DEFAULT_SEED, || {
        Ok(borrow(smpl, "smpl")?.seed())
    })
}

/// The sampler's name ("chain", "greedy", "dist", "top-k", ...), a static string; NULL if smpl
/// is NULL.
#[no_mangle]
pub extern "C" fn bitnet_sampler_name(smpl: *const bitnet_sampler) -> *const c_char {
    call(std::ptr::null(), || {
        Ok(static_c_str(borrow(smpl, "smpl")?.name()))
    })
}

/// A NUL-terminated copy of a static name, made once per name and kept for the process.
fn static_c_str(name: &'static str) -> *const c_char {
    static NAMES: Mutex<Vec<(&'static str, &'static CString)>> = Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, c)) = names.iter().find(|(n, _)| *n == name) {
        return c.as_ptr();
    }
    let c: &'static CString = Box::leak(Box::new(CString::new(name).unwrap_or_default()));
    names.push((name, c));
    c.as_ptr()
}

pub(crate) fn sampler_chain_ref<'a>(chain: *const bitnet_sampler) -> Result<&'a Chain> {
    chain_ref(chain)
}

pub(crate) fn sampler_chain_mut<'a>(chain: *mut bitnet_sampler) -> Result<&'a mut Chain> {
    chain_mut(chain)
}
