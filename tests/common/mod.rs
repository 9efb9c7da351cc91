//! Helpers shared by the model/context integration tests: golden trace parsing, FNV hashes as
//! the numpy oracle prints them (`shared/tools/pyref`), model loading, contexts like the golden
//! tracer's.
#![allow(dead_code)]

use bitnet::{Context, ContextParams, Model};
use std::path::Path;
use std::sync::Arc;

/// FNV-1a 64 over the little-endian bytes of the values (oracle.py `fnv1a64`).
pub fn fnv1a64(v: &[f32]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for x in v {
        for b in x.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

/// One golden `.trace`: prompt ids, and per step the greedy id and the printed TOPK entries.
#[derive(Debug)]
pub struct Trace {
    pub prompt: Vec<i32>,
    pub tokens: Vec<i32>,
    pub topk: Vec<Vec<(i32, f32)>>,
}

fn ids(s: &str) -> Vec<i32> {
    s.split(',')
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().unwrap())
        .collect()
}

pub fn parse_trace(path: &Path) -> Trace {
    let text = std::fs::read_to_string(path).unwrap();
    let mut t = Trace {
        prompt: vec![],
        tokens: vec![],
        topk: vec![],
    };
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let kind = parts.next().unwrap_or("");
        let kv: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let get = |k: &str| kv.iter().find(|(a, _)| *a == k).map(|(_, v)| *v).unwrap();
        match kind {
            "PROMPT" => t.prompt = ids(get("ids")),
            "TOKEN" => {
                assert_eq!(get("step").parse::<usize>().unwrap(), t.tokens.len());
                t.tokens.push(get("id").parse().unwrap());
            }
            "TOPK" => t.topk.push(
                get("entries")
                    .split(',')
                    .map(|e| {
                        let (i, l) = e.split_once(':').unwrap();
                        (i.parse().unwrap(), l.parse().unwrap())
                    })
                    .collect(),
            ),
            _ => {}
        }
    }
    assert!(!t.prompt.is_empty(), "{}: no PROMPT", path.display());
    t
}

/// The golden tracer's context: n_ctx 512, n_batch = n_ubatch = 512, one thread.
pub fn tracer_params() -> ContextParams {
    ContextParams {
        n_ctx: 512,
        n_batch: 512,
        n_ubatch: 512,
        n_seq_max: 1,
        n_threads: 1,
        n_threads_batch: 1,
        ..Default::default()
    }
}

pub fn load(stem: &str) -> Option<Arc<Model>> {
    let p = bitnet_testdata::path(&format!("models/{stem}.gguf"))?;
    Some(Arc::new(Model::load(p).unwrap()))
}

pub fn context(model: &Arc<Model>) -> Context {
    Context::new(model.clone(), tracer_params()).unwrap()
}

/// Reads `golden/<stem>/short_en.logits.f32`.
pub fn golden_logits(stem: &str) -> Option<Vec<f32>> {
    let p = bitnet_testdata::path(&format!("golden/{stem}/short_en.logits.f32"))?;
    let b = std::fs::read(p).unwrap();
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}
