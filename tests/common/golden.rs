//! Support for the golden sampling traces (`golden/sampling/`, see its `chains.md`): the eight
//! reference chains a..h, and parsers for the `.trace` and `.probe` files. Test code: included
//! by `tests/sampling_golden.rs` (where this module's own tests run) and the
//! `pyref_golden` dev tool.
#![allow(dead_code)]

use bitnet::sampling::spec::{parse_chain, ModelInfo};
use bitnet::sampling::Chain;
use bitnet::{Error, Result};

/// The golden chains, in the tracer's notation (`chains.md`, table "Chains"). Every `dist` has
/// an explicit `softmax` before it, as the fork requires.
pub const GOLDEN_CHAINS: [(char, &str); 8] = [
    ('a', "softmax,dist:42"),
    ('b', "temp:0.8,softmax,dist:42"),
    ('c', "top_k:40,temp:0.8,softmax,dist:1234"),
    ('d', "top_p:0.9:1,temp:1.0,softmax,dist:7"),
    ('e', "min_p:0.1:1,temp:1.5,softmax,dist:99"),
    ('f', "typical:0.9:1,softmax,dist:5"),
    (
        'g',
        "penalties:64:1.1:0.0:0.0:1:0,top_k:40,typical:1.0:0,top_p:0.95:0,min_p:0.05:0,\
         temp_ext:0.8:0.0:1.0,softmax,dist:42",
    ),
    ('h', "penalties:64:1.3:0.2:0.1:1:0,greedy"),
];

/// The seed of a golden chain's `dist` (None for the greedy chain h).
pub fn golden_seed(letter: char) -> Option<u32> {
    match letter {
        'a' | 'b' | 'g' => Some(42),
        'c' => Some(1234),
        'd' => Some(7),
        'e' => Some(99),
        'f' => Some(5),
        _ => None,
    }
}

/// Build golden chain `letter` for a model (penalties need the vocabulary size and the eos and
/// newline ids, e.g. 32000 / 2 / 13 for the SPM models, 128256 / 128001 / 198 for the others).
pub fn golden_chain(letter: char, model: &ModelInfo) -> Result<Chain> {
    let spec = GOLDEN_CHAINS
        .iter()
        .find(|(l, _)| *l == letter)
        .map(|(_, s)| *s)
        .ok_or_else(|| Error::invalid_argument(format!("no golden chain '{letter}' (a..h)")))?;
    parse_chain(spec, model)
}

/// A parsed `.trace` file: the prompt ids and the sampled token of every step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub prompt: Vec<i32>,
    pub tokens: Vec<i32>,
}

fn field<'a>(line: &'a str, key: &str, lineno: usize) -> Result<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .ok_or_else(|| Error::format(format!("line {lineno}: no '{key}=' in '{line}'")))
}

fn number<T: std::str::FromStr>(s: &str, what: &str, lineno: usize) -> Result<T> {
    s.parse::<T>()
        .map_err(|_| Error::format(format!("line {lineno}: {what} '{s}' is not a number")))
}

/// Parse a golden `.trace`: `PROMPT ids=a,b,...` then `TOKEN step=n id=t` with n = 0, 1, ...
pub fn parse_trace(text: &str) -> Result<Trace> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, first) = lines
        .next()
        .ok_or_else(|| Error::format("trace is empty"))?;
    if !first.starts_with("PROMPT ") {
        return Err(Error::format(format!(
            "line 1: expected 'PROMPT ids=...', got '{first}'"
        )));
    }
    let prompt = field(first, "ids", 1)?
        .split(',')
        .map(|s| number::<i32>(s, "prompt id", 1))
        .collect::<Result<Vec<_>>>()?;
    let mut tokens = Vec::new();
    for (i, line) in lines {
        let lineno = i + 1;
        if !line.starts_with("TOKEN ") {
            return Err(Error::format(format!(
                "line {lineno}: expected 'TOKEN step=.. id=..', got '{line}'"
            )));
        }
        let step: usize = number(field(line, "step", lineno)?, "step", lineno)?;
        if step != tokens.len() {
            return Err(Error::format(format!(
                "line {lineno}: step {step} out of order (expected {})",
                tokens.len()
            )));
        }
        tokens.push(number(field(line, "id", lineno)?, "id", lineno)?);
    }
    Ok(Trace { prompt, tokens })
}

/// One line of a `.probe` file: what the reference's `dist` saw and drew at a step.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeStep {
    pub step: usize,
    /// Candidates left when dist ran.
    pub n_cand: usize,
    /// Index chosen in the candidate array.
    pub idx: usize,
    /// Token id chosen.
    pub id: i32,
    /// The uniform double drawn (17 significant digits: exact).
    pub u: f64,
    /// Distance of `u` to the nearest edge of the chosen cumulative slot.
    pub margin: f64,
}

