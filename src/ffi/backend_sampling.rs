//! Backend sampling (llama.h `llama_context_params.samplers`, `llama_set_sampler`,
//! `llama_get_sampled_*_ith`): a sequence's sampler chain samples each of its outputs inside
//! the decode call. llama.cpp runs the chain on its compute backend; here it runs on the CPU
//! right after the forward pass, with the same chain code bitnet_sampler_sample uses, so a
//! token sampled this way is the one bitnet_sampler_sample would have drawn in its place.
//! The chain's state (its RNG) advances as it samples; accepting (history for penalties,
//! mirostat's mu) happens when bitnet_sampler_sample hands the token out, as llama.h says.

use super::context::{bitnet_context, bitnet_sampler_seq_config, ctx_mut, ctx_ref};
use super::sampler::{bitnet_sampler, sampler_chain_mut};
use super::{bitnet_seq_id, bitnet_token, call, slice, BITNET_TOKEN_NULL};
use crate::context::Batch;
use crate::error::{Error, Result};
use crate::sampling::{Sampler, TokenDataArray};

/// What a chain produced for one output.
struct Sampled {
    /// The selected token, BITNET_TOKEN_NULL if the chain selected none.
    token: bitnet_token,
    /// The candidates left after the chain, with their logits and (if the chain computed
    /// them: it ends in dist) probabilities.
    candidates: Vec<bitnet_token>,
    logits: Vec<f32>,
    probs: Option<Vec<f32>>,
}

/// The chains of a context by sequence id, and what they sampled in the last decode.
#[derive(Default)]
pub(crate) struct BackendSampling {
    /// (sequence id, chain); the caller owns the chains and keeps them alive.
    chains: Vec<(bitnet_seq_id, *mut bitnet_sampler)>,
    /// Most outputs per sequence that has a chain (`n_outputs_max_per_seq`, 0 = no limit).
    max_per_seq: u32,
    /// By batch index of the last decode.
    sampled: Vec<Option<Sampled>>,
}

// SAFETY: the chain pointers are the caller's, used only inside calls on this context, which
// llama.h (and bitnet.h) allow on one thread at a time; the caller keeps them alive.
unsafe impl Send for BackendSampling {}
// SAFETY: `&BackendSampling` gives no access to the chains (they are used through `&mut`).
unsafe impl Sync for BackendSampling {}

impl BackendSampling {
    /// The context parameters' `samplers` / `n_samplers`: each a chain for a distinct
    /// sequence id below n_seq_max.
    pub(crate) fn new(
        configs: *mut bitnet_sampler_seq_config,
        n: usize,
        n_seq_max: u32,
        max_per_seq: u32,
    ) -> Result<Self> {
        let configs = slice(
            configs.cast_const(),
            i64::try_from(n).unwrap_or(i64::MAX),
            "samplers",
        )?;
        let mut b = BackendSampling {
            max_per_seq,
            ..Default::default()
        };
        for c in configs {
            if !(0..n_seq_max as bitnet_seq_id).contains(&c.seq_id) {
                return Err(Error::invalid_argument(format!(
                    "samplers: seq_id {} is outside 0..{n_seq_max} (n_seq_max)",
                    c.seq_id
                )));
            }
            if b.chains.iter().any(|&(s, _)| s == c.seq_id) {
                return Err(Error::invalid_argument(format!(
                    "samplers: two samplers for seq_id {}",
                    c.seq_id
                )));
            }
            b.set(c.seq_id, c.sampler)?;
        }
        Ok(b)
    }

    /// Attaches `smpl` (a chain) to `seq`, replacing its chain; NULL detaches.
    fn set(&mut self, seq: bitnet_seq_id, smpl: *mut bitnet_sampler) -> Result<()> {
        self.chains.retain(|&(s, _)| s != seq);
        if smpl.is_null() {
            return Ok(());
        }
        if sampler_chain_mut(smpl).is_err() {
            return Err(Error::invalid_argument(format!(
                "sampler for seq_id {seq} is not a chain (use bitnet_sampler_chain_init)"
            )));
        }
        self.chains.push((seq, smpl));
        Ok(())
    }

