//! Constrained and modern samplers: grammar (GBNF, eager or lazy), DRY, adaptive-p, XTC, top-nσ,
//! infill,
//! and JSON schema → GBNF. llama.h's names with `llama_` → `bitnet_`; the Rust API behind them
//! is `sampling::{grammar, json_schema, dry, xtc, top_n_sigma, infill}` (docs/grammar.md).

use super::sampler::{bitnet_sampler, new_sampler};
use super::vocab::bitnet_vocab;
use super::{bitnet_token, borrow, c_str, call, slice, write_c_string};
use crate::error::{Error, Result};
use crate::sampling::grammar::GrammarSampler;
use crate::sampling::{json_schema, AdaptiveP, Dry, Infill, TopNSigma, Xtc};
use std::ffi::c_char;

/// `n` C strings at `p` (each non-NULL).
fn c_strings<'a>(p: *const *const c_char, n: usize, name: &str) -> Result<Vec<&'a str>> {
    let n = i64::try_from(n)
        .map_err(|_| Error::invalid_argument(format!("{name}: count too large")))?;
    let ptrs = slice(p, n, name)?;
    ptrs.iter()
        .enumerate()
        .map(|(i, &s)| c_str(s, &format!("{name}[{i}]")))
        .collect()
}

/// A GBNF grammar sampler: candidates that cannot continue the grammar get logit -inf;
/// end-of-generation tokens only once the grammar is complete. grammar_str NULL or "" gives a
/// sampler that does nothing (llama.h). NULL on error (vocab NULL, grammar_root NULL, parse
/// error with line and column, unknown root, left recursion: see bitnet_last_error).
/// If a token outside the grammar is accepted later, the sampler removes every candidate from
/// then on (sampling fails with a message) until it is reset.
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_grammar(
    vocab: *const bitnet_vocab,
    grammar_str: *const c_char,
    grammar_root: *const c_char,
) -> *mut bitnet_sampler {
    bitnet_sampler_init_grammar_lazy_patterns(
        vocab,
        grammar_str,
        grammar_root,
        std::ptr::null(),
        0,
        std::ptr::null(),
        0,
    )
}

/// A lazy grammar sampler: unconstrained until a trigger token is accepted, or a trigger pattern
/// (ECMAScript-style regular expression) matches the generated text; the grammar then starts at
/// the trigger token, or at the pattern's first capture group (else the whole match).
/// With no triggers at all it behaves like bitnet_sampler_init_grammar. NULL on error.
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_grammar_lazy_patterns(
    vocab: *const bitnet_vocab,
    grammar_str: *const c_char,
    grammar_root: *const c_char,
    trigger_patterns: *const *const c_char,
    num_trigger_patterns: usize,
    trigger_tokens: *const bitnet_token,
    num_trigger_tokens: usize,
) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || {
        let v = borrow(vocab, "vocab")?.vocab();
        let text = if grammar_str.is_null() {
            ""
        } else {
            c_str(grammar_str, "grammar_str")?
        };
        let root = if text.is_empty() && grammar_root.is_null() {
            "root"
        } else {
            c_str(grammar_root, "grammar_root")?
        };
        let patterns = c_strings(trigger_patterns, num_trigger_patterns, "trigger_patterns")?;
        let n_tok = i64::try_from(num_trigger_tokens)
            .map_err(|_| Error::invalid_argument("num_trigger_tokens is too large"))?;
        let tokens = slice(trigger_tokens, n_tok, "trigger_tokens")?;
        let lazy = !patterns.is_empty() || !tokens.is_empty();
        let s = if lazy {
            GrammarSampler::new_lazy(v, text, root, &patterns, tokens)?
        } else {
            GrammarSampler::new(v, text, root)?
        };
        Ok(new_sampler(s))
    })
}

