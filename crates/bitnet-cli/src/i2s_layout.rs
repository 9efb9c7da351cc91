//! `bitnet i2s-layout MODEL`: scores a fixed text under both I2_S layouts (x86 = 128-element
//! blocks, ARM = 64, docs/i2s-layouts.md) and says which one the weights are in, only when the
//! margin is decisive; `--write OUT` rewrites the file into a named layout with the
//! `bitnet.i2_s.block_size` key, so later loads need no choice.

use super::args::Args;
use bitnet::gguf::{GgufFile, GgufWriter, Value};
use bitnet::tensor::i2s_layout::{convert_codes, I2sLayout, BLOCK_SIZE_KEY};
use bitnet::tensor::GgmlType;
use bitnet::{Batch, Context, ContextParams, Error, Model, ModelParams, Result};
use std::io::Write;
use std::sync::Arc;

pub const HELP: &str = "usage: bitnet i2s-layout MODEL.gguf [--text TEXT] [--threads N]
       bitnet i2s-layout MODEL.gguf --from x86|arm [--to x86|arm] [--no-key] --write OUT.gguf

bitnet.cpp writes I2_S weights in two layouts that no metadata tells apart: 128-element
blocks (x86 builds, the Python converter, published GGUFs) and 64-element blocks
(llama-quantize built for ARM, e.g. setup_env.py on an ARM machine). Without --write, the
model scores TEXT (default: a fixed English paragraph) under both layouts and prints each
mean negative log-likelihood per token. It names a layout only when one is better by more
than 2 nats/token and below ln(n_vocab) - 2; otherwise it says it cannot tell (always the
case for random-weight test models). A file that names its layout (bitnet.i2_s.block_size)
is reported as it says.

With --write, rewrites MODEL (whose layout --from names) into the --to layout (default x86)
and stores bitnet.i2_s.block_size (unless --no-key), so the loader reads it without being
told. BITNET_I2S_LAYOUT=x86|arm names the layout of unmarked files for every other command.";

const TEXT: &str = "The history of the city begins with a small market town on the bank of \
the river. Over the next two centuries it grew into a busy port, and by the end of the \
nineteenth century more than a million people lived there. Today it is known for its \
museums, its parks and the old bridge that connects the two halves of the town.";

/// Margin (nats per token) between the two layouts' scores below which nothing is decided.
const MARGIN: f64 = 2.0;

pub fn run(mut args: Args) -> Result<()> {
    let text = args.value(&["--text"])?.unwrap_or_else(|| TEXT.to_string());
    let threads: i32 = args.parse(&["-t", "--threads"], 4)?;
    let from = args.value(&["--from"])?;
    let to = args.value(&["--to"])?;
    let out = args.value(&["--write"])?;
    let no_key = args.switch(&["--no-key"]);
    let pos = args.positionals()?;
    let [path] = pos.as_slice() else {
        return Err(Error::invalid_argument(format!(
            "i2s-layout takes one MODEL path\n\n{HELP}"
        )));
    };
    if let Some(out) = out {
        let from = from.ok_or_else(|| {
            Error::invalid_argument("--write needs --from x86|arm (the layout MODEL is in)")
        })?;
        let to = to.as_deref().unwrap_or("x86");
        return write(
            path,
            I2sLayout::parse(&from)?,
            I2sLayout::parse(to)?,
            !no_key,
            &out,
        );
    }
    if from.is_some() || to.is_some() || no_key {
        return Err(Error::invalid_argument(
            "--from, --to and --no-key go with --write",
        ));
    }
    let file = GgufFile::open(path)?;
    if let Some(v) = file.get(BLOCK_SIZE_KEY) {
        println!("{path}: {BLOCK_SIZE_KEY} = {}", v.display_short());
    }
    let mut scores = Vec::new();
    let mut uniform = f64::NAN;
    for layout in [I2sLayout::X86, I2sLayout::Arm] {
        match Model::load_with_i2s_layout(path, ModelParams::default(), Some(layout)) {
            Ok(m) => {
                uniform = (m.config().n_vocab as f64).ln();
                let (nll, n) = score(m, &text, threads)?;
                println!(
                    "{:<24} mean NLL {nll:.3} nats/token over {n} tokens",
                    layout.name()
                );
                scores.push((layout, nll));
            }
            Err(e) => println!("{:<24} refused: {}", layout.name(), e.message()),
        }
    }
    println!("uniform guess            {uniform:.3} nats/token (ln n_vocab)");
    match scores.as_slice() {
        [(a, sa), (b, sb)] => {
            let (best, sbest, other) = if sa < sb {
                (a, *sa, *sb)
            } else {
                (b, *sb, *sa)
            };
            if other - sbest > MARGIN && sbest < uniform - MARGIN {
                println!("verdict: {}", best.name());
            } else {
                println!(
                    "verdict: cannot tell (margin {:.3} nats/token; untrained or random \
                     weights score alike under both): name the layout with BITNET_I2S_LAYOUT",
                    (other - sbest).abs()
                );
            }
        }
        [(only, _)] => println!("verdict: {} (the file says so)", only.name()),
        _ => println!("verdict: none (both refused)"),
    }
    Ok(())
}

