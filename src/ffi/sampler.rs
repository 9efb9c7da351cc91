//! Sampler group: chains, every sampler of the fork's API, sample/accept/apply/reset/clone.
//!
//! Every sampler is llama.h's public `{iface, ctx}` pair ([`bitnet_sampler`], defined with
//! user-defined samplers in `sampler_iface`): the built-in ones carry a boxed Rust [`Sampler`]
//! behind one shared table of Rust functions, user ones their own functions and state. The entry
//! points here run built-ins on their Rust state and dispatch user samplers through `iface`. A
//! chain is a built-in whose Rust state is a [`Chain`] of `CSampler`s: chain_add moves the
//! handle in (the chain frees it through `iface->free`), chain_get / chain_remove hand back the
//! same handle.

use super::context::{bitnet_context, ctx_ref};
pub use super::sampler_iface::{
    bitnet_sampler, bitnet_sampler_context_t, bitnet_sampler_data, bitnet_sampler_i,
};
use super::sampler_iface::{builtin_handle, free_sampler, member_handle, CSampler};
use super::{bitnet_token, borrow, borrow_mut, call, call_void, slice, slice_mut};
use crate::error::{Error, Result};
use crate::sampling::{
    Chain, ChainParams, Dist, Greedy, LogitBias, LogitBiasSampler, MinP, Mirostat, MirostatV2,
    Penalties, Sampler, Softmax, Temp, TempExt, TokenData, TokenDataArray, TopK, TopP, Typical,
};
use std::ffi::{c_char, CString};
use std::sync::Mutex;

pub(crate) fn new_sampler(s: impl Sampler + 'static) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || Ok(builtin_handle(Box::new(s))))
}

/// A borrowed view of a non-NULL handle.
fn view(smpl: *const bitnet_sampler, name: &str) -> Result<CSampler> {
    borrow(smpl, name)?;
    Ok(CSampler::view(smpl.cast_mut()))
}

fn chain_ref<'a>(chain: *const bitnet_sampler) -> Result<&'a Chain> {
    let v = view(chain, "chain")?;
    let name = v.name();
    let c = v.as_chain().map(|c| c as *const Chain).ok_or_else(|| {
        Error::invalid_argument(format!("chain: sampler {name:?} is not a chain"))
    })?;
    // SAFETY: the chain lives in the handle's ctx, not in the view, and outlives this call.
    Ok(unsafe { &*c })
}

fn chain_mut<'a>(chain: *mut bitnet_sampler) -> Result<&'a mut Chain> {
    let mut v = view(chain, "chain")?;
    let name = v.name();
    let c = v.as_chain_mut().map(|c| c as *mut Chain).ok_or_else(|| {
        Error::invalid_argument(format!("chain: sampler {name:?} is not a chain"))
    })?;
    // SAFETY: as chain_ref; the caller is the one user of the handle (header contract).
    Ok(unsafe { &mut *c })
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
        let already = (0..c.len() as i32).any(|i| c.get(i).and_then(member_handle) == Some(smpl));
        if already {
            return Err(Error::invalid_argument(
                "the sampler is already in this chain",
            ));
        }
        // The chain owns the handle from here on and frees it with itself.
        c.add(Box::new(CSampler::owning(smpl)));
        Ok(())
    })
}

/// The i-th sampler of the chain, still owned by it; the chain itself for i == -1 (a way to ask
/// whether a sampler is a chain); NULL if chain is NULL or not a chain, or i is out of range.
#[no_mangle]
pub extern "C" fn bitnet_sampler_chain_get(
    chain: *mut bitnet_sampler,
    i: i32,
) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || {
        let c = chain_ref(chain)?;
        if i == -1 {
            return Ok(chain);
        }
        let s = c.get(i).ok_or_else(|| {
            Error::invalid_argument(format!("sampler index {i} is outside 0..{}", c.len()))
        })?;
        member_handle(s).ok_or_else(|| {
            Error::internal(format!("chain member {i} ({}) has no C handle", s.name()))
        })
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
        if member_handle(s.as_ref()).is_none() {
            // A member built in Rust: it becomes a handle of its own.
            return Ok(builtin_handle(s));
        }
        let any: Box<dyn std::any::Any> = s;
        match any.downcast::<CSampler>() {
            Ok(member) => Ok(member.disown()),
            Err(_) => Err(Error::internal("chain member changed type")),
        }
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
        let mut s = view(smpl, "smpl")?;
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
        // A single sampler (built-in or user) samples through a one-element chain holding a
        // view of it (Chain::sample is the one implementation of llama_sampler_sample).
        let mut tmp = Chain::new(ChainParams { no_perf: true });
        tmp.add(Box::new(s));
        tmp.sample(logits)
    })
}