/// Parse a golden `.probe` file: one `PROBE step=.. n_cand=.. idx=.. id=.. u=.. margin=..` line
/// per step; `PROBE tie detail ...` lines are skipped.
pub fn parse_probe(text: &str) -> Result<Vec<ProbeStep>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        // Diagnostic lines ("PROBE tie detail step=36: [idx]id:logit ...") carry no draw.
        if line.trim().is_empty() || line.starts_with("PROBE tie detail") {
            continue;
        }
        if !line.starts_with("PROBE step=") {
            return Err(Error::format(format!(
                "line {lineno}: expected 'PROBE ...', got '{line}'"
            )));
        }
        out.push(ProbeStep {
            step: number(field(line, "step", lineno)?, "step", lineno)?,
            n_cand: number(field(line, "n_cand", lineno)?, "n_cand", lineno)?,
            idx: number(field(line, "idx", lineno)?, "idx", lineno)?,
            id: number(field(line, "id", lineno)?, "id", lineno)?,
            u: number(field(line, "u", lineno)?, "u", lineno)?,
            margin: number(field(line, "margin", lineno)?, "margin", lineno)?,
        });
    }
    Ok(out)
}

/// Model facts the golden chains need, by model file stem (`chains.md`: n_vocab, eos, nl).
pub fn golden_model_info(model: &str) -> Option<ModelInfo> {
    if model.starts_with("tiny-spm") {
        Some(ModelInfo {
            n_vocab: 32000,
            eos: 2,
            nl: 13,
        })
    } else if model.starts_with("tiny-b158") {
        Some(ModelInfo {
            n_vocab: 128256,
            eos: 128001,
            nl: 198,
        })
    } else {
        None
    }
}

/// The (model, prompt) pairs with golden sampling traces.
pub const GOLDEN_RUNS: [(&str, &str); 4] = [
    ("tiny-spm-f32", "short_en"),
    ("tiny-spm-f32", "code"),
    ("tiny-b158-i2_s-q6k", "short_en"),
    ("tiny-b158-i2_s-q6k", "code"),
];