    /// The chain of a token's first sequence (llama.cpp samples a token shared by several
    /// sequences with its first sequence's sampler only).
    fn chain_for(&self, seqs: &[bitnet_seq_id]) -> Option<*mut bitnet_sampler> {
        let first = *seqs.first()?;
        self.chains.iter().find(|c| c.0 == first).map(|c| c.1)
    }

    /// Before a decode: a sequence with a chain may not ask for more than n_outputs_max_per_seq
    /// outputs (llama.cpp refuses such a batch too). Forgets the last decode's samples.
    pub(crate) fn check(&mut self, batch: &Batch) -> Result<()> {
        self.sampled.clear();
        if self.chains.is_empty() || self.max_per_seq == 0 {
            return Ok(());
        }
        let mut count = vec![0u32; 64];
        for i in 0..batch.tokens.len() {
            if !wants_output(batch, i) {
                continue;
            }
            for &s in seqs_of(batch, i) {
                let Some(n) = count.get_mut(s as usize) else {
                    continue;
                };
                *n += 1;
                if *n > self.max_per_seq && self.chains.iter().any(|c| c.0 == s) {
                    return Err(Error::invalid_argument(format!(
                        "backend sampling: seq_id {s} asks for more than {} outputs \
                         (n_outputs_max_per_seq)",
                        self.max_per_seq
                    )));
                }
            }
        }
        Ok(())
    }

    /// After a decode: each output of a sequence with a chain is sampled by that chain.
    pub(crate) fn sample(&mut self, ctx: &crate::context::Context, batch: &Batch) -> Result<()> {
        if self.chains.is_empty() {
            return Ok(());
        }
        self.sampled = (0..batch.tokens.len()).map(|_| None).collect();
        for i in 0..batch.tokens.len() {
            let Some(chain) = self.chain_for(seqs_of(batch, i)) else {
                continue;
            };
            let Ok(logits) = ctx.logits_ith(i as i32) else {
                continue;
            };
            // A chain the caller attached and keeps alive, used on this call's thread.
            let chain = sampler_chain_mut(chain)?;
            let mut cur = TokenDataArray::from_logits(logits);
            Sampler::apply(chain, &mut cur);
            let token = cur.selected_token().map_or(BITNET_TOKEN_NULL, |t| t.id);
            let ends_in_dist = chain.names().last() == Some(&"dist");
            self.sampled[i] = Some(Sampled {
                token,
                candidates: cur.data.iter().map(|t| t.id).collect(),
                logits: cur.data.iter().map(|t| t.logit).collect(),
                probs: ends_in_dist.then(|| cur.data.iter().map(|t| t.p).collect()),
            });
        }
        Ok(())
    }

    /// The token sampled for batch token `i`, if any (for bitnet_sampler_sample).
    pub(crate) fn token(&self, ctx: &crate::context::Context, i: i32) -> Option<bitnet_token> {
        self.get(ctx, i)
            .map(|s| s.token)
            .filter(|&t| t != BITNET_TOKEN_NULL)
    }

    /// The sample of batch token `i` (negative: from the last output, as logits_ith).
    fn get(&self, ctx: &crate::context::Context, i: i32) -> Option<&Sampled> {
        let idx = if i < 0 {
            // The batch index of the (-i)th output from the end.
            let (ids, _) = ctx.output_state();
            let row = ctx.n_outputs() as i64 + i as i64;
            ids.iter().position(|&r| r >= 0 && r as i64 == row)?
        } else {
            i as usize
        };
        self.sampled.get(idx)?.as_ref()
    }
}

fn wants_output(batch: &Batch, i: usize) -> bool {
    match &batch.logits {
        Some(l) => l[i],
        None => i + 1 == batch.tokens.len(),
    }
}

fn seqs_of(batch: &Batch, i: usize) -> &[bitnet_seq_id] {
    match &batch.seq_ids {
        Some(s) => &s[i],
        None => &[0],
    }
}

