//! The engine: one thread owning the [`Context`], its slots and the continuous-batching loop.
//!
//! N slots share one context; slot `i` is sequence `i`. Each step builds one batch holding every
//! generating slot's next token and as much of the prompting slots' prompts as `n_batch` leaves
//! room for, decodes it, and samples each slot whose last token got logits. A new request takes
//! the free slot whose cached tokens share the longest prefix with its prompt (the rest of the
//! cache is dropped with `seq_rm`), so a follow-up turn only evaluates what is new. A request
//! whose client went away (its event channel closed) is dropped before the next step, freeing
//! its slot. The context is batch-invariant, so a slot's text does not depend on its neighbours.

use bitnet::sampling::{
    Chain, ChainParams, Dist, Greedy, LogitBias, LogitBiasSampler, MinP, Penalties, Sampler, Temp,
    TopK, TopP,
};
use bitnet::{Batch, SeqId, Token};
use bitnet::{Context, ContextParams, ErrorKind, Model};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// Engine configuration (from the command line).
#[derive(Debug, Clone)]
pub struct EngineParams {
    pub n_parallel: usize,
    /// Total KV cells; each slot may use `n_ctx / n_parallel`.
    pub n_ctx: u32,
    pub n_batch: u32,
    pub n_threads: i32,
}

/// How to pick tokens for one request.
#[derive(Debug, Clone)]
pub struct SamplingParams {
    pub temperature: f32,
    pub top_p: f32,
    pub top_k: i32,
    pub min_p: f32,
    pub seed: Option<u32>,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    pub logit_bias: Vec<LogitBias>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            seed: None,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            logit_bias: Vec::new(),
        }
    }
}

impl SamplingParams {
    /// The sampler chain: logit bias, penalties, then greedy (temperature 0) or top-k, top-p,
    /// min-p, temperature and a seeded draw (dist takes the softmax itself).
    pub fn chain(&self, n_vocab: i32, n_ctx_slot: usize, extra: Option<Box<dyn Sampler>>) -> Chain {
        let mut c = Chain::new(ChainParams::default());
        if let Some(s) = extra {
            c.add(s);
        }
        if !self.logit_bias.is_empty() {
            c.add(Box::new(LogitBiasSampler::new(n_vocab, &self.logit_bias)));
        }
        if self.presence_penalty != 0.0 || self.frequency_penalty != 0.0 {
            c.add(Box::new(Penalties::new(
                n_ctx_slot as i32,
                1.0,
                self.frequency_penalty,
                self.presence_penalty,
            )));
        }
        if self.temperature <= 0.0 {
            c.add(Box::new(Greedy));
            return c;
        }
        if self.top_k > 0 {
            c.add(Box::new(TopK { k: self.top_k }));
        }
        if self.top_p < 1.0 {
            c.add(Box::new(TopP {
                p: self.top_p,
                min_keep: 1,
            }));
        }
        if self.min_p > 0.0 {
            c.add(Box::new(MinP {
                p: self.min_p,
                min_keep: 1,
            }));
        }
        c.add(Box::new(Temp {
            t: self.temperature,
        }));
        c.add(Box::new(Dist::new(
            self.seed.unwrap_or(bitnet::sampling::DEFAULT_SEED),
        )));
        c
    }
}

/// A request for the engine.
pub struct Job {
    pub id: u64,
    pub prompt: Vec<Token>,
    pub sampling: SamplingParams,
    /// Extra sampler put first in the chain (a grammar).
    pub constraint: Option<Box<dyn Sampler>>,
    pub stop: Vec<String>,
    pub max_tokens: usize,
    /// `Some(n)`: report each token's log-probability and the `n` most likely alternatives.
    pub logprobs: Option<usize>,
    pub events: UnboundedSender<Event>,
}