/// Replay a golden run given a source of logits: `logits_for(step, &prev_tokens)` returns the
/// logits row the reference sampled from at that step (step 0: last prompt position; step n:
/// after decoding token n-1). Returns the sampled tokens. Prompt tokens are never accepted.
pub fn replay(
    chain: &mut Chain,
    steps: usize,
    mut logits_for: impl FnMut(usize, &[i32]) -> Result<Vec<f32>>,
) -> Result<Vec<i32>> {
    let mut out = Vec::with_capacity(steps);
    for step in 0..steps {
        let logits = logits_for(step, &out)?;
        let tok = chain
            .sample(&logits)
            .map_err(|e| e.context(format!("step {step}")))?;
        out.push(tok);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitnet::sampling::Mt19937;
    use bitnet::sampling::Sampler;
    use bitnet_testdata as testdata;

    #[test]
    fn every_golden_chain_builds() {
        let m = golden_model_info("tiny-spm-f32").unwrap();
        let expect: [&[&str]; 8] = [
            &["softmax", "dist"],
            &["temp", "softmax", "dist"],
            &["top-k", "temp", "softmax", "dist"],
            &["top-p", "temp", "softmax", "dist"],
            &["min-p", "temp", "softmax", "dist"],
            &["typical", "softmax", "dist"],
            &[
                "penalties",
                "top-k",
                "typical",
                "top-p",
                "min-p",
                "temp-ext",
                "softmax",
                "dist",
            ],
            &["penalties", "greedy"],
        ];
        for ((letter, _), names) in GOLDEN_CHAINS.iter().zip(expect) {
            let c = golden_chain(*letter, &m).unwrap();
            assert_eq!(c.names(), names.to_vec(), "chain {letter}");
            let seed = golden_seed(*letter).unwrap_or(bitnet::sampling::DEFAULT_SEED);
            assert_eq!(c.seed(), seed, "chain {letter}");
        }
        assert!(golden_chain('z', &m).is_err());
    }

    #[test]
    fn trace_parser_accepts_good_and_rejects_bad() {
        let t = parse_trace("PROMPT ids=1,2,3\nTOKEN step=0 id=7\nTOKEN step=1 id=9\n").unwrap();
        assert_eq!(t.prompt, vec![1, 2, 3]);
        assert_eq!(t.tokens, vec![7, 9]);
        for bad in [
            "",
            "TOKEN step=0 id=1",
            "PROMPT ids=1,x",
            "PROMPT ids=1\nTOKEN step=1 id=2",
            "PROMPT ids=1\nTOKEN step=0",
            "PROMPT ids=1\nHELLO",
        ] {
            assert!(parse_trace(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn probe_parser_reads_exact_doubles() {
        let p = parse_probe(
            "PROBE step=0 n_cand=32000 idx=16367 id=21815 u=0.79654298428784598 \
             margin=4.84e-07 slot=2.22e-05 chosen_tied=0 tied_adjacent_pairs=6\n",
        )
        .unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].idx, 16367);
        assert_eq!(p[0].id, 21815);
        assert_eq!(p[0].u, 0.796_542_984_287_846);
        assert!(parse_probe("PROBE step=0").is_err());
        assert!(parse_probe("PROBE tie detail step=36: [1]2:0.5")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn replay_feeds_previous_tokens_and_never_accepts_the_prompt() {
        let m = golden_model_info("tiny-spm-f32").unwrap();
        let mut chain = golden_chain('h', &m).unwrap();
        // Flat logits except a lead for token 5: the penalties must push the repeats down.
        let toks = replay(&mut chain, 6, |step, prev| {
            assert_eq!(prev.len(), step);
            let mut l = vec![0.0f32; 8];
            l[5] = 1.0;
            Ok(l)
        })
        .unwrap();
        // Step 0: 5 wins (1.0). Step 1: 5 is penalised to 1/1.3 - 0.3 = 0.469 > 0 -> still 5.
        // Step 2: count 2: 1/1.3 - 0.5 = 0.269 -> 5. Step 3: count 3: 0.069 -> 5.
        // Step 4: count 4: 1/1.3 - 0.9 < 0 -> token 0 (first of the zeros).
        // Step 5: token 0 seen once: 0 * 1.3 - 0.3 = -0.3; 5 still -0.131 -> token 1.
        assert_eq!(toks, vec![5, 5, 5, 5, 0, 1]);
    }

    /// Every `u` the reference's dist drew, in every probe file, equals the sequence of
    /// canonical doubles our mt19937 gives for that chain's seed: 2 outputs per step, no skips.
    #[test]
    fn probe_u_values_match_our_mt19937() {
        let Some(dir) = testdata::path("golden/sampling/probe") else {
            return;
        };
        let mut files = 0;
        let mut steps = 0;
        for (model, prompt) in GOLDEN_RUNS {
            for (letter, _) in GOLDEN_CHAINS.iter().filter(|(l, _)| *l != 'h') {
                let path = dir.join(format!("{model}.{prompt}.{letter}.probe"));
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let probe = parse_probe(&text).unwrap();
                assert_eq!(probe.len(), 48, "{}", path.display());
                let mut rng = Mt19937::new(golden_seed(*letter).unwrap());
                for p in &probe {
                    assert!(p.n_cand >= 2, "a draw happens only with >= 2 candidates");
                    assert_eq!(
                        rng.next_canonical_f64(),
                        p.u,
                        "{} step {}",
                        path.display(),
                        p.step
                    );
                    steps += 1;
                }
                files += 1;
            }
        }
        assert_eq!(files, 28);
        assert_eq!(steps, 28 * 48);
    }

    /// The probe's chosen id is the trace's token at every step (the files agree with each
    /// other, and the trace parser reads all 32 traces).
    #[test]
    fn traces_parse_and_agree_with_probes() {
        let Some(dir) = testdata::path("golden/sampling") else {
            return;
        };
        for (model, prompt) in GOLDEN_RUNS {
            let greedy_trace = testdata::path(&format!("golden/{model}/{prompt}.trace"));
            for (letter, _) in GOLDEN_CHAINS {
                let path = dir.join(format!("{model}.{prompt}.{letter}.trace"));
                let trace = parse_trace(&std::fs::read_to_string(&path).unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert_eq!(trace.tokens.len(), 48, "{}", path.display());
                if let Some(g) = &greedy_trace {
                    // Same prompt as the greedy trace of that model and prompt.
                    let greedy = std::fs::read_to_string(g).unwrap();
                    let ours = std::fs::read_to_string(&path).unwrap();
                    assert_eq!(
                        greedy.lines().next(),
                        ours.lines().next(),
                        "{}",
                        path.display()
                    );
                }
                if letter == 'h' {
                    continue;
                }
                let probe_path = dir.join(format!("probe/{model}.{prompt}.{letter}.probe"));
                let probe = parse_probe(&std::fs::read_to_string(&probe_path).unwrap()).unwrap();
                let ids: Vec<i32> = probe.iter().map(|p| p.id).collect();
                assert_eq!(ids, trace.tokens, "{}", path.display());
            }
        }
    }
}
