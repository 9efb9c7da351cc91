//! `bitnet trace`: greedy decoding printed in the golden-trace format (`spec/TRACE.md`), so a
//! run diffs line by line against the reference's traces.

use super::args::Args;
use bitnet::sampling::top_k;
use bitnet::{Batch, Context, ContextParams};
use bitnet::{Error, Result};
use bitnet::{Model, ModelParams};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

pub const HELP: &str =
    "usage: bitnet trace -m MODEL -f PROMPT_FILE [-n STEPS] [-k TOPK] [-t THREADS] [-c N_CTX] [--head-q8]

Tokenizes the file's bytes (add_special = true, parse_special = false), evaluates the prompt as
one batch, then feeds back the greedy token one at a time, printing for each step
  TOKEN step=N id=ID / TOPK step=N entries=id:logit,... (%.6f) / TIME step=N ms=...
after a first line PROMPT ids=.... Never stops at end-of-generation. Defaults: 32 steps,
top-8, 1 thread, n_ctx 512 (the golden traces' settings).";

pub fn run(mut args: Args) -> Result<()> {
    let model_path = args
        .value(&["-m", "--model"])?
        .ok_or_else(|| Error::invalid_argument("-m MODEL is required"))?;
    let prompt_path = args
        .value(&["-f", "--file"])?
        .ok_or_else(|| Error::invalid_argument("-f PROMPT_FILE is required"))?;
    let steps: usize = args.parse(&["-n", "--steps"], 32)?;
    let k: usize = args.parse(&["-k", "--top-k"], 8)?;
    let threads: i32 = args.parse(&["-t", "--threads"], 1)?;
    let n_ctx: u32 = args.parse(&["-c", "--ctx-size"], 512)?;
    let mparams = ModelParams {
        head_q8_0: args.switch(&["--head-q8"]),
    };
    super::no_positionals(&mut args)?;

    let text = std::fs::read(&prompt_path).map_err(|e| Error::io(&prompt_path, e))?;
    let model = Arc::new(Model::load_with(&model_path, mparams)?);
    let prompt = model.vocab().tokenize(&text, true, false)?;
    let params = ContextParams {
        n_ctx,
        n_batch: 512,
        n_ubatch: 512,
        n_threads: threads,
        n_threads_batch: threads,
        ..Default::default()
    };
    let mut ctx = Context::new(model, params)?;

    let out = std::io::stdout();
    let mut out = out.lock();
    let ids: Vec<String> = prompt.iter().map(|t| t.to_string()).collect();
    writeln!(out, "PROMPT ids={}", ids.join(",")).map_err(stdout_err)?;
    let mut batch = Batch::get_one(&prompt);
    for step in 0..steps {
        let t0 = Instant::now();
        ctx.decode(&batch)?;
        let top = top_k(ctx.logits_ith(-1)?, k.max(1));
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let entries: Vec<String> = top
            .iter()
            .take(k)
            .map(|(id, l)| format!("{id}:{l:.6}"))
            .collect();
        writeln!(out, "TOKEN step={step} id={}", top[0].0).map_err(stdout_err)?;
        writeln!(out, "TOPK step={step} entries={}", entries.join(",")).map_err(stdout_err)?;
        writeln!(out, "TIME step={step} ms={ms:.3}").map_err(stdout_err)?;
        batch = Batch::get_one(&[top[0].0]);
    }
    Ok(())
}

fn stdout_err(e: std::io::Error) -> Error {
    Error::io("stdout", e)
}