/// Tells the sampler which token was chosen (penalties and mirostat keep history).
#[no_mangle]
pub extern "C" fn bitnet_sampler_accept(smpl: *mut bitnet_sampler, token: bitnet_token) {
    call_void(|| {
        view(smpl, "smpl")?.accept(token);
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
        let mut v = view(smpl, "smpl")?;
        let cur = borrow_mut(cur_p, "cur_p")?;
        if !v.is_builtin() {
            // A user sampler gets the caller's array as it is.
            let apply = v
                .user_iface()
                .and_then(|i| i.apply)
                .ok_or_else(|| Error::invalid_argument("sampler has no apply function"))?;
            // SAFETY: the user's function, called with its own sampler and the caller's array.
            unsafe { apply(v.handle(), cur) };
            return Ok(());
        }
        let name = v.name();
        let s = v
            .rust_mut()
            .ok_or_else(|| Error::invalid_argument("built-in sampler has no state"))?;
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
                "sampler {name:?} grew the candidates from {} to {}",
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
        view(smpl, "smpl")?.reset();
        Ok(())
    })
}

/// A copy with the same state (a chain is copied with all its members, user samplers through
/// their clone function). NULL if smpl is NULL or cannot be cloned (a user sampler with a ctx
/// and no clone function, or a chain holding one).
#[no_mangle]
pub extern "C" fn bitnet_sampler_clone(smpl: *const bitnet_sampler) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || {
        view(smpl, "smpl")?.try_clone_handle()
    })
}

/// Gives `dst` the state of `src` (llama.h `llama_sampler_copy`): afterwards dst samples as src
/// would (RNG, history, a chain's members: members of dst handed out by bitnet_sampler_chain_get
/// are freed, as in llama.cpp). Both must be the same kind of sampler (built-in: same name; user:
/// same iface), else nothing changes and an error is recorded. A user sampler's `copy_state` is
/// called when it has one; otherwise dst's state is freed (`iface->free`) and replaced by a
/// clone of src's. NULL or src == dst: no-op.
#[no_mangle]
pub extern "C" fn bitnet_sampler_copy(src: *const bitnet_sampler, dst: *mut bitnet_sampler) {
    call_void(|| {
        if src.is_null() || dst.is_null() || std::ptr::eq(src, dst) {
            return Ok(());
        }
        let s = view(src, "src")?;
        let mut d = view(dst, "dst")?;
        let (s_iface, d_iface) = (borrow(src, "src")?.iface, borrow(dst, "dst")?.iface);
        // User samplers: same iface (llama.cpp's test); built-ins share one, so also the name.
        if s_iface != d_iface || (s.is_builtin() && s.name() != d.name()) {
            return Err(Error::invalid_argument(format!(
                "bitnet_sampler_copy: cannot copy a {} sampler into a {} sampler",
                s.name(),
                d.name()
            )));
        }
        if s.is_builtin() {
            let copy = s
                .rust()
                .ok_or_else(|| Error::invalid_argument("src has no state"))?
                .try_clone_box()?;
            *d.rust_mut()
                .ok_or_else(|| Error::invalid_argument("dst has no state"))? = copy;
            return Ok(());
        }
        if let Some(copy_state) = d.user_iface().and_then(|i| i.copy_state) {
            // SAFETY: the user's function, with two live samplers of its kind.
            unsafe { copy_state(src, dst) };
            return Ok(());
        }
        let tmp = s.try_clone_handle()?;
        if let Some(free) = d.user_iface().and_then(|i| i.free) {
            // SAFETY: the user's function on its own sampler; dst's ctx is replaced right after.
            unsafe { free(dst) };
        }
        // SAFETY: tmp is the fresh handle the clone made (into_handle); its ctx moves to dst and
        // the emptied struct is freed without calling free on that ctx.
        unsafe {
            (*dst).ctx = (*tmp).ctx;
            drop(Box::from_raw(tmp));
        }
        Ok(())
    })
}

/// Frees a sampler or chain (with its members): `iface->free`, then the struct. Never free a
/// sampler a chain owns. NULL is a no-op.
#[no_mangle]
pub extern "C" fn bitnet_sampler_free(smpl: *mut bitnet_sampler) {
    call_void(|| {
        free_sampler(smpl);
        Ok(())
    })
}

/// The seed in use (for a chain: that of its last seeded member); BITNET_DEFAULT_SEED for
/// samplers without randomness or a NULL smpl.
#[no_mangle]
pub extern "C" fn bitnet_sampler_get_seed(smpl: *const bitnet_sampler) -> u32 {
    call(
        super::BITNET_DEFAULT_SEED,
        || Ok(view(smpl, "smpl")?.seed()),
    )
}

/// The sampler's name ("chain", "greedy", "dist", "top-k", ...), a static string; a user
/// sampler's `iface->name` ("(null)" if it has none); NULL if smpl is NULL.
#[no_mangle]
pub extern "C" fn bitnet_sampler_name(smpl: *const bitnet_sampler) -> *const c_char {
    call(std::ptr::null(), || {
        let v = view(smpl, "smpl")?;
        Ok(match v.rust() {
            Some(r) => static_c_str(r.name()),
            None => v.user_name_ptr(),
        })
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
