//! `bitnet generate`: text generation, like llama.cpp's `llama-cli -no-cnv`.

use super::args::Args;
use bitnet::sampling::spec::{parse_chain, ModelInfo};
use bitnet::{Batch, Context, ContextParams};
use bitnet::{Error, Result};
use bitnet::{Model, ModelParams};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub const HELP: &str = "usage: bitnet generate [-m MODEL] [-p PROMPT | -f PROMPT_FILE] [-n N] [-t THREADS] [-c N_CTX]
                       [--temp T] [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [--seed S]
                       [--samplers SPEC] [--ignore-eos] [--head-q8]
                       [--grammar GBNF_FILE | --json-schema SCHEMA_FILE]

Prints the generated text as it comes, then prompt and generation speed (tokens/s) on stderr.
Greedy by default (--temp 0); with --temp > 0 it samples with llama.cpp's chain (top-k 40,
top-p 0.95, min-p 0.05, temperature, softmax, then dist). --samplers gives the chain in full,
e.g. \"penalties:64:1.1:0:0,top_k:40,top_p:0.95:1,temp:0.8,softmax,dist:42\". Without -m it makes (once, cached next to the
binary) a small model with random weights: its text is random, the run shows the machinery.
--head-q8 re-quantizes an F16 lm_head to Q8_0 at load (faster decode, logits no longer
bit-exact with the reference).
--grammar constrains the output to a GBNF grammar (root rule `root`, llama.cpp's syntax);
--json-schema to JSON matching a JSON schema (converted to a grammar; docs/grammar.md). The
grammar goes first in the chain; generation ends when the grammar is complete and the model
picks end of generation.";

pub fn run(mut args: Args) -> Result<()> {
    let model_path = args.value(&["-m", "--model"])?;
    let prompt = match (
        args.value(&["-p", "--prompt"])?,
        args.value(&["-f", "--file"])?,
    ) {
        (Some(p), None) => p.into_bytes(),
        (None, Some(f)) => std::fs::read(&f).map_err(|e| Error::io(&f, e))?,
        (None, None) => b"Once upon a time".to_vec(),
        (Some(_), Some(_)) => return Err(Error::invalid_argument("give -p or -f, not both")),
    };
    let n_predict: usize = args.parse(&["-n", "--n-predict"], 64)?;
    let threads: i32 = args.parse(&["-t", "--threads"], 0)?;
    let n_ctx: u32 = args.parse(&["-c", "--ctx-size"], 0)?;
    let temp: f32 = args.parse(&["--temp"], 0.0)?;
    let top_k: i32 = args.parse(&["--top-k"], 40)?;
    let top_p: f32 = args.parse(&["--top-p"], 0.95)?;
    let min_p: f32 = args.parse(&["--min-p"], 0.05)?;
    let repeat: f32 = args.parse(&["--repeat-penalty"], 1.0)?;
    let seed: u32 = args.parse(&["--seed"], bitnet::sampling::DEFAULT_SEED)?;
    let spec = args.value(&["--samplers"])?;
    let ignore_eos = args.switch(&["--ignore-eos"]);
    let grammar_file = args.value(&["--grammar"])?;
    let schema_file = args.value(&["--json-schema"])?;
    let grammar_text = match (grammar_file, schema_file) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid_argument(
                "give --grammar or --json-schema, not both",
            ))
        }
        (Some(f), None) => {
            let t = std::fs::read_to_string(&f).map_err(|e| Error::io(&f, e))?;
            Some(t)
        }
        (None, Some(f)) => {
            let t = std::fs::read_to_string(&f).map_err(|e| Error::io(&f, e))?;
            Some(bitnet::sampling::json_schema::to_gbnf(&t).map_err(|e| e.context(&f))?)
        }
        (None, None) => None,
    };
    let mparams = ModelParams {
        head_q8_0: args.switch(&["--head-q8"]),
    };
    super::no_positionals(&mut args)?;

    let model_path = match model_path {
        Some(p) => PathBuf::from(p),
        None => {
            let p = demo_model()?;
            eprintln!(
                "bitnet: no -m given: using {} (random weights, so the text is random)",
                p.display()
            );
            p
        }
    };
    let t_load = Instant::now();
    let model = Arc::new(Model::load_with(&model_path, mparams)?);
    let load_ms = t_load.elapsed().as_secs_f64() * 1e3;
    let tokens = model.vocab().tokenize(&prompt, true, false)?;
    let n_ctx = if n_ctx == 0 {
        (tokens.len() + n_predict).max(512) as u32
    } else {
        n_ctx
    };
    let params = ContextParams {
        n_ctx,
        n_batch: tokens.len().max(512) as u32,
        n_threads: threads,
        n_threads_batch: threads,
        ..Default::default()
    };
    let mut ctx = Context::new(model.clone(), params)?;
    let spec = spec.unwrap_or_else(|| {
        // llama-cli's chain (common_sampler_init); greedy when the temperature is 0.
        let penalties = if repeat != 1.0 { format!("penalties:64:{repeat}:0:0,") } else { String::new() };
        if temp <= 0.0 {
            format!("{penalties}greedy")
        } else {
            format!("{penalties}top_k:{top_k},top_p:{top_p}:1,min_p:{min_p}:1,temp:{temp},softmax,dist:{seed}")
        }
    });
    let vocab = model.vocab();
    let info = ModelInfo {
        n_vocab: vocab.n_tokens() as i32,
        eos: vocab.eos().unwrap_or(-1),
        nl: vocab.nl().unwrap_or(-1),
    };
    let mut chain = parse_chain(&spec, &info)?;
    if let Some(text) = &grammar_text {
        let grammar = bitnet::sampling::GrammarSampler::new(vocab, text, "root")?;
        let mut with_grammar = bitnet::sampling::Chain::new(chain.params());
        with_grammar.add(Box::new(grammar));
        while let Some(s) = chain.remove(0) {
            with_grammar.add(s);
        }
        chain = with_grammar;
    }

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = out.write_all(&prompt);
    let t0 = Instant::now();
    ctx.decode(&Batch::get_one(&tokens))?;
    let prompt_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut n_gen = 0;
    for _ in 0..n_predict {
        let tok = chain.sample(ctx.logits_ith(-1)?)?;
        if !ignore_eos && model.vocab().is_eog(tok) {
            break;
        }
        let piece = model.vocab().token_to_piece(tok, 0, false)?;
        let _ = out.write_all(&piece);
        let _ = out.flush();
        n_gen += 1;
        if n_gen == n_predict {
            break;
        }
        ctx.decode(&Batch::get_one(&[tok]))?;
    }
    let gen_s = t1.elapsed().as_secs_f64();
    let _ = writeln!(out);
    eprintln!(
        "\nload: {load_ms:.0} ms | prompt: {} tokens, {:.1} tok/s | generation: {n_gen} tokens, {:.1} tok/s | kernels: {}",
        tokens.len(),
        tokens.len() as f64 / prompt_s,
        n_gen as f64 / gen_s.max(1e-9),
        ctx.kernels().name()
    );
    Ok(())
}

/// A tiny random-weight model, made once and kept next to the binary.
fn demo_model() -> Result<PathBuf> {
    super::make_model::cached_model("demo-tiny-i2_s.gguf", |vocab| crate::modelgen::Params {
        shape: crate::modelgen::Shape::TINY,
        weights: bitnet::tensor::GgmlType::I2_S,
        embedding: bitnet::tensor::GgmlType::F16,
        seed: 2025,
        vocab,
    })
}
