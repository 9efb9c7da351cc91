//! `/v1/embeddings`: a second context of its own, on its own thread, apart from the generation
//! slots. It is created with embeddings on, the server's pooling (`--pooling`, default: the
//! model's `<arch>.pooling_type`, else MEAN) and `embeddings_only` (no lm_head), with
//! `n_ctx = n_batch = n_ubatch = --batch-size`, so that one input is always one decode of one
//! ubatch (llama.cpp pools per ubatch). Each input is evaluated alone on a cleared cache, so its
//! vector does not depend on what else the request or the server is doing, and equals what the
//! library gives for the same tokens in such a context. The pooled vector is then normalized to
//! unit Euclidean length as llama-server does (`common_embd_normalize(.., 2)`).

use bitnet::{Batch, Context, ContextParams, Model, PoolingType};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// Embeddings configuration (from the command line).
#[derive(Debug, Clone)]
pub struct EmbedParams {
    pub pooling: PoolingType,
    /// Most tokens in one input (the context's size).
    pub n_tokens: u32,
    pub n_threads: i32,
}

struct Job {
    inputs: Vec<Vec<i32>>,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>, String>>,
}

/// The handle the HTTP side holds.
pub struct Embedder {
    tx: mpsc::Sender<Job>,
    queued: Arc<AtomicUsize>,
    /// Most tokens per input, as resolved by the context.
    pub n_tokens: usize,
    pub n_embd: usize,
    pub pooling: PoolingType,
}

/// Why a request was not run.
#[derive(Debug)]
pub enum EmbedError {
    /// `max_queue` requests already wait.
    Busy,
    /// The embeddings thread stopped.
    Stopped,
    /// The library refused (should not happen for checked inputs).
    Failed(String),
}

/// The pooling `--pooling` leaves to the model: its `<arch>.pooling_type` when that is a pooled
/// one, else MEAN (llama-server refuses NONE on `/v1/embeddings`; BitNet files carry no key).
pub fn default_pooling(model: &Model) -> PoolingType {
    let key = format!("{}.pooling_type", model.config().arch.name());
    match model.gguf().get(&key) {
        Some(bitnet::gguf::Value::U32(1)) => PoolingType::Mean,
        Some(bitnet::gguf::Value::U32(2)) => PoolingType::Cls,
        Some(bitnet::gguf::Value::U32(3)) => PoolingType::Last,
        _ => PoolingType::Mean,
    }
}

/// The context the server (and a client wanting the same vectors) uses for embeddings.
pub fn context_params(p: &EmbedParams) -> ContextParams {
    ContextParams {
        n_ctx: p.n_tokens,
        n_batch: p.n_tokens,
        n_ubatch: p.n_tokens,
        n_seq_max: 1,
        n_threads: p.n_threads,
        n_threads_batch: p.n_threads,
        embeddings: true,
        pooling_type: p.pooling,
        embeddings_only: true,
        ..Default::default()
    }
}

/// llama.cpp's `common_embd_normalize(inp, out, n, 2)`: the squares (float products) summed in
/// a double, its square root, `norm = (float)(1.0 / sum)` (0 for a zero vector), `x * norm`.
pub fn normalize(v: &mut [f32]) {
    let sum: f64 = v.iter().map(|&x| (x * x) as f64).sum::<f64>().sqrt();
    let norm = if sum > 0.0 { (1.0 / sum) as f32 } else { 0.0 };
    for x in v {
        *x *= norm;
    }
}

/// The pooled, normalized embedding of `tokens` in `ctx` (made with [`context_params`]).
pub fn embed_one(ctx: &mut Context, tokens: &[i32]) -> bitnet::Result<Vec<f32>> {
    ctx.kv_mut().clear();
    ctx.decode(&Batch::get_one(tokens))?;
    let mut v = ctx
        .embeddings_seq(0)
        .ok_or_else(|| bitnet::Error::internal("the decode pooled no embedding"))?
        .to_vec();
    normalize(&mut v);
    Ok(v)
}

impl Embedder {
    /// Creates the context and starts its thread.
    pub fn start(model: Arc<Model>, p: &EmbedParams) -> bitnet::Result<Embedder> {
        let mut ctx = Context::new(model.clone(), context_params(p))?;
        let n_tokens = ctx.n_ctx();
        let (tx, rx) = mpsc::channel::<Job>();
        let queued = Arc::new(AtomicUsize::new(0));
        let q = queued.clone();
        std::thread::Builder::new()
            .name("bitnet-embed".into())
            .spawn(move || {
                // Ends when every sender is gone (the server is shutting down).
                while let Ok(job) = rx.recv() {
                    q.fetch_sub(1, Ordering::SeqCst);
                    if job.reply.is_closed() {
                        continue; // the client went away
                    }
                    let mut out = Vec::with_capacity(job.inputs.len());
                    let mut err = None;
                    for input in &job.inputs {
                        if job.reply.is_closed() {
                            break;
                        }
                        match embed_one(&mut ctx, input) {
                            Ok(v) => out.push(v),
                            Err(e) => {
                                err = Some(e.to_string());
                                break;
                            }
                        }
                    }
                    let _ = job.reply.send(match err {
                        None => Ok(out),
                        Some(e) => Err(e),
                    });
                }
            })
            .map_err(|e| bitnet::Error::internal(format!("cannot start a thread: {e}")))?;
        Ok(Embedder {
            tx,
            queued,
            n_tokens,
            n_embd: model.config().n_embd,
            pooling: p.pooling,
        })
    }

    /// Embeds each input (checked token ids, each 1..=n_tokens long) in order, unless
    /// `max_queue` requests already wait.
    pub async fn embed(
        &self,
        inputs: Vec<Vec<i32>>,
        max_queue: usize,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max_queue).then_some(n + 1)
            })
            .map_err(|_| EmbedError::Busy)?;
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Job { inputs, reply }).is_err() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(EmbedError::Stopped);
        }
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(EmbedError::Failed(e)),
            Err(_) => Err(EmbedError::Stopped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalize_is_llama_cpp_euclidean() {
        let mut v = [3.0f32, 4.0];
        normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut z = [0.0f32; 3];
        normalize(&mut z);
        assert_eq!(z, [0.0; 3]);
    }
}

/// The most inputs one request may carry (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

/// `POST /v1/embeddings` body.
#[derive(Debug, serde::Deserialize)]
pub struct EmbeddingsRequest {
    pub input: crate::api::Prompt,
    #[allow(dead_code)]
    pub model: Option<String>,
    pub encoding_format: Option<String>,
    pub dimensions: Option<i64>,
    #[allow(dead_code)]
    pub user: Option<String>,
}

/// Standard base64 (RFC 4648, padded) of the little-endian float32 bytes, as OpenAI sends them.
pub fn base64_f32(v: &[f32]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            out.push(if i <= c.len() {
                A[(n >> shift & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}
