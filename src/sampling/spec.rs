//! Chains from a short text notation, e.g. `"top_k:40,temp:0.8,softmax,dist:1234"`: the
//! notation of the reference-side tracer that produced the golden sampling traces
//! (`golden/sampling/chains.md`), usable by the CLI too.
//!
//! Items (comma-separated, arguments colon-separated, floats parsed as f32 like C's `0.8f`):
//! `greedy`, `softmax`, `dist:SEED`, `top_k:K`, `top_p:P:MIN_KEEP`, `min_p:P:MIN_KEEP`,
//! `typical:P:MIN_KEEP`, `tail_free:Z:MIN_KEEP`, `temp:T`, `temp_ext:T:DELTA:EXPONENT`,
//! `penalties:LAST_N:REPEAT:FREQ:PRESENT[:PENALIZE_NL:IGNORE_EOS]` (flags 0/1; without them the
//! 4-argument llama.h form, i.e. penalize_nl=1, ignore_eos=0),
//! `mirostat:SEED:TAU:ETA:M`, `mirostat_v2:SEED:TAU:ETA`, `top_n_sigma:N`,
//! `xtc:P:T:MIN_KEEP:SEED`. (dry, infill and grammar need a vocabulary: build them in code.)

use super::penalties::TOKEN_NULL;
use super::{
    Chain, ChainParams, Dist, Greedy, MinP, Mirostat, MirostatV2, Penalties, Sampler, Softmax,
    TailFree, Temp, TempExt, TopK, TopNSigma, TopP, Typical, Xtc,
};
use crate::{Error, Result};

/// What some samplers need to know about the model: vocabulary size and the eos / newline ids
/// (use `TOKEN_NULL` when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInfo {
    pub n_vocab: i32,
    pub eos: i32,
    pub nl: i32,
}

impl Default for ModelInfo {
    fn default() -> Self {
        ModelInfo {
            n_vocab: 0,
            eos: TOKEN_NULL,
            nl: TOKEN_NULL,
        }
    }
}

fn arg<T: std::str::FromStr>(item: &str, args: &[&str], i: usize, what: &str) -> Result<T> {
    let raw = args.get(i).ok_or_else(|| {
        Error::invalid_argument(format!("sampler spec '{item}': missing argument {what}"))
    })?;
    raw.parse::<T>().map_err(|_| {
        Error::invalid_argument(format!(
            "sampler spec '{item}': argument {what} = '{raw}' is not a valid number"
        ))
    })
}

fn flag(item: &str, args: &[&str], i: usize, what: &str) -> Result<bool> {
    match arg::<u8>(item, args, i, what)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(Error::invalid_argument(format!(
            "sampler spec '{item}': flag {what} must be 0 or 1, got {v}"
        ))),
    }
}

