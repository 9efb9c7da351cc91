//! A context: one KV cache, the thread pools and every buffer `decode` needs, sized at creation
//! so that decoding allocates nothing (except when a batch asks for more logits rows than any
//! before it).

use super::batch::{Batch, Pos, SeqId};
use super::embeddings::{self, AttentionType, EmbdOutput, PoolingType};
use super::perf::{PerfContextData, PerfCounters};
use super::pool::Pool;
use super::threadpool::ThreadPool;
use crate::alloc::SizedBy;
use crate::error::{Error, Result};
use crate::kernels::{self, KernelTable};
use crate::kv::{KvCache, KV_PAD, MAX_SEQ};
use crate::model::forward::{self, Step, Tap};
use crate::model::Model;
use std::sync::Arc;

/// Context options, llama.cpp's `llama_context_params` subset with its defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextParams {
    /// KV cache size in tokens; 0 = the model's training context. Rounded up to a multiple of 32.
    pub n_ctx: u32,
    /// Most tokens one `decode` call accepts.
    pub n_batch: u32,
    /// Most tokens evaluated in one pass (a `decode` call is split into ubatches of this size);
    /// 0 = n_batch.
    pub n_ubatch: u32,
    /// Number of distinct sequence ids (0..n_seq_max) batches may use (at most 64).
    pub n_seq_max: u32,
    /// Threads for single-token decoding; 0 or less = all available cores.
    pub n_threads: i32,
    /// Threads for multi-token batches (prompts); 0 or less = all available cores.
    pub n_threads_batch: i32,
    /// The kernel variant this context runs (matmuls and attention); `None` = the process
    /// default, [`kernels::active`] (`BITNET_KERNEL` if set, else the fastest variant this CPU
    /// has). A variant this machine cannot run is an error at [`Context::new`].
    pub kernel: Option<kernels::Kind>,
    /// Batch-invariant arithmetic (for serving): each token's logits are the same bits whatever
    /// else is in its batch and wherever its sequence's cells lie in the cache, at the price of
    /// a per-token K/V gather in attention and one-token F16/F32 matmuls (see
    /// `model/invariant.rs`). A sequence then gets the same bits however its prompt is split
    /// into ubatches, and the bits of default single-token decoding. Off by default: the
    /// default follows the reference's order (tinyBLAS for multi-token ubatches).
    pub batch_invariant: bool,
    /// Also output embeddings (`llama_context_params.embeddings`): every token of a batch is
    /// then an output (logits flags are overridden, as llama.cpp does) and its embedding is the
    /// final RMSNorm's output. See [`Context::embeddings`]. Can be changed later with
    /// [`Context::set_embeddings`].
    pub embeddings: bool,
    /// How embeddings are pooled per sequence; UNSPECIFIED = the model's `<arch>.pooling_type`,
    /// else NONE. RANK is refused at creation (no classifier head).
    pub pooling_type: PoolingType,
    /// Causal (the only one implemented) or UNSPECIFIED (the model's); NON_CAUSAL is refused at
    /// creation.
    pub attention_type: AttentionType,
    /// With `embeddings` on, skip the lm_head: the decode computes embeddings only and no logits
    /// ([`Context::logits`] is empty, [`Context::logits_ith`] an error). A bitnet extension for
    /// embedding servers (llama.cpp always computes both); default false.
    pub embeddings_only: bool,
}

impl Default for ContextParams {
    fn default() -> Self {
        ContextParams {
            n_ctx: 512,
            n_batch: 2048,
            n_ubatch: 512,
            n_seq_max: 1,
            n_threads: 0,
            n_threads_batch: 0,
            kernel: None,
            batch_invariant: false,
            embeddings: false,
            pooling_type: PoolingType::Unspecified,
            attention_type: AttentionType::Unspecified,
            embeddings_only: false,
        }
    }
}

/// Most threads a pool gets (ggml's GGML_MAX_N_THREADS): more only cost time to start.
pub(super) const MAX_THREADS: usize = 512;