/// DRY repetition penalty: a token that would extend a sequence repeated within the last
/// dry_penalty_last_n tokens (0: disabled, -1 is treated as 0 like llama.cpp's clamp) loses
/// dry_multiplier * dry_base^(length - dry_allowed_length); seq_breakers (e.g. "\n", ":")
/// end repetitions. Disabled (a no-op sampler) when dry_multiplier is 0 or dry_base < 1.
/// NULL on error (vocab NULL, seq_breakers NULL with num_breakers > 0).
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_dry(
    vocab: *const bitnet_vocab,
    dry_multiplier: f32,
    dry_base: f32,
    dry_allowed_length: i32,
    dry_penalty_last_n: i32,
    seq_breakers: *const *const c_char,
    num_breakers: usize,
) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || {
        let v = borrow(vocab, "vocab")?.vocab();
        let breakers = c_strings(seq_breakers, num_breakers, "seq_breakers")?;
        Ok(new_sampler(Dry::new(
            v,
            dry_multiplier,
            dry_base,
            dry_allowed_length,
            dry_penalty_last_n,
            &breakers,
        )?))
    })
}

/// Adaptive-p: selects tokens whose probability is near `target`, steering the running average
/// of the chosen tokens' original probabilities towards it; it selects, so it ends a chain (as
/// dist). Each apply: softmax in the current order (no sort), the original probabilities kept,
/// `adapted = clamp(2·t - weighted_sum / total_weight, 0, 1)` (t = target clamped to [0, 1]),
/// every finite logit replaced by `5 - 10·d²/(1 + d)` with `d = |p - adapted| / 0.3`, softmax
/// again, then a draw as dist's (std::mt19937(seed), libstdc++'s discrete_distribution) in that
/// order. Accepting the selected token updates `weighted_sum = p_orig + decay·weighted_sum`,
/// `total_weight = 1 + decay·total_weight` (both start at target / (1 - decay) and
/// 1 / (1 - decay)). target < 0: disabled (a plain draw from the softmax). decay is clamped to
/// [0, 0.99] (history ≈ 1 / (1 - decay) tokens); BITNET_DEFAULT_SEED = random. As llama.cpp: a
/// clone restarts its generator from the seed, and bitnet_sampler_get_seed reports
/// BITNET_DEFAULT_SEED for it. llama.cpp suggests at most min-p before it.
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_adaptive_p(
    target: f32,
    decay: f32,
    seed: u32,
) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || {
        Ok(new_sampler(AdaptiveP::new(target, decay, seed)))
    })
}

/// XTC: with probability p (drawn from std::mt19937(seed); BITNET_DEFAULT_SEED = random),
/// removes every candidate with probability >= t except the least likely of them, keeping at
/// least min_keep. A no-op when p <= 0 or t > 0.5.
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_xtc(
    p: f32,
    t: f32,
    min_keep: usize,
    seed: u32,
) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || {
        Ok(new_sampler(Xtc::new(p, t, min_keep, seed)))
    })
}

/// Top-nσ: sets to -inf every logit below max - n * (standard deviation of the finite logits).
/// A no-op when n <= 0.
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_top_n_sigma(n: f32) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || Ok(new_sampler(TopNSigma { n })))
}

/// Infill (fill-in-the-middle), meant after top-k / top-p: picks end-of-generation when it
/// dominates, merges tokens that are prefixes of one another, drops unlikely ones. NULL if
/// vocab is NULL or has neither EOT nor EOS.
#[no_mangle]
pub extern "C" fn bitnet_sampler_init_infill(vocab: *const bitnet_vocab) -> *mut bitnet_sampler {
    call(std::ptr::null_mut(), || {
        let v = borrow(vocab, "vocab")?.vocab();
        Ok(new_sampler(Infill::new(v)?))
    })
}

/// Converts a JSON schema to a GBNF grammar (root rule "root") for
/// bitnet_sampler_init_grammar. snprintf semantics: writes at most buf_size - 1 bytes plus a
/// NUL and returns the full length; call with buf_size 0 to ask for the size. Negative
/// bitnet_status on error (invalid JSON, unsupported keyword: see bitnet_last_error).
#[no_mangle]
pub extern "C" fn bitnet_json_schema_to_grammar(
    schema: *const c_char,
    buf: *mut c_char,
    buf_size: usize,
) -> i32 {
    super::call_with(
        |k| k.code(),
        || {
            let schema = c_str(schema, "schema")?;
            let g = json_schema::to_gbnf(schema)?;
            write_c_string(buf, buf_size, g.as_bytes(), "buf")
        },
    )
}