/// Mean negative log-likelihood per token of `text` (each token predicted from the ones
/// before it), and the number of predicted tokens.
fn score(model: Model, text: &str, threads: i32) -> Result<(f64, usize)> {
    let model = Arc::new(model);
    let toks = model.vocab().tokenize(text.as_bytes(), true, false)?;
    if toks.len() < 2 {
        return Err(Error::invalid_argument("--text is too short to score"));
    }
    let params = ContextParams {
        n_ctx: (toks.len() as u32).next_multiple_of(256),
        n_batch: toks.len() as u32,
        n_ubatch: toks.len() as u32,
        n_threads: threads,
        n_threads_batch: threads,
        ..Default::default()
    };
    let mut ctx = Context::new(model, params)?;
    let mut batch = Batch::new(toks.len());
    for (i, &t) in toks.iter().enumerate() {
        batch.push(t, i as i32, &[0], true);
    }
    ctx.decode(&batch)?;
    let mut nll = 0f64;
    for i in 0..toks.len() - 1 {
        let row = ctx.logits_ith(i as i32)?;
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
        let lse = max
            + row
                .iter()
                .map(|&x| (x as f64 - max).exp())
                .sum::<f64>()
                .ln();
        nll += lse - row[toks[i + 1] as usize] as f64;
    }
    Ok((nll / (toks.len() - 1) as f64, toks.len() - 1))
}

/// Copies `path` to `out` with every I2_S tensor rewritten from `from` into `to`, and the
/// layout key set to `to` (or removed when `key` is false).
fn write(path: &str, from: I2sLayout, to: I2sLayout, key: bool, out: &str) -> Result<()> {
    let file = Arc::new(GgufFile::open(path)?);
    if let Some(said) = file.get(BLOCK_SIZE_KEY) {
        if said.as_i128() != Some(from.block_size() as i128) {
            return Err(Error::invalid_argument(format!(
                "{path}: {BLOCK_SIZE_KEY} = {} but --from says {}",
                said.display_short(),
                from.name()
            )));
        }
    }
    let mut w = GgufWriter::new();
    for (k, v) in file.metadata() {
        if k != BLOCK_SIZE_KEY {
            w.set(k.clone(), v.clone());
        }
    }
    if key {
        w.set(BLOCK_SIZE_KEY, Value::U32(to.block_size()));
    }
    let mut n_i2s = 0;
    for (i, t) in file.tensors().iter().enumerate() {
        let f = Arc::clone(&file);
        let ty = t.ty;
        n_i2s += usize::from(ty == GgmlType::I2_S);
        w.add_tensor_lazy(&t.name, &t.dims, ty, move || {
            let t = &f.tensors()[i];
            let mut data = f.view(t).data.to_vec();
            if ty == GgmlType::I2_S {
                let n = t.n_elements();
                let codes = data.get_mut(..n / 4).ok_or_else(|| {
                    Error::format(format!("tensor {}: shorter than its codes", t.name))
                })?;
                convert_codes(codes, n, from, to).map_err(|e| e.context(&t.name))?;
            }
            Ok(data)
        })?;
    }
    let fout = std::fs::File::create(out).map_err(|e| Error::io(out, e))?;
    let mut bw = std::io::BufWriter::new(fout);
    let bytes = w.write(&mut bw)?;
    bw.flush().map_err(|e| Error::io(out, e))?;
    println!(
        "{out}: {bytes} bytes, {n_i2s} I2_S tensors rewritten from the {} into the {} layout{}",
        from.name(),
        to.name(),
        if key { "" } else { " (no layout key)" }
    );
    Ok(())
}