fn threads(n: i32, name: &str) -> usize {
    let n = if n > 0 {
        n as usize
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    if n > MAX_THREADS {
        crate::log::log_warn!(
            "{name} = {n} is more than {MAX_THREADS} threads: using {MAX_THREADS}"
        );
        return MAX_THREADS;
    }
    n
}

/// The decode pool and, when the counts differ, the batch pool; stores the resolved thread
/// counts in `p`.
fn pools(p: &mut ContextParams) -> Result<(Pool, Option<Pool>)> {
    let (nt_decode, nt_batch) = (
        threads(p.n_threads, "n_threads"),
        threads(p.n_threads_batch, "n_threads_batch"),
    );
    let pool_decode = Pool::new(nt_decode)?;
    let pool_batch = if nt_batch != nt_decode {
        Some(Pool::new(nt_batch)?)
    } else {
        None
    };
    p.n_threads = nt_decode as i32;
    p.n_threads_batch = nt_batch as i32;
    Ok((pool_decode, pool_batch))
}

/// A decode's abort check ([`Context::set_abort_callback`]): returns `true` to stop.
pub type AbortCallback = Box<dyn FnMut() -> bool + Send + Sync>;

/// Evaluation state over one model: KV cache, logits of the last `decode`, threads, buffers.
pub struct Context {
    model: Arc<Model>,
    params: ContextParams,
    kv: KvCache,
    /// The kernel table every matmul and attention of this context runs.
    kernels: &'static KernelTable,
    scratch: forward::Scratch,
    pool_decode: Pool,
    /// `None` when prompts use the same thread count as decoding.
    pool_batch: Option<Pool>,
    /// Caller-made pools (single token, batches) that replace the two above while attached.
    attached: Option<(ThreadPool, ThreadPool)>,
    /// `n_outputs` rows of n_vocab logits, in batch order.
    logits: Vec<f32>,
    n_outputs: usize,
    /// Whether the last decode computed logits (not with `embeddings_only`).
    has_logits: bool,
    /// Embeddings of the last decode (per token, pooled per sequence).
    embd: EmbdOutput,
    /// For each token of the last batch: its row in `logits`, or -1.
    output_ids: Vec<i32>,
    // Per-decode working lists, with capacity for n_batch tokens.
    pos: Vec<Pos>,
    seq: Vec<SeqId>,
    outputs: Vec<usize>,
    mask: Vec<f32>,
    /// Next position of each sequence while a `get_one` batch is resolved (wider than Pos, so
    /// that running past INT32_MAX is seen).
    next_pos: Vec<i64>,
    /// (first cell, length) of each ubatch stored by the current decode, to undo on failure.
    stored: Vec<(usize, usize)>,
    /// Asked before every ubatch of a decode; `true` stops it ([`Context::set_abort_callback`]).
    abort: Option<AbortCallback>,
    perf: PerfCounters,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("params", &self.params)
            .field("kv_used", &self.kv.used())
            .finish()
    }
}

