//! Not a check: a one-shot speed probe of prompt processing and decoding through `Context`
//! (the whole forward pass, not only the kernels), for a model given by path:
//!
//! ```text
//! BITNET_SPEED_MODEL=/path/2b4t-i2_s.gguf BITNET_SPEED_THREADS=1 \
//!   cargo test --release --test decode_speed -- --ignored --nocapture
//! ```

use bitnet::{Batch, Context, ContextParams, Model};
use std::sync::Arc;
use std::time::Instant;

#[test]
#[ignore = "speed probe; set BITNET_SPEED_MODEL"]
fn prompt_and_decode_speed() {
    let Ok(path) = std::env::var("BITNET_SPEED_MODEL") else {
        eprintln!("set BITNET_SPEED_MODEL");
        return;
    };
    let threads: i32 = std::env::var("BITNET_SPEED_THREADS").map_or(1, |v| v.parse().unwrap());
    let n_prompt: usize = std::env::var("BITNET_SPEED_PROMPT").map_or(128, |v| v.parse().unwrap());
    let n_gen = 32;
    let t = Instant::now();
    let model = Arc::new(Model::load(&path).unwrap());
    println!("load {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    let params = ContextParams {
        n_ctx: 1024,
        n_batch: 512,
        n_ubatch: 512,
        n_threads: threads,
        n_threads_batch: threads,
        ..Default::default()
    };
    let mut ctx = Context::new(model.clone(), params).unwrap();
    let n_vocab = model.config().n_vocab as i32;
    let prompt: Vec<i32> = (0..n_prompt as i32)
        .map(|i| (i * 7919 + 13) % n_vocab)
        .collect();
    let t = Instant::now();
    ctx.decode(&Batch::get_one(&prompt)).unwrap();
    let pp = t.elapsed().as_secs_f64();
    let mut tok = bitnet::sampling::argmax(ctx.logits_ith(-1).unwrap()) as i32;
    let t = Instant::now();
    for _ in 0..n_gen {
        ctx.decode(&Batch::get_one(&[tok])).unwrap();
        tok = bitnet::sampling::argmax(ctx.logits_ith(-1).unwrap()) as i32;
    }
    let tg = t.elapsed().as_secs_f64();
    println!(
        "threads {threads}: pp{n_prompt} {:.2} t/s ({:.0} ms), tg{n_gen} {:.2} t/s ({:.1} ms/token)",
        n_prompt as f64 / pp,
        pp * 1e3,
        n_gen as f64 / tg,
        tg * 1e3 / n_gen as f64
    );
}