/// Attaches a sampler chain to sequence `seq_id` of ctx for backend sampling (replacing its
/// chain; NULL detaches). False on error: NULL ctx, bad seq_id, a sampler that is not a chain.
/// The caller keeps the chain alive while it is attached.
#[no_mangle]
pub extern "C" fn bitnet_set_sampler(
    ctx: *mut bitnet_context,
    seq_id: bitnet_seq_id,
    smpl: *mut bitnet_sampler,
) -> bool {
    call(false, || {
        let c = ctx_mut(ctx)?;
        let n = c.ctx.params().n_seq_max as bitnet_seq_id;
        if !(0..n).contains(&seq_id) {
            return Err(Error::invalid_argument(format!(
                "seq_id {seq_id} is outside 0..{n} (n_seq_max)"
            )));
        }
        c.backend.set(seq_id, smpl)?;
        Ok(true)
    })
}

fn sampled<T>(ctx: *mut bitnet_context, i: i32, none: T, f: impl FnOnce(&Sampled) -> T) -> T {
    call(None, || {
        let c = ctx_ref(ctx)?;
        Ok(c.backend.get(&c.ctx, i).map(f))
    })
    .unwrap_or(none)
}

/// The token backend sampling drew for batch token `i` of the last decode (negative: from the
/// last output); BITNET_TOKEN_NULL if none (no chain for its sequence, no output, bad index).
#[no_mangle]
pub extern "C" fn bitnet_get_sampled_token_ith(ctx: *mut bitnet_context, i: i32) -> bitnet_token {
    sampled(ctx, i, BITNET_TOKEN_NULL, |s| s.token)
}

/// The probabilities of the candidates left by the chain (bitnet_get_sampled_candidates_ith
/// order) when it computed them (it ends in dist); NULL otherwise. Valid until the next decode.
#[no_mangle]
pub extern "C" fn bitnet_get_sampled_probs_ith(ctx: *mut bitnet_context, i: i32) -> *mut f32 {
    sampled(ctx, i, std::ptr::null_mut(), |s| {
        s.probs
            .as_ref()
            .map_or(std::ptr::null_mut(), |p| p.as_ptr().cast_mut())
    })
}

/// Number of floats at bitnet_get_sampled_probs_ith (0 if NULL).
#[no_mangle]
pub extern "C" fn bitnet_get_sampled_probs_count_ith(ctx: *mut bitnet_context, i: i32) -> u32 {
    sampled(ctx, i, 0, |s| {
        s.probs.as_ref().map_or(0, |p| p.len() as u32)
    })
}

/// The logits of the candidates left by the chain (after its temperature etc.), in
/// bitnet_get_sampled_candidates_ith order; NULL if batch token `i` was not backend-sampled.
#[no_mangle]
pub extern "C" fn bitnet_get_sampled_logits_ith(ctx: *mut bitnet_context, i: i32) -> *mut f32 {
    sampled(ctx, i, std::ptr::null_mut(), |s| {
        s.logits.as_ptr().cast_mut()
    })
}

/// Number of floats at bitnet_get_sampled_logits_ith (0 if NULL).
#[no_mangle]
pub extern "C" fn bitnet_get_sampled_logits_count_ith(ctx: *mut bitnet_context, i: i32) -> u32 {
    sampled(ctx, i, 0, |s| s.logits.len() as u32)
}

/// The token ids of the candidates left by the chain; NULL if batch token `i` was not
/// backend-sampled.
#[no_mangle]
pub extern "C" fn bitnet_get_sampled_candidates_ith(
    ctx: *mut bitnet_context,
    i: i32,
) -> *mut bitnet_token {
    sampled(ctx, i, std::ptr::null_mut(), |s| {
        s.candidates.as_ptr().cast_mut()
    })
}

/// Number of tokens at bitnet_get_sampled_candidates_ith (0 if NULL).
#[no_mangle]
pub extern "C" fn bitnet_get_sampled_candidates_count_ith(ctx: *mut bitnet_context, i: i32) -> u32 {
    sampled(ctx, i, 0, |s| s.candidates.len() as u32)
}