impl Context {
    /// Creates a context: resolves the parameters as llama.cpp does (n_ctx 0 = the model's,
    /// padded to 32; n_batch at least 32; n_ubatch at most n_batch), allocates the F16 KV cache
    /// and every buffer, and starts the thread pools.
    pub fn new(model: Arc<Model>, params: ContextParams) -> Result<Context> {
        let cfg = model.config();
        let mut p = params;
        if p.n_ctx == 0 {
            p.n_ctx = u32::try_from(cfg.n_ctx_train).unwrap_or(u32::MAX);
        }
        // Positions are int32_t: a cache of more cells could never be filled.
        p.n_ctx = p
            .n_ctx
            .checked_next_multiple_of(KV_PAD as u32)
            .filter(|&n| n <= i32::MAX as u32)
            .ok_or_else(|| {
                Error::invalid_argument(format!(
                    "n_ctx = {}: rounded up to a multiple of {KV_PAD} it is more than \
                     INT32_MAX cells",
                    p.n_ctx
                ))
            })?;
        p.n_batch = p.n_batch.max(32);
        p.n_ubatch = if p.n_ubatch == 0 {
            p.n_batch
        } else {
            p.n_ubatch.min(p.n_batch)
        };
        if p.n_seq_max == 0 || p.n_seq_max as usize > MAX_SEQ {
            return Err(Error::invalid_argument(format!(
                "n_seq_max {} must be in 1..={MAX_SEQ}",
                p.n_seq_max
            )));
        }
        let (n_ctx, n_batch, n_ubatch) =
            (p.n_ctx as usize, p.n_batch as usize, p.n_ubatch as usize);
        let kernels = match p.kernel {
            None => kernels::active(),
            Some(kind) => kernels::table(kind).ok_or_else(|| {
                Error::unsupported(format!(
                    "kernel {} is not available on this machine (available: {})",
                    kind.name(),
                    kernels::available()
                        .iter()
                        .map(|t| t.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
        };
        p.kernel = Some(kernels.kind);
        (p.pooling_type, p.attention_type) = embeddings::resolve(
            model.gguf(),
            cfg.arch.name(),
            p.pooling_type,
            p.attention_type,
        )?;
        // Every buffer is sized with checked arithmetic and allocated fallibly: a request the
        // machine cannot hold is an error naming the parameter and the bytes, not an abort.
        // The KV cache (KvCache::new) comes first: it is the largest.
        let mut kv = KvCache::new(n_ctx, cfg.n_layer, cfg.n_embd_kv())?;
        kv.limit_seqs(p.n_seq_max as usize);
        let by_ubatch = SizedBy {
            param: "n_ubatch",
            value: n_ubatch,
        };
        let mask = by_ubatch.vec(
            "the attention mask (n_ubatch x n_ctx floats)",
            n_ubatch.checked_mul(n_ctx),
            0.0f32,
        )?;
        let scratch = forward::Scratch::new(&model, n_ubatch, n_ctx, p.batch_invariant)?;
        // n_batch is a limit, not an allocation: the per-token lists start at one ubatch and
        // grow (fallibly, in decode) with the batches actually given.
        let n_list = n_batch.min(n_ubatch);
        let by_batch = SizedBy {
            param: "n_batch",
            value: n_batch,
        };
        let n_vocab = cfg.n_vocab;
        let logits = SizedBy {
            param: "n_seq_max",
            value: p.n_seq_max as usize,
        }
        .vec(
            "the logits",
            (p.n_seq_max as usize).checked_mul(n_vocab),
            0.0f32,
        )?;
        let (pool_decode, pool_batch) = pools(&mut p)?;
        Ok(Context {
            kv,
            kernels,
            scratch,
            pool_decode,
            pool_batch,
            attached: None,
            logits,
            n_outputs: 0,
            has_logits: true,
            embd: EmbdOutput::new(cfg.n_embd),
            output_ids: by_batch.with_capacity("the output ids", n_list)?,
            pos: by_batch.with_capacity("the positions", n_list)?,
            seq: by_batch.with_capacity("the sequence ids", n_list)?,
            outputs: by_batch.with_capacity("the output list", n_list)?,
            mask,
            next_pos: vec![0; MAX_SEQ],
            stored: Vec::with_capacity(n_batch.div_ceil(n_ubatch).min(64)),
            abort: None,
            params: p,
            perf: PerfCounters::new(model.load_us()),
            model,
        })
    }

    /// Changes the thread counts for later decodes (`llama_set_n_threads`; 0 or less = all
    /// cores). Results do not depend on them.
    pub fn set_n_threads(&mut self, n_threads: i32, n_threads_batch: i32) -> Result<()> {
        let mut p = self.params.clone();
        p.n_threads = n_threads;
        p.n_threads_batch = n_threads_batch;
        let (pool_decode, pool_batch) = pools(&mut p)?;
        self.pool_decode = pool_decode;
        self.pool_batch = pool_batch;
        self.params = p;
        Ok(())
    }

    /// Runs later decodes on caller-made thread pools (`llama_attach_threadpool`): `pool` for
    /// single-token ubatches, `pool_batch` (default: `pool`) for multi-token ones, until
    /// [`Context::detach_threadpool`]. The context keeps the pools alive while attached. Results
    /// are the same bits on any pool (work is split by output rows).
    pub fn attach_threadpool(&mut self, pool: ThreadPool, pool_batch: Option<ThreadPool>) {
        let batch = pool_batch.unwrap_or_else(|| pool.clone());
        self.attached = Some((pool, batch));
    }

    /// Goes back to the context's own pools (`llama_detach_threadpool`); a no-op when none is
    /// attached.
    pub fn detach_threadpool(&mut self) {
        self.attached = None;
    }

    /// The attached pools (single token, batch), if any.
    pub fn attached_threadpool(&self) -> Option<(&ThreadPool, &ThreadPool)> {
        self.attached.as_ref().map(|(a, b)| (a, b))
    }

    /// Installs (or with `None` removes) a check `decode` calls before every ubatch
    /// (`llama_set_abort_callback`): when it returns `true`, decode stops there and returns an
    /// [`ErrorKind::Aborted`](crate::ErrorKind::Aborted) error (the C API's 2). The ubatches
    /// already evaluated stay in the KV cache and their logits stay readable, as llama.h says.
    pub fn set_abort_callback(&mut self, abort: Option<AbortCallback>) {
        self.abort = abort;
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }
    /// The kernel table this context runs ([`ContextParams::kernel`]).
    pub fn kernels(&self) -> &'static KernelTable {
        self.kernels
    }

    /// The parameters as resolved at creation (thread counts: the real ones, never 0; the
    /// kernel: the one chosen).
    pub fn params(&self) -> &ContextParams {
        &self.params
    }
    pub fn n_ctx(&self) -> usize {
        self.params.n_ctx as usize
    }
    pub fn kv(&self) -> &KvCache {
        &self.kv
    }
    /// The KV cache, for sequence operations (seq_rm, seq_cp, seq_add, clear, ...).
    pub fn kv_mut(&mut self) -> &mut KvCache {
        &mut self.kv
    }

    /// Logits of every output of the last `decode`, `n_outputs × n_vocab`, in batch order
    /// (empty when it computed none: [`ContextParams::embeddings_only`]).
    pub fn logits(&self) -> &[f32] {
        if !self.has_logits {
            return &[];
        }
        &self.logits[..self.n_outputs * self.model.config().n_vocab]
    }

    /// Turns embeddings output on or off for later decodes (`llama_set_embeddings`).
    pub fn set_embeddings(&mut self, on: bool) {
        self.params.embeddings = on;
    }

    /// The pooling the context was created with (never UNSPECIFIED: resolved at creation).
    pub fn pooling_type(&self) -> PoolingType {
        self.params.pooling_type
    }

    /// Per-token embeddings of the last decode, `n_outputs × n_embd` in batch order
    /// (`llama_get_embeddings`): only with pooling NONE; `None` when the last decode produced
    /// none (embeddings off, or a pooled context, whose per-sequence vectors are
    /// [`Context::embeddings_seq`]).
    pub fn embeddings(&self) -> Option<&[f32]> {
        if self.params.pooling_type != PoolingType::None {
            return None;
        }
        self.embd.rows()
    }

    /// Embedding of token `i` of the last batch (`llama_get_embeddings_ith`; negative `i`
    /// counts from the last output). An error when there is none: embeddings were off, the
    /// context pools (use [`Context::embeddings_seq`]), or `i` is out of range.
    pub fn embeddings_ith(&self, i: i32) -> Result<&[f32]> {
        if self.params.pooling_type != PoolingType::None {
            return Err(Error::invalid_argument(format!(
                "embeddings index {i}: the context pools embeddings per sequence ({:?}); use \
                 the sequence embeddings",
                self.params.pooling_type
            )));
        }
        if self.embd.rows().is_none() {
            return Err(Error::invalid_argument(format!(
                "embeddings index {i}: the last decode computed no embeddings (embeddings off)"
            )));
        }
        let row = self.output_row(i, "embeddings")?;
        self.embd.row(row).ok_or_else(|| {
            Error::invalid_argument(format!("embeddings index {i}: no such output row"))
        })
    }

    /// The pooled embedding of sequence `seq` from the last decode (`llama_get_embeddings_seq`):
    /// `n_embd` values; `None` with pooling NONE, embeddings off, or a sequence that was not in
    /// the last batch.
    pub fn embeddings_seq(&self, seq: SeqId) -> Option<&[f32]> {
        if self.params.pooling_type == PoolingType::None {
            return None;
        }
        self.embd.seq(seq)
    }

    /// Number of logits rows the last `decode` produced.
    pub fn n_outputs(&self) -> usize {
        self.n_outputs
    }

    /// Logits of token `i` of the last batch (`llama_get_logits_ith`): negative `i` counts
    /// from the last output (-1 = the last one).
    pub fn logits_ith(&self, i: i32) -> Result<&[f32]> {
        let n_vocab = self.model.config().n_vocab;
        if !self.has_logits {
            return Err(Error::invalid_argument(format!(
                "logits index {i}: the last decode computed no logits (embeddings_only)"
            )));
        }
        let row = self.output_row(i, "logits")?;
        Ok(&self.logits[row * n_vocab..(row + 1) * n_vocab])
    }

    /// The output row of batch index `i` (negative: from the last output).
    fn output_row(&self, i: i32, what: &str) -> Result<usize> {
        let row = if i < 0 {
            let j = self.n_outputs as i64 + i as i64;
            if j < 0 {
                return Err(Error::invalid_argument(format!(
                    "{what} index {i}: only {} outputs",
                    self.n_outputs
                )));
            }
            j as usize
        } else {
            match self.output_ids.get(i as usize) {
                None => {
                    return Err(Error::invalid_argument(format!(
                        "{what} index {i}: the last batch had {} tokens",
                        self.output_ids.len()
                    )))
                }
                Some(&r) if r < 0 => {
                    return Err(Error::invalid_argument(format!(
                        "{what} index {i}: that token was not an output"
                    )))
                }
                Some(&r) => r as usize,
            }
        };
        Ok(row)
    }

    /// The last decode's output map and logits (for saving state).
    pub(crate) fn output_state(&self) -> (&[i32], &[f32]) {
        (&self.output_ids, self.logits())
    }

    /// Installs saved outputs (for restoring state).
    pub(crate) fn restore_outputs(
        &mut self,
        ids: Vec<i32>,
        logits: impl Iterator<Item = f32>,
        n_out: usize,
    ) {
        let n = n_out * self.model.config().n_vocab;
        if self.logits.len() < n {
            self.logits.resize(n, 0.0);
        }
        for (dst, v) in self.logits[..n].iter_mut().zip(logits) {
            *dst = v;
        }
        self.output_ids = ids;
        self.n_outputs = n_out;
        self.has_logits = true;
        self.embd.reset();
    }

    /// Evaluates a batch: stores its tokens in the KV cache and computes the logits of the
    /// tokens that ask for them. A batch larger than n_ubatch is evaluated in consecutive
    /// ubatches. Errors: InvalidArgument (empty or malformed batch, more than n_batch tokens,
    /// bad sequence id), InvalidToken (id outside the vocabulary), ContextFull (no room in the
    /// cache; the cache is left as before the call).
    pub fn decode(&mut self, batch: &Batch) -> Result<()> {
        let start = std::time::Instant::now();
        self.decode_impl(batch, None)?;
        self.perf.record(batch.len(), start.elapsed());
        Ok(())
    }

    /// Timing counters since creation or the last [`Context::perf_reset`]
    /// (`llama_perf_context`).
    pub fn perf(&self) -> PerfContextData {
        self.perf.data()
    }

    /// `llama_perf_context_reset`.
    pub fn perf_reset(&mut self) {
        self.perf.reset();
    }

    /// [`Context::decode`] that also reports every intermediate tensor (oracle names) to `tap`.
    #[doc(hidden)]
    pub fn decode_traced(&mut self, batch: &Batch, tap: Tap) -> Result<()> {
        self.decode_impl(batch, Some(tap))
    }

    fn check_batch(&self, batch: &Batch) -> Result<()> {
        let n = batch.len();
        if n == 0 {
            return Err(Error::invalid_argument("decode: the batch is empty"));
        }
        if n > self.params.n_batch as usize {
            return Err(Error::invalid_argument(format!(
                "decode: batch of {n} tokens exceeds n_batch {}",
                self.params.n_batch
            )));
        }
        let col = |name: &str, len: Option<usize>| match len {
            Some(l) if l != n => Err(Error::invalid_argument(format!(
                "decode: batch has {n} tokens but {l} {name}"
            ))),
            _ => Ok(()),
        };
        col("positions", batch.pos.as_ref().map(Vec::len))?;
        col("sequence id lists", batch.seq_ids.as_ref().map(Vec::len))?;
        col("logits flags", batch.logits.as_ref().map(Vec::len))?;
        let n_vocab = self.model.config().n_vocab;
        for (i, &t) in batch.tokens.iter().enumerate() {
            if t < 0 || t as usize >= n_vocab {
                return Err(Error::invalid_token(format!(
                    "decode: token id {t} at batch index {i} is outside the vocabulary (0..{n_vocab})"
                )));
            }
        }
        if let Some(seqs) = &batch.seq_ids {
            let max = self.params.n_seq_max as SeqId;
            for (i, s) in seqs.iter().enumerate() {
                if s.is_empty() {
                    return Err(Error::invalid_argument(format!(
                        "decode: token {i} has no sequence id"
                    )));
                }
                if let Some(bad) = s.iter().find(|&&x| !(0..max).contains(&x)) {
                    return Err(Error::invalid_argument(format!(
                        "decode: sequence id {bad} of token {i} is outside 0..{max} (n_seq_max)"
                    )));
                }
            }
        }
        if let Some(pos) = &batch.pos {
            if let Some(i) = pos.iter().position(|&p| p < 0) {
                return Err(Error::invalid_argument(format!(
                    "decode: token {i} has negative position {}",
                    pos[i]
                )));
            }
        }
        Ok(())
    }

    fn undo_stored(&mut self) {
        for &(c, l) in &self.stored {
            self.kv.release(c, l);
        }
        self.stored.clear();
    }

    fn decode_impl(&mut self, batch: &Batch, mut tap: Option<Tap>) -> Result<()> {
        self.check_batch(batch)?;
        let n = batch.len();
        let n_vocab = self.model.config().n_vocab;

        // Resolve the optional columns: first sequence per token, positions, outputs.
        self.seq.clear();
        match &batch.seq_ids {
            Some(s) => self.seq.extend(s.iter().map(|v| v[0])),
            None => self.seq.resize(n, 0),
        }
        self.pos.clear();
        match &batch.pos {
            Some(p) => self.pos.extend_from_slice(p),
            None => {
                for s in 0..MAX_SEQ {
                    self.next_pos[s] = -1;
                }
                for i in 0..n {
                    let s = self.seq[i] as usize;
                    if self.next_pos[s] < 0 {
                        self.next_pos[s] = self.kv.seq_pos_max(s as SeqId) as i64 + 1;
                    }
                    // Checked before anything changes: a position past INT32_MAX would wrap
                    // to a negative one, which marks an empty cell.
                    let p = Pos::try_from(self.next_pos[s]).map_err(|_| {
                        Error::invalid_argument(format!(
                            "decode: sequence {s} is at position INT32_MAX; token {i} of the \
                             batch would be at INT32_MAX + {}",
                            self.next_pos[s] - i32::MAX as i64
                        ))
                    })?;
                    self.pos.push(p);
                    self.next_pos[s] += 1;
                }
            }
        }
        self.output_ids.clear();
        let mut n_out = 0usize;
        // llama.cpp: when computing embeddings, all tokens are output.
        let output_all = self.params.embeddings;
        if output_all && batch.logits.as_ref().is_some_and(|l| l.contains(&false)) {
            crate::log::log_warn!(
                "decode: embeddings required but some input tokens were not marked as outputs \
                 -> overriding"
            );
        }
        for i in 0..n {
            if output_all || batch.wants_logits(i) {
                self.output_ids.push(n_out as i32);
                n_out += 1;
            } else {
                self.output_ids.push(-1);
            }
        }
        let need = n_out.checked_mul(n_vocab).ok_or_else(|| {
            Error::invalid_argument(format!(
                "decode: {n_out} outputs x {n_vocab} logits overflow"
            ))
        })?;
        let with_logits = !(output_all && self.params.embeddings_only);
        self.embd.reset();
        if output_all {
            self.embd.prepare(n_out)?;
        }
        if with_logits && self.logits.len() < need {
            self.logits
                .try_reserve_exact(need - self.logits.len())
                .map_err(|_| {
                    Error::new(
                        crate::error::ErrorKind::OutOfMemory,
                        format!(
                            "decode: {n_out} tokens ask for logits, {} bytes, which cannot be \
                             allocated",
                            need as u128 * 4
                        ),
                    )
                })?;
            self.logits.resize(need, 0.0);
        }
        self.n_outputs = 0;
        self.has_logits = with_logits;

        // Re-rotate K of moved cells before anything attends to them.
        forward::shift_k(&self.model, &mut self.kv);

        let n_ubatch = self.params.n_ubatch as usize;
        self.stored.clear();
        let mut u0 = 0;
        let mut out_row = 0;
        while u0 < n {
            if self.abort.as_mut().is_some_and(|abort| abort()) {
                // Keep what was evaluated (llama.h: processed ubatches remain in memory); the
                // tokens not reached have no logits.
                for id in &mut self.output_ids[u0..] {
                    *id = -1;
                }
                self.n_outputs = out_row;
                return Err(Error::new(
                    crate::error::ErrorKind::Aborted,
                    format!("decode aborted by the abort callback after {u0} of {n} tokens"),
                ));
            }
            let u1 = (u0 + n_ubatch).min(n);
            let len = u1 - u0;
            let first_cell = match self.kv.find_slot(len) {
                Ok(c) => c,
                Err(e) => {
                    // Leave the cache as it was before this call.
                    self.undo_stored();
                    self.output_ids.clear();
                    self.embd.reset();
                    return Err(e);
                }
            };
            for i in u0..u1 {
                let seqs: &[SeqId] = match &batch.seq_ids {
                    Some(s) => &s[i],
                    None => &[0],
                };
                self.kv.occupy(first_cell + i - u0, self.pos[i], seqs);
            }
            self.stored.push((first_cell, len));
            let n_kv = self.kv.n_kv();
            self.kv.build_mask(
                &self.pos[u0..u1],
                &self.seq[u0..u1],
                n_kv,
                &mut self.mask[..len * n_kv],
            );
            self.outputs.clear();
            self.outputs.extend(
                (u0..u1)
                    .filter(|&i| self.output_ids[i] >= 0)
                    .map(|i| i - u0),
            );
            let n_out_u = self.outputs.len();
            let step = Step {
                tokens: &batch.tokens[u0..u1],
                pos: &self.pos[u0..u1],
                first_cell,
                mask: &self.mask[..len * n_kv],
                n_kv,
                outputs: &self.outputs,
                batch_invariant: self.params.batch_invariant,
            };
            let logits = with_logits
                .then(|| &mut self.logits[out_row * n_vocab..(out_row + n_out_u) * n_vocab]);
            let embd = output_all.then(|| self.embd.rows_mut(out_row, n_out_u));
            // llama.cpp: n_threads for a single token, n_threads_batch otherwise.
            let pool = match (&self.attached, &self.pool_batch, len) {
                (Some((_, b)), _, l) if l > 1 => b.pool(),
                (Some((d, _)), _, _) => d.pool(),
                (None, Some(p), l) if l > 1 => p,
                _ => &self.pool_decode,
            };
            let (kt, model, kv, scratch) =
                (self.kernels, &*self.model, &mut self.kv, &mut self.scratch);
            let tap = tap
                .as_mut()
                .map(|t| &mut **t as &mut (dyn FnMut(&str, &[f32], usize) + Send));
            let result =
                pool.install(|| forward::forward(kt, model, kv, &step, scratch, logits, embd, tap));
            if let Err(e) = result {
                self.undo_stored();
                self.output_ids.clear();
                self.embd.reset();
                return Err(e);
            }
            self.kv.advance_head(len);
            out_row += n_out_u;
            self.embd.set_rows(out_row);
            u0 = u1;
        }
        self.n_outputs = n_out;
        if output_all && self.params.pooling_type != PoolingType::None {
            let seq_ids = batch.seq_ids.as_deref();
            self.embd
                .pool(self.kernels, self.params.pooling_type, &self.pos, seq_ids)?;
        }
        Ok(())
    }
}