/// One sampler from one notation item.
pub fn parse_sampler(item: &str, model: &ModelInfo) -> Result<Box<dyn Sampler>> {
    let item = item.trim();
    let mut parts = item.split(':');
    let name = parts.next().unwrap_or("");
    let args: Vec<&str> = parts.collect();
    let expect = |n: &[usize]| -> Result<()> {
        if n.contains(&args.len()) {
            Ok(())
        } else {
            Err(Error::invalid_argument(format!(
                "sampler spec '{item}': '{name}' takes {n:?} arguments, got {}",
                args.len()
            )))
        }
    };
    let s: Box<dyn Sampler> = match name {
        "greedy" => {
            expect(&[0])?;
            Box::new(Greedy)
        }
        "softmax" => {
            expect(&[0])?;
            Box::new(Softmax)
        }
        "dist" => {
            expect(&[1])?;
            Box::new(Dist::new(arg(item, &args, 0, "seed")?))
        }
        "top_k" => {
            expect(&[1])?;
            Box::new(TopK {
                k: arg(item, &args, 0, "k")?,
            })
        }
        "top_p" | "min_p" | "typical" | "tail_free" => {
            expect(&[2])?;
            let p: f32 = arg(item, &args, 0, "p")?;
            let min_keep: usize = arg(item, &args, 1, "min_keep")?;
            match name {
                "top_p" => Box::new(TopP { p, min_keep }),
                "min_p" => Box::new(MinP { p, min_keep }),
                "typical" => Box::new(Typical { p, min_keep }),
                _ => Box::new(TailFree { z: p, min_keep }),
            }
        }
        "temp" => {
            expect(&[1])?;
            Box::new(Temp {
                t: arg(item, &args, 0, "t")?,
            })
        }
        "temp_ext" => {
            expect(&[3])?;
            Box::new(TempExt {
                t: arg(item, &args, 0, "t")?,
                delta: arg(item, &args, 1, "delta")?,
                exponent: arg(item, &args, 2, "exponent")?,
            })
        }
        "penalties" => {
            expect(&[4, 6])?;
            let last_n = arg(item, &args, 0, "last_n")?;
            let repeat = arg(item, &args, 1, "repeat")?;
            let freq = arg(item, &args, 2, "freq")?;
            let present = arg(item, &args, 3, "present")?;
            if args.len() == 4 {
                Box::new(Penalties::new(last_n, repeat, freq, present))
            } else {
                Box::new(Penalties::new_full(
                    model.n_vocab,
                    model.eos,
                    model.nl,
                    last_n,
                    repeat,
                    freq,
                    present,
                    flag(item, &args, 4, "penalize_nl")?,
                    flag(item, &args, 5, "ignore_eos")?,
                ))
            }
        }
        "mirostat" => {
            expect(&[4])?;
            Box::new(Mirostat::new(
                model.n_vocab,
                arg(item, &args, 0, "seed")?,
                arg(item, &args, 1, "tau")?,
                arg(item, &args, 2, "eta")?,
                arg(item, &args, 3, "m")?,
            ))
        }
        "top_n_sigma" => {
            expect(&[1])?;
            Box::new(TopNSigma {
                n: arg(item, &args, 0, "n")?,
            })
        }
        "xtc" => {
            expect(&[4])?;
            Box::new(Xtc::new(
                arg(item, &args, 0, "p")?,
                arg(item, &args, 1, "t")?,
                arg(item, &args, 2, "min_keep")?,
                arg(item, &args, 3, "seed")?,
            ))
        }
        "mirostat_v2" => {
            expect(&[3])?;
            Box::new(MirostatV2::new(
                arg(item, &args, 0, "seed")?,
                arg(item, &args, 1, "tau")?,
                arg(item, &args, 2, "eta")?,
            ))
        }
        other => {
            return Err(Error::invalid_argument(format!(
                "sampler spec '{item}': unknown sampler '{other}'"
            )))
        }
    };
    Ok(s)
}

/// A chain (default params: `no_perf = true`) from a comma-separated notation.
pub fn parse_chain(spec: &str, model: &ModelInfo) -> Result<Chain> {
    let mut chain = Chain::new(ChainParams::default());
    if spec.trim().is_empty() {
        return Err(Error::invalid_argument("sampler spec is empty"));
    }
    for item in spec.split(',') {
        chain.add(parse_sampler(item, model)?);
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_sampler() {
        let m = ModelInfo {
            n_vocab: 32000,
            eos: 2,
            nl: 13,
        };
        let c = parse_chain(
            "penalties:64:1.1:0.0:0.0:1:0,penalties:64:1.1:0:0,top_k:40,typical:1.0:0,\
             top_p:0.95:0,min_p:0.05:0,tail_free:1.0:0,temp_ext:0.8:0.0:1.0,temp:0.8,softmax,\
             dist:42,greedy,mirostat:1:5.0:0.1:100,mirostat_v2:2:5.0:0.1,top_n_sigma:1.5,\
             xtc:0.5:0.1:1:3",
            &m,
        )
        .unwrap();
        assert_eq!(
            c.names(),
            vec![
                "penalties",
                "penalties",
                "top-k",
                "typical",
                "top-p",
                "min-p",
                "tail-free",
                "temp-ext",
                "temp",
                "softmax",
                "dist",
                "greedy",
                "mirostat",
                "mirostat-v2",
                "top-n-sigma",
                "xtc"
            ]
        );
        assert_eq!(c.seed(), 3);
    }

    #[test]
    fn bad_specs_name_the_item() {
        let m = ModelInfo::default();
        for (spec, needle) in [
            ("", "empty"),
            ("top_k", "takes"),
            ("top_k:x", "'x'"),
            ("warp:3", "unknown sampler 'warp'"),
            ("penalties:64:1.1:0:0:2:0", "0 or 1"),
            ("dist:-1", "'-1'"),
        ] {
            let e = parse_chain(spec, &m).unwrap_err();
            assert!(e.message().contains(needle), "{spec}: {e}");
        }
    }

    #[test]
    fn floats_parse_like_c_float_literals() {
        // "0.8" must be the f32 nearest 0.8 (C's 0.8f), not a rounded f64.
        let mut c = parse_chain("temp:0.8,greedy", &ModelInfo::default()).unwrap();
        let mut cur = crate::sampling::TokenDataArray::from_logits(&[1.0]);
        c.apply(&mut cur);
        assert_eq!(cur.data[0].logit, 1.0f32 / 0.8f32);
    }
}