/// One generated token's log-probabilities (of the model's distribution, before sampling).
#[derive(Debug, Clone)]
pub struct TokenLogprob {
    pub token: Token,
    pub text: Vec<u8>,
    pub logprob: f32,
    pub top: Vec<(Token, Vec<u8>, f32)>,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// What the engine reports back to the HTTP side, in order.
#[derive(Debug)]
pub enum Event {
    /// New text (possibly empty when only logprobs are new).
    Text {
        text: String,
        logprobs: Vec<TokenLogprob>,
    },
    Done(Finish),
    Error {
        message: String,
    },
}

#[derive(Debug, Clone)]
pub struct Finish {
    pub reason: FinishReason,
    pub prompt_tokens: usize,
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    pub prompt_ms: f64,
    pub predicted_ms: f64,
    pub slot: usize,
}

/// Slot state as `/slots` shows it.
#[derive(Debug, Clone, Default)]
pub struct SlotInfo {
    pub id: usize,
    pub is_processing: bool,
    pub task_id: Option<u64>,
    pub n_ctx: usize,
    pub n_cached: usize,
    pub n_prompt: usize,
    pub n_decoded: usize,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub prompt_tokens_total: u64,
    pub prompt_seconds_total: f64,
    pub tokens_predicted_total: u64,
    pub tokens_predicted_seconds_total: f64,
    pub n_decode_total: u64,
    pub n_busy_slots_total: u64,
    pub requests_finished: u64,
    pub requests_cancelled: u64,
}

/// State shared between the engine thread and the HTTP handlers.
pub struct Shared {
    /// Jobs sent but not yet in a slot.
    pub queued: AtomicUsize,
    pub processing: AtomicUsize,
    pub shutdown: AtomicBool,
    pub slots: Mutex<Vec<SlotInfo>>,
    pub metrics: Mutex<Metrics>,
    pub n_ctx_slot: usize,
    pub n_ctx: usize,
}

/// The HTTP side's handle: submits jobs, reads shared state.
pub struct EngineHandle {
    tx: Mutex<mpsc::Sender<Job>>,
    pub shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl EngineHandle {
    /// Queues a job unless `max_queue` jobs already wait; `Err` gives the job back.
    pub fn submit(&self, job: Job, max_queue: usize) -> Result<(), Box<Job>> {
        let q = &self.shared.queued;
        if q.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < max_queue).then_some(n + 1)
        })
        .is_err()
        {
            return Err(Box::new(job));
        }
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        tx.send(job).map_err(|e| {
            q.fetch_sub(1, Ordering::SeqCst);
            Box::new(e.0)
        })
    }

    /// False once the engine thread has ended (it only ends on shutdown or a panic).
    pub fn is_alive(&self) -> bool {
        self.thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    /// Asks the engine to stop (in-flight requests end with an error event) and waits for it.
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// Starts the engine thread on `model`.
pub fn start(model: Arc<Model>, p: &EngineParams) -> bitnet::Result<EngineHandle> {
    let n_parallel = p.n_parallel.clamp(1, 64);
    let params = ContextParams {
        n_ctx: p.n_ctx,
        n_batch: p.n_batch,
        n_ubatch: p.n_batch,
        n_seq_max: n_parallel as u32,
        n_threads: p.n_threads,
        n_threads_batch: p.n_threads,
        batch_invariant: true,
        ..Default::default()
    };
    let ctx = Context::new(model.clone(), params)?;
    let n_ctx = ctx.n_ctx();
    let n_ctx_slot = n_ctx / n_parallel;
    let shared = Arc::new(Shared {
        queued: AtomicUsize::new(0),
        processing: AtomicUsize::new(0),
        shutdown: AtomicBool::new(false),
        slots: Mutex::new(
            (0..n_parallel)
                .map(|id| SlotInfo {
                    id,
                    n_ctx: n_ctx_slot,
                    ..Default::default()
                })
                .collect(),
        ),
        metrics: Mutex::new(Metrics::default()),
        n_ctx_slot,
        n_ctx,
    });
    let (tx, rx) = mpsc::channel();
    let n_batch = ctx.params().n_batch as usize;
    let mut engine = Engine {
        vocab_n: model.vocab().n_tokens() as i32,
        model,
        ctx,
        slots: (0..n_parallel).map(Slot::new).collect(),
        waiting: VecDeque::new(),
        rx,
        shared: shared.clone(),
        batch: Batch::new(n_batch),
        sub: Batch::new(n_batch),
        rows: Vec::with_capacity(n_batch),
        n_batch,
        n_ctx_slot,
        tick: 0,
    };
    let thread = std::thread::Builder::new()
        .name("bitnet-engine".into())
        .spawn(move || engine.run())
        .map_err(|e| bitnet::Error::internal(format!("cannot start the engine thread: {e}")))?;
    Ok(EngineHandle {
        tx: Mutex::new(tx),
        shared,
        thread: Mutex::new(Some(thread)),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Prompt,
    Generate,
}

struct Active {
    job: Job,
    chain: Chain,
    phase: Phase,
    /// Next prompt token to evaluate.
    prompt_next: usize,
    /// Prompt tokens found in the slot's cache.
    reused: usize,
    /// Sampled, not yet decoded.
    pending: Option<Token>,
    n_decoded: usize,
    /// Bytes of an incomplete UTF-8 character at the end of the output.
    utf8_tail: Vec<u8>,
    text: String,
    /// Bytes of `text` already sent.
    sent: usize,
    logprobs: Vec<TokenLogprob>,
    t_start: Instant,
    t_prompt_done: Option<Instant>,
}

struct Slot {
    id: usize,
    /// Tokens of this slot's sequence in the KV cache, in position order.
    cached: Vec<Token>,
    active: Option<Active>,
    last_used: u64,
}

impl Slot {
    fn new(id: usize) -> Slot {
        Slot {
            id,
            cached: Vec::new(),
            active: None,
            last_used: 0,
        }
    }
}

struct Engine {
    model: Arc<Model>,
    vocab_n: i32,
    ctx: Context,
    slots: Vec<Slot>,
    waiting: VecDeque<Job>,
    rx: mpsc::Receiver<Job>,
    shared: Arc<Shared>,
    batch: Batch,
    sub: Batch,
    /// Slot of each row of `batch`.
    rows: Vec<usize>,
    n_batch: usize,
    n_ctx_slot: usize,
    tick: u64,
}

fn common_prefix(a: &[Token], b: &[Token]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Length of the longest prefix of `b` that is valid UTF-8 or could become so (an incomplete
/// character at the end is held back; invalid bytes are replaced).
fn take_utf8(buf: &mut Vec<u8>) -> String {
    match std::str::from_utf8(buf) {
        Ok(s) => {
            let s = s.to_string();
            buf.clear();
            s
        }
        Err(e) => {
            let good = e.valid_up_to();
            match e.error_len() {
                // An incomplete character at the end: keep it for the next token.
                None => {
                    let s = String::from_utf8_lossy(&buf[..good]).into_owned();
                    buf.drain(..good);
                    s
                }
                Some(bad) => {
                    let mut s = String::from_utf8_lossy(&buf[..good + bad]).into_owned();
                    buf.drain(..good + bad);
                    s.push_str(&take_utf8(buf));
                    s
                }
            }
        }
    }
}

/// Earliest occurrence of any stop string in `text` at or after byte `from`.
fn find_stop(text: &str, stops: &[String], from: usize) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            let mut start = from.saturating_sub(s.len());
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            text[start..].find(s.as_str()).map(|i| start + i)
        })
        .min()
}

/// Bytes at the end of `text` that begin some stop string (held back until resolved).
fn partial_stop(text: &str, stops: &[String]) -> usize {
    let mut hold = 0;
    for s in stops {
        for k in (1..s.len()).rev() {
            if k <= hold {
                break;
            }
            if text.as_bytes().ends_with(&s.as_bytes()[..k]) {
                hold = k;
                break;
            }
        }
    }
    hold
}

impl Engine {
    fn run(&mut self) {
        loop {
            if self.shared.shutdown.load(Ordering::SeqCst) {
                self.abort_all("the server is shutting down");
                return;
            }
            let busy = self.slots.iter().any(|s| s.active.is_some());
            if !busy && self.waiting.is_empty() {
                match self.rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(job) => self.waiting.push_back(job),
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
            while let Ok(job) = self.rx.try_recv() {
                self.waiting.push_back(job);
            }
            self.drop_cancelled();
            self.assign();
            if self.slots.iter().any(|s| s.active.is_some()) {
                self.step();
            }
            self.publish();
        }
    }

    fn abort_all(&mut self, why: &str) {
        for job in self.waiting.drain(..) {
            let _ = job.events.send(Event::Error {
                message: why.into(),
            });
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
        }
        while let Ok(job) = self.rx.try_recv() {
            let _ = job.events.send(Event::Error {
                message: why.into(),
            });
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
        }
        for i in 0..self.slots.len() {
            if self.slots[i].active.is_some() {
                self.fail(i, why);
            }
        }
        self.publish();
    }

    /// Frees the slots and queue places of requests whose client is gone.
    fn drop_cancelled(&mut self) {
        let before = self.waiting.len();
        self.waiting.retain(|j| !j.events.is_closed());
        let gone = before - self.waiting.len();
        if gone > 0 {
            self.shared.queued.fetch_sub(gone, Ordering::SeqCst);
        }
        for i in 0..self.slots.len() {
            let closed = self.slots[i]
                .active
                .as_ref()
                .is_some_and(|a| a.job.events.is_closed());
            if closed {
                self.release(i);
                self.lock_metrics().requests_cancelled += 1;
            }
        }
    }

    fn lock_metrics(&self) -> std::sync::MutexGuard<'_, Metrics> {
        self.shared
            .metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Ends slot `i`'s request (its cache is kept for prefix reuse).
    fn release(&mut self, i: usize) {
        if self.slots[i].active.take().is_some() {
            self.shared.processing.fetch_sub(1, Ordering::SeqCst);
        }
        self.tick += 1;
        self.slots[i].last_used = self.tick;
    }

    fn fail(&mut self, i: usize, message: &str) {
        if let Some(a) = &self.slots[i].active {
            let _ = a.job.events.send(Event::Error {
                message: message.to_string(),
            });
        }
        // The cache content of a failed slot is not trusted for reuse.
        self.ctx.kv_mut().seq_rm(i as SeqId, 0, -1);
        self.slots[i].cached.clear();
        self.release(i);
    }

    /// Moves waiting jobs into free slots: the slot whose cache shares the longest prefix with
    /// the prompt, if that prefix is at least half of what the slot holds (so a shared BOS
    /// does not wipe a long conversation); else the least recently used slot.
    fn assign(&mut self) {
        while !self.waiting.is_empty() {
            let job_prompt = &self.waiting[0].prompt;
            let free = || self.slots.iter().filter(|s| s.active.is_none());
            let reuse = free()
                .map(|s| (common_prefix(&s.cached, job_prompt), s))
                .filter(|(c, s)| *c > 0 && 2 * c >= s.cached.len())
                .max_by_key(|(c, s)| (*c, std::cmp::Reverse(s.id)))
                .map(|(_, s)| s.id);
            let best = reuse.or_else(|| free().min_by_key(|s| (s.last_used, s.id)).map(|s| s.id));
            let Some(i) = best else { return };
            let job = self.waiting.pop_front().expect("checked non-empty");
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            if job.prompt.is_empty() || job.prompt.len() >= self.n_ctx_slot {
                let _ = job.events.send(Event::Error {
                    message: format!(
                        "the prompt has {} tokens; a slot holds {} (prompt and output)",
                        job.prompt.len(),
                        self.n_ctx_slot
                    ),
                });
                continue;
            }
            let slot = &mut self.slots[i];
            // Keep at least the last prompt token to evaluate: its logits start generation.
            let keep = common_prefix(&slot.cached, &job.prompt).min(job.prompt.len() - 1);
            self.ctx.kv_mut().seq_rm(i as SeqId, keep as i32, -1);
            slot.cached.truncate(keep);
            let mut constraint = None;
            let mut job = job;
            std::mem::swap(&mut constraint, &mut job.constraint);
            let chain = job
                .sampling
                .chain(self.vocab_n, self.n_ctx_slot, constraint);
            slot.active = Some(Active {
                job,
                chain,
                phase: Phase::Prompt,
                prompt_next: keep,
                reused: keep,
                pending: None,
                n_decoded: 0,
                utf8_tail: Vec::new(),
                text: String::new(),
                sent: 0,
                logprobs: Vec::new(),
                t_start: Instant::now(),
                t_prompt_done: None,
            });
            self.shared.processing.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// One batch: every generating slot's pending token, then prompt chunks.
    fn step(&mut self) {
        self.batch.clear();
        self.rows.clear();
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some(a) = &slot.active {
                if let (Phase::Generate, Some(t)) = (a.phase, a.pending) {
                    self.batch
                        .push(t, slot.cached.len() as i32, &[i as SeqId], true);
                    self.rows.push(i);
                }
            }
        }
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let room = self.n_batch - self.batch.len();
            if room == 0 {
                break;
            }
            let Some(a) = &mut slot.active else { continue };
            if a.phase != Phase::Prompt {
                continue;
            }
            let prompt = &a.job.prompt;
            let end = (a.prompt_next + room).min(prompt.len());
            for k in a.prompt_next..end {
                self.batch
                    .push(prompt[k], k as i32, &[i as SeqId], k + 1 == prompt.len());
                self.rows.push(i);
            }
            a.prompt_next = end;
        }
        if self.batch.is_empty() {
            return;
        }
        let n = self.batch.len();
        self.decode_rows(0, n);
        let busy = self.slots.iter().filter(|s| s.active.is_some()).count() as u64;
        let mut m = self.lock_metrics();
        m.n_decode_total += 1;
        m.n_busy_slots_total += busy;
    }

    /// Decodes rows `lo..hi` of the batch (halving on a full cache: cells may be fragmented),
    /// then samples the slots whose rows got logits.
    fn decode_rows(&mut self, lo: usize, hi: usize) {
        self.sub.clear();
        let mut kept = Vec::with_capacity(hi - lo);
        for r in lo..hi {
            let i = self.rows[r];
            if self.slots[i].active.is_none() {
                continue; // failed in an earlier part of this step
            }
            let pos = self.batch.pos.as_ref().expect("built by push")[r];
            self.sub.push(
                self.batch.tokens[r],
                pos,
                &[i as SeqId],
                self.batch.wants_logits(r),
            );
            kept.push(r);
        }
        if kept.is_empty() {
            return;
        }
        match self.ctx.decode(&self.sub) {
            Ok(()) => {
                for (k, &r) in kept.iter().enumerate() {
                    let i = self.rows[r];
                    let tok = self.batch.tokens[r];
                    self.slots[i].cached.push(tok);
                    if let Some(a) = &mut self.slots[i].active {
                        if a.phase == Phase::Generate {
                            a.pending = None;
                        }
                    }
                    if self.batch.wants_logits(r) {
                        self.sample(i, k as i32);
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::ContextFull && hi - lo > 1 => {
                let mid = lo + (hi - lo) / 2;
                self.decode_rows(lo, mid);
                self.decode_rows(mid, hi);
            }
            Err(e) => {
                let mut failed: Vec<usize> = kept.iter().map(|&r| self.rows[r]).collect();
                failed.dedup();
                for i in failed {
                    self.fail(i, &format!("decode failed: {e}"));
                }
            }
        }
    }

    /// Samples slot `i`'s next token from row `row` of the last decode and reports it.
    fn sample(&mut self, i: usize, row: i32) {
        let logits = match self.ctx.logits_ith(row) {
            Ok(l) => l,
            Err(e) => return self.fail(i, &format!("no logits: {e}")),
        };
        let vocab = self.model.vocab();
        let n_ctx_slot = self.n_ctx_slot;
        let cached_len = self.slots[i].cached.len();
        let Some(a) = &mut self.slots[i].active else {
            return;
        };
        let now = Instant::now();
        if a.phase == Phase::Prompt {
            a.phase = Phase::Generate;
            a.t_prompt_done = Some(now);
        }
        let tok = match a.chain.sample(logits) {
            Ok(t) => t,
            Err(e) => return self.fail(i, &format!("sampling failed: {e}")),
        };
        a.n_decoded += 1;
        if let Some(n_top) = a.job.logprobs {
            a.logprobs.push(logprob(logits, tok, n_top, vocab));
        }
        let mut finish = None;
        if vocab.is_eog(tok) {
            finish = Some(FinishReason::Stop);
        } else {
            if let Ok(piece) = vocab.token_to_piece(tok, 0, false) {
                a.utf8_tail.extend_from_slice(&piece);
            }
            let from = a.text.len();
            let new = take_utf8(&mut a.utf8_tail);
            a.text.push_str(&new);
            if let Some(at) = find_stop(&a.text, &a.job.stop, from) {
                a.text.truncate(at);
                a.utf8_tail.clear();
                finish = Some(FinishReason::Stop);
            } else if a.n_decoded >= a.job.max_tokens || cached_len + 1 >= n_ctx_slot {
                finish = Some(FinishReason::Length);
            }
        }
        // Text that cannot be the start of a stop string goes out now.
        let end = if finish.is_some() {
            a.text.push_str(&String::from_utf8_lossy(&a.utf8_tail));
            a.utf8_tail.clear();
            a.text.len()
        } else {
            a.text.len() - partial_stop(&a.text, &a.job.stop)
        };
        if end > a.sent || !a.logprobs.is_empty() {
            let text = a.text[a.sent..end.max(a.sent)].to_string();
            a.sent = end.max(a.sent);
            let logprobs = std::mem::take(&mut a.logprobs);
            let _ = a.job.events.send(Event::Text { text, logprobs });
        }
        match finish {
            None => a.pending = Some(tok),
            Some(reason) => {
                let t_prompt = a.t_prompt_done.unwrap_or(now);
                let f = Finish {
                    reason,
                    prompt_tokens: a.job.prompt.len(),
                    cached_tokens: a.reused,
                    completion_tokens: a.n_decoded,
                    prompt_ms: (t_prompt - a.t_start).as_secs_f64() * 1e3,
                    predicted_ms: (now - t_prompt).as_secs_f64() * 1e3,
                    slot: i,
                };
                let _ = a.job.events.send(Event::Done(f.clone()));
                {
                    let mut m = self.lock_metrics();
                    m.prompt_tokens_total += (f.prompt_tokens - f.cached_tokens) as u64;
                    m.prompt_seconds_total += f.prompt_ms / 1e3;
                    m.tokens_predicted_total += f.completion_tokens as u64;
                    m.tokens_predicted_seconds_total += f.predicted_ms / 1e3;
                    m.requests_finished += 1;
                }
                self.release(i);
            }
        }
    }

    /// Copies the slot states for `/slots`.
    fn publish(&self) {
        let mut out = self.shared.slots.lock().unwrap_or_else(|e| e.into_inner());
        for (info, s) in out.iter_mut().zip(&self.slots) {
            info.n_cached = s.cached.len();
            info.is_processing = s.active.is_some();
            info.task_id = s.active.as_ref().map(|a| a.job.id);
            info.n_prompt = s.active.as_ref().map_or(0, |a| a.job.prompt.len());
            info.n_decoded = s.active.as_ref().map_or(0, |a| a.n_decoded);
        }
    }
}

/// The chosen token's log-probability under the model's distribution (log-softmax of the
/// logits) and the `n_top` most likely tokens.
fn logprob(logits: &[f32], tok: Token, n_top: usize, vocab: &bitnet::Vocab) -> TokenLogprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    let lse = max as f64 + sum.ln();
    let lp = |l: f32| (l as f64 - lse) as f32;
    let piece = |t: Token| vocab.token_to_piece(t, 0, false).unwrap_or_default();
    let top = if n_top > 0 {
        bitnet::sampling::top_k(logits, n_top)
            .into_iter()
            .map(|(t, l)| (t, piece(t), lp(l)))
            .collect()
    } else {
        Vec::new()
    };
    TokenLogprob {
        token: tok,
        text: piece(tok),
        logprob: lp(logits[tok as usize]),
        top,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_held_back_until_complete() {
        let mut b = "é".as_bytes()[..1].to_vec();
        assert_eq!(take_utf8(&mut b), "");
        assert_eq!(b.len(), 1);
        b.extend_from_slice(&"é".as_bytes()[1..]);
        b.extend_from_slice(b"x");
        assert_eq!(take_utf8(&mut b), "éx");
        let mut bad = vec![b'a', 0xff, b'b'];
        assert_eq!(take_utf8(&mut bad), "a\u{fffd}b");
    }

    #[test]
    fn stop_strings_are_found_across_tokens_and_held_back() {
        let stops = vec!["END".to_string(), "\n\n".to_string()];
        assert_eq!(find_stop("abc EN", &stops, 4), None);
        assert_eq!(partial_stop("abc EN", &stops), 2);
        assert_eq!(find_stop("abc END!", &stops, 6), Some(4));
        assert_eq!(partial_stop("abc\n", &stops), 1);
        assert_eq!(partial_stop("abc", &stops), 0);
        assert_eq!(find_stop("é\n\n", &stops, 2), Some(2));
    }
}
