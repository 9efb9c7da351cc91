//! The engine without HTTP: requests decoded together give the texts they give alone (same
//! seed), a follow-up turn reuses its slot's cache, a dropped client frees its slot, stop
//! strings cut the text.

use bitnet::Model;
use bitnet_server::engine::{self, EngineHandle, EngineParams, Event, Finish, Job, SamplingParams};
use std::sync::Arc;
use tokio::sync::mpsc;

fn model() -> Option<Arc<Model>> {
    let p = bitnet_testdata::path("models/tiny-b158-i2_s-q6k.gguf")?;
    Some(Arc::new(Model::load(p).unwrap()))
}

fn start(model: &Arc<Model>, n_parallel: usize) -> EngineHandle {
    engine::start(
        model.clone(),
        &EngineParams {
            n_parallel,
            n_ctx: 256 * n_parallel as u32,
            n_batch: 64,
            n_threads: 2,
        },
    )
    .unwrap()
}

fn job(
    model: &Model,
    id: u64,
    text: &str,
    seed: u32,
    n: usize,
    stop: &[&str],
) -> (Job, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let job = Job {
        id,
        prompt: model.vocab().tokenize(text, true, false).unwrap(),
        sampling: SamplingParams {
            temperature: 0.9,
            top_k: 40,
            seed: Some(seed),
            ..Default::default()
        },
        constraint: None,
        stop: stop.iter().map(|s| s.to_string()).collect(),
        max_tokens: n,
        logprobs: None,
        events: tx,
    };
    (job, rx)
}

fn collect(rx: &mut mpsc::UnboundedReceiver<Event>) -> (String, Finish) {
    let mut text = String::new();
    loop {
        match rx.blocking_recv().expect("engine dropped the request") {
            Event::Text { text: t, .. } => text += &t,
            Event::Done(f) => return (text, f),
            Event::Error { message } => panic!("engine error: {message}"),
        }
    }
}

const PROMPTS: [&str; 6] = [
    "The quick brown fox",
    "Once upon a time, in a land far away",
    "1 2 3 4",
    "Hello",
    "A much longer prompt that takes a few more tokens than the others do, to mix chunk sizes",
    "Why?",
];

#[test]
fn batched_requests_equal_their_solo_runs() {
    let Some(model) = model() else { return };
    let solo_engine = start(&model, 1);
    let solo: Vec<String> = PROMPTS
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (j, mut rx) = job(&model, i as u64, p, 7 + i as u32, 12, &[]);
            solo_engine.submit(j, 8).map_err(|_| "queue").unwrap();
            collect(&mut rx).0
        })
        .collect();
    solo_engine.shutdown();

    let engine = start(&model, 4);
    let mut rxs: Vec<_> = PROMPTS
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (j, rx) = job(&model, i as u64, p, 7 + i as u32, 12, &[]);
            engine.submit(j, 8).map_err(|_| "queue").unwrap();
            rx
        })
        .collect();
    for (i, rx) in rxs.iter_mut().enumerate() {
        let (text, f) = collect(rx);
        assert_eq!(text, solo[i], "request {i}");
        assert_eq!(f.completion_tokens, 12);
    }
    engine.shutdown();
}

#[test]
fn follow_up_reuses_the_cache_and_disconnect_frees_the_slot() {
    let Some(model) = model() else { return };
    let engine = start(&model, 2);
    let (j, mut rx) = job(&model, 1, "Once upon a time", 1, 6, &[]);
    engine.submit(j, 8).map_err(|_| "queue").unwrap();
    let (first, f) = collect(&mut rx);
    assert_eq!(f.cached_tokens, 0);
    // The next turn starts with the first prompt and its answer: only the rest is evaluated.
    let follow = format!("Once upon a time{first} and then");
    let (j, mut rx) = job(&model, 2, &follow, 1, 6, &[]);
    let n_prompt = j.prompt.len();
    engine.submit(j, 8).map_err(|_| "queue").unwrap();
    let (_, f) = collect(&mut rx);
    assert!(
        f.cached_tokens >= 5,
        "cached {} of {n_prompt}",
        f.cached_tokens
    );

    // A client that goes away: its slot is free again almost at once.
    let (j, rx) = job(&model, 3, "Hello", 1, 200, &[]);
    engine.submit(j, 8).map_err(|_| "queue").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    drop(rx);
    let t = std::time::Instant::now();
    while engine
        .shared
        .slots
        .lock()
        .unwrap()
        .iter()
        .any(|s| s.is_processing)
    {
        assert!(t.elapsed().as_secs() < 10, "the slot was not freed");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(engine.shared.metrics.lock().unwrap().requests_cancelled, 1);
    engine.shutdown();
}

#[test]
fn stop_strings_cut_the_text() {
    let Some(model) = model() else { return };
    let engine = start(&model, 1);
    let (j, mut rx) = job(&model, 1, "The quick brown fox", 3, 16, &[]);
    engine.submit(j, 8).map_err(|_| "queue").unwrap();
    let (free, _) = collect(&mut rx);
    let mid = free.char_indices().nth(free.chars().count() / 2).unwrap().0;
    let stop: String = free[mid..].chars().take(2).collect();
    let (j, mut rx) = job(&model, 2, "The quick brown fox", 3, 16, &[&stop]);
    engine.submit(j, 8).map_err(|_| "queue").unwrap();
    let (cut, f) = collect(&mut rx);
    assert_eq!(cut, free[..free.find(&stop).unwrap()]);
    assert_eq!(f.reason, engine::FinishReason::Stop);
    engine.shutdown();
}

#[test]
fn a_full_queue_refuses() {
    let Some(model) = model() else { return };
    let engine = start(&model, 1);
    let (a, _ra) = job(&model, 1, "Hello", 1, 100, &[]);
    let (b, _rb) = job(&model, 2, "Hello", 1, 100, &[]);
    engine.submit(a, 1).map_err(|_| "queue").unwrap();
    // max_queue counts requests not yet in a slot: with 0 allowed, nothing more is taken.
    assert!(engine.submit(b, 0).is_err());
    engine.shutdown();
}
