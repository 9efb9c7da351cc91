//! Routes, authentication, limits, OpenAI-shaped errors and server-sent events.

use crate::api::{
    self, BadParam, ChatRequest, CompletionRequest, DetokenizeRequest, Prompt, TokenizeRequest,
};
use crate::engine::{EngineHandle, Event, Finish, Job, TokenLogprob};
use crate::template::{ChatTemplate, Message};
use crate::ServerConfig;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bitnet::Model;
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Everything a handler needs.
pub struct App {
    pub model: Arc<Model>,
    pub grammars: crate::grammar::Grammars,
    pub engine: EngineHandle,
    /// The embeddings context and its thread (`None` with `--no-embeddings`).
    pub embedder: Option<crate::embed::Embedder>,
    pub cfg: ServerConfig,
    pub model_id: String,
    pub template: ChatTemplate,
    pub next_id: AtomicU64,
    pub created: u64,
}

/// An error answered as `{"error": {message, type, param, code}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    param: Option<&'static str>,
    code: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            param: None,
            code: None,
        }
    }
    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }
    fn code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }
    fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

impl From<BadParam> for ApiError {
    fn from(b: BadParam) -> ApiError {
        ApiError {
            param: b.param,
            ..ApiError::bad(b.message)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn router(app: Arc<App>) -> Router {
    let limit = app.cfg.max_body_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/v1/health", get(health))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/embeddings", post(embeddings))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/props", get(props))
        .route("/slots", get(slots))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), auth))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found_error", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        "method not allowed on this endpoint",
    )
}

/// With `--api-key`, every endpoint but `/health` needs `Authorization: Bearer KEY`.
async fn auth(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if let Some(key) = &app.cfg.api_key {
        let path = req.uri().path();
        if path != "/health" && path != "/v1/health" {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), key.as_bytes())) {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "authentication_error",
                    "invalid or missing API key",
                )
                .code("invalid_api_key")
                .into_response();
            }
        }
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The JSON body, or the 400 / 413 explaining why not.
fn parse<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request body too large",
            )
            .code("request_too_large")
        } else {
            ApiError::bad(format!("cannot read the request body: {e}"))
        }
    })?;
    serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("invalid JSON body: {e}")))
}

async fn health(State(app): State<Arc<App>>) -> Response {
    if app.engine.is_alive() {
        Json(json!({"status": "ok"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "error", "message": "the engine stopped"})),
        )
            .into_response()
    }
}

async fn models(State(app): State<Arc<App>>) -> Json<Value> {
    let c = app.model.config();
    Json(json!({
        "object": "list",
        "data": [{
            "id": app.model_id,
            "object": "model",
            "created": app.created,
            "owned_by": "bitnet",
            "meta": {"n_vocab": c.n_vocab, "n_ctx_train": c.n_ctx_train, "n_embd": c.n_embd},
        }]
    }))
}

async fn props(State(app): State<Arc<App>>) -> Json<Value> {
    let sh = &app.engine.shared;
    Json(json!({
        "default_generation_settings": {"n_ctx": sh.n_ctx_slot, "temperature": 1.0, "top_p": 1.0, "top_k": api::DEFAULT_TOP_K, "min_p": 0.0},
        "total_slots": app.cfg.parallel,
        "n_ctx": sh.n_ctx,
        "model_path": app.cfg.model_path,
        "model_alias": app.model_id,
        "chat_template": app.template.name(),
        "batch_invariant": true,
        "build_info": format!("bitnet-server {}", env!("CARGO_PKG_VERSION")),
    }))
}

async fn slots(State(app): State<Arc<App>>) -> Json<Value> {
    let s = app
        .engine
        .shared
        .slots
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Json(Value::Array(
        s.iter()
            .map(|s| {
                json!({"id": s.id, "n_ctx": s.n_ctx, "is_processing": s.is_processing, "id_task": s.task_id,
                       "n_cached": s.n_cached, "n_prompt_tokens": s.n_prompt, "n_decoded": s.n_decoded})
            })
            .collect(),
    ))
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let sh = &app.engine.shared;
    let m = sh.metrics.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut out = String::new();
    let mut put = |name: &str, kind: &str, help: &str, v: f64| {
        out += &format!(
            "# HELP bitnet_{name} {help}\n# TYPE bitnet_{name} {kind}\nbitnet_{name} {v}\n"
        );
    };
    put(
        "prompt_tokens_total",
        "counter",
        "Prompt tokens evaluated (cached ones not counted).",
        m.prompt_tokens_total as f64,
    );
    put(
        "prompt_seconds_total",
        "counter",
        "Time spent on prompts.",
        m.prompt_seconds_total,
    );
    put(
        "tokens_predicted_total",
        "counter",
        "Tokens generated.",
        m.tokens_predicted_total as f64,
    );
    put(
        "tokens_predicted_seconds_total",
        "counter",
        "Time spent generating.",
        m.tokens_predicted_seconds_total,
    );
    put(
        "n_decode_total",
        "counter",
        "Batches decoded.",
        m.n_decode_total as f64,
    );
    put(
        "n_busy_slots_per_decode",
        "gauge",
        "Average busy slots per decoded batch.",
        if m.n_decode_total > 0 {
            m.n_busy_slots_total as f64 / m.n_decode_total as f64
        } else {
            0.0
        },
    );
    put(
        "requests_finished_total",
        "counter",
        "Requests completed.",
        m.requests_finished as f64,
    );
    put(
        "requests_cancelled_total",
        "counter",
        "Requests whose client went away.",
        m.requests_cancelled as f64,
    );
    put(
        "requests_processing",
        "gauge",
        "Requests in a slot.",
        sh.processing.load(Ordering::SeqCst) as f64,
    );
    put(
        "requests_deferred",
        "gauge",
        "Requests waiting for a slot.",
        sh.queued.load(Ordering::SeqCst) as f64,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

async fn tokenize(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let r: TokenizeRequest = parse(body)?;
    let v = app.model.vocab();
    let toks = v
        .tokenize(&r.content, r.add_special, true)
        .map_err(|e| ApiError::bad(format!("cannot tokenize: {e}")))?;
    let tokens: Vec<Value> = if r.with_pieces {
        toks.iter()
            .map(|&t| {
                let p = v.token_to_piece(t, 0, true).unwrap_or_default();
                match String::from_utf8(p) {
                    Ok(s) => json!({"id": t, "piece": s}),
                    Err(e) => json!({"id": t, "piece": e.into_bytes()}),
                }
            })
            .collect()
    } else {
        toks.iter().map(|&t| json!(t)).collect()
    };
    Ok(Json(json!({ "tokens": tokens })).into_response())
}

fn check_tokens(app: &App, tokens: &[i64]) -> Result<Vec<i32>, ApiError> {
    let n = app.model.vocab().n_tokens() as i64;
    tokens
        .iter()
        .map(|&t| {
            if (0..n).contains(&t) {
                Ok(t as i32)
            } else {
                Err(ApiError::bad(format!(
                    "token id {t} is outside the vocabulary (0..{n})"
                )))
            }
        })
        .collect()
}

async fn detokenize(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let r: DetokenizeRequest = parse(body)?;
    let toks = check_tokens(&app, &r.tokens)?;
    let v = app.model.vocab();
    let mut bytes = Vec::new();
    for t in toks {
        bytes.extend(v.token_to_piece(t, 0, false).unwrap_or_default());
    }
    Ok(Json(json!({"content": String::from_utf8_lossy(&bytes)})).into_response())
}

async fn embeddings(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    use crate::embed::{base64_f32, EmbedError, EmbeddingsRequest, MAX_INPUTS};
    let r: EmbeddingsRequest = parse(body)?;
    let Some(emb) = &app.embedder else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "embeddings are turned off on this server (--no-embeddings)",
        ));
    };
    let bad = |message: String, param: &'static str| {
        ApiError::from(BadParam {
            message,
            param: Some(param),
        })
    };
    let base64 = match r.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(bad(
                format!("encoding_format {other:?} must be \"float\" or \"base64\""),
                "encoding_format",
            ))
        }
    };
    if let Some(d) = r.dimensions {
        if d != emb.n_embd as i64 {
            return Err(bad(
                format!("dimensions {d}: this model's embeddings have {} dimensions (they cannot be shortened)", emb.n_embd),
                "dimensions",
            ));
        }
    }
    let tokenize = |s: &str| {
        if s.is_empty() {
            return Err(bad("an input string is empty".into(), "input"));
        }
        app.model
            .vocab()
            .tokenize(s, true, true)
            .map_err(|e| ApiError::bad(format!("cannot tokenize the input: {e}")))
    };
    let inputs: Vec<Vec<i32>> = match &r.input {
        Prompt::Text(s) => vec![tokenize(s)?],
        Prompt::Texts(v) => v.iter().map(|s| tokenize(s)).collect::<Result<_, _>>()?,
        Prompt::Tokens(t) => vec![check_tokens(&app, t)?],
        Prompt::TokenLists(v) => v
            .iter()
            .map(|t| check_tokens(&app, t))
            .collect::<Result<_, _>>()?,
    };
    if inputs.is_empty() || inputs.len() > MAX_INPUTS {
        return Err(bad(
            format!("input has {} items; give 1 to {MAX_INPUTS}", inputs.len()),
            "input",
        ));
    }
    let max = emb.n_tokens.min(app.cfg.max_prompt_tokens);
    for (i, t) in inputs.iter().enumerate() {
        if t.is_empty() {
            return Err(bad(format!("input {i} has no tokens"), "input"));
        }
        if t.len() > max {
            return Err(bad(
                format!(
                    "input {i} has {} tokens; this server embeds at most {max} per input",
                    t.len()
                ),
                "input",
            )
            .code("context_length_exceeded"));
        }
    }
    let n_tokens: usize = inputs.iter().map(Vec::len).sum();
    let vectors = emb
        .embed(inputs, app.cfg.max_queue)
        .await
        .map_err(|e| match e {
            EmbedError::Busy => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                format!(
                    "the server is busy: {} embeddings requests are already waiting",
                    app.cfg.max_queue
                ),
            )
            .code("queue_full"),
            EmbedError::Stopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "the embeddings thread stopped",
            ),
            EmbedError::Failed(m) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", m)
            }
        })?;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let e = if base64 {
                json!(base64_f32(v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": e})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": app.model_id,
        "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
    }))
    .into_response())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Text,
}

async fn chat(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let r: ChatRequest = parse(body)?;
    if r.messages.is_empty() {
        return Err(BadParam {
            message: "messages must not be empty".into(),
            param: Some("messages"),
        }
        .into());
    }
    let mut msgs = Vec::with_capacity(r.messages.len());
    for m in &r.messages {
        let role = match m.role.as_str() {
            "developer" => "system",
            "system" | "user" | "assistant" | "tool" => m.role.as_str(),
            other => return Err(ApiError::bad(format!("unknown message role {other:?}"))),
        };
        msgs.push(Message {
            role: role.to_string(),
            content: m.text()?,
        });
    }
    let text = app.template.apply(&msgs);
    let prompt = app
        .model
        .vocab()
        .tokenize(&text, true, true)
        .map_err(|e| ApiError::bad(format!("cannot tokenize the messages: {e}")))?;
    generate(app, Kind::Chat, &r.common, prompt).await
}

async fn completions(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let r: CompletionRequest = parse(body)?;
    let tokenize = |s: &str| {
        app.model
            .vocab()
            .tokenize(s, true, true)
            .map_err(|e| ApiError::bad(format!("cannot tokenize the prompt: {e}")))
    };
    let prompt = match &r.prompt {
        Prompt::Text(s) => tokenize(s)?,
        Prompt::Texts(v) if v.len() == 1 => tokenize(&v[0])?,
        Prompt::Tokens(t) => check_tokens(&app, t)?,
        Prompt::TokenLists(v) if v.len() == 1 => check_tokens(&app, &v[0])?,
        _ => return Err(ApiError::bad("only one prompt per request is supported")),
    };
    generate(app, Kind::Text, &r.common, prompt).await
}

/// What the response of one request is built from.
struct Ctx {
    app: Arc<App>,
    kind: Kind,
    id: String,
    created: u64,
    logprobs: bool,
}

async fn generate(app: Arc<App>, kind: Kind, common: &api::Common, prompt: Vec<i32>) -> ApiResult {
    let sh = &app.engine.shared;
    let max_prompt = app
        .cfg
        .max_prompt_tokens
        .min(sh.n_ctx_slot.saturating_sub(1));
    if prompt.is_empty() {
        return Err(ApiError::bad("the prompt is empty"));
    }
    if prompt.len() > max_prompt {
        return Err(ApiError::bad(format!(
            "the prompt has {} tokens; this server accepts at most {max_prompt}",
            prompt.len()
        ))
        .code("context_length_exceeded"));
    }
    let n_vocab = app.model.vocab().n_tokens();
    let g = common.generation(kind == Kind::Chat, app.cfg.max_tokens_limit, n_vocab)?;
    let gbnf = match (&g.response_format, &common.grammar) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad(
                "give either response_format or grammar, not both",
            ))
        }
        (None, Some(text)) => Some(text.clone()),
        (Some((kind, _)), None) if kind == "json_object" => {
            Some(crate::grammar::JSON_OBJECT_GBNF.to_string())
        }
        (Some((_, schema)), None) => {
            let schema = schema.as_ref().map(|v| v.to_string()).unwrap_or_default();
            let gbnf = bitnet::sampling::json_schema::to_gbnf(&schema).map_err(|e| BadParam {
                message: format!("response_format json_schema: {e}"),
                param: Some("response_format"),
            })?;
            Some(gbnf)
        }
        (None, None) => None,
    };
    let constraint: Option<Box<dyn bitnet::sampling::Sampler>> = match gbnf {
        None => None,
        Some(text) => {
            let app2 = app.clone();
            let s = tokio::task::spawn_blocking(move || app2.grammars.sampler(&text))
                .await
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        e.to_string(),
                    )
                })?
                .map_err(|e| BadParam {
                    message: format!("grammar: {e}"),
                    param: Some("grammar"),
                })?;
            Some(Box::new(s))
        }
    };
    let room = sh.n_ctx_slot - prompt.len();
    let max_tokens = g.max_tokens.unwrap_or(room).min(app.cfg.max_tokens_limit);
    let seq = app.next_id.fetch_add(1, Ordering::SeqCst);
    let (tx, rx) = mpsc::unbounded_channel();
    let job = Job {
        id: seq,
        prompt,
        sampling: g.sampling,
        constraint,
        stop: g.stop,
        max_tokens,
        logprobs: g.logprobs,
        events: tx,
    };
    if !app.engine.is_alive() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the engine stopped",
        ));
    }
    if app.engine.submit(job, app.cfg.max_queue).is_err() {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            format!(
                "the server is busy: {} requests are already waiting",
                app.cfg.max_queue
            ),
        )
        .code("queue_full"));
    }
    let ctx = Ctx {
        app: app.clone(),
        kind,
        id: format!(
            "{}-{seq}",
            if kind == Kind::Chat {
                "chatcmpl"
            } else {
                "cmpl"
            }
        ),
        created: now(),
        logprobs: g.logprobs.is_some(),
    };
    if g.stream {
        Ok(stream_response(ctx, rx, g.include_usage).into_response())
    } else {
        collect_response(ctx, rx).await
    }
}

fn bytes_json(b: &[u8]) -> Value {
    json!(b)
}

/// Chat logprobs (`{"content": [...]}`) or completion logprobs (parallel lists).
fn logprobs_json(kind: Kind, lps: &[TokenLogprob]) -> Value {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match kind {
        Kind::Chat => json!({"content": lps.iter().map(|l| json!({
            "token": text(&l.text), "logprob": l.logprob, "bytes": bytes_json(&l.text),
            "top_logprobs": l.top.iter().map(|(_, b, lp)| json!({"token": text(b), "logprob": lp, "bytes": bytes_json(b)})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>()}),
        Kind::Text => json!({
            "tokens": lps.iter().map(|l| text(&l.text)).collect::<Vec<_>>(),
            "token_logprobs": lps.iter().map(|l| l.logprob).collect::<Vec<_>>(),
            "top_logprobs": lps.iter().map(|l| {
                let mut m = serde_json::Map::new();
                for (_, b, lp) in &l.top { m.insert(text(b), json!(lp)); }
                Value::Object(m)
            }).collect::<Vec<_>>(),
        }),
    }
}

fn usage_json(f: &Finish) -> Value {
    json!({
        "prompt_tokens": f.prompt_tokens,
        "completion_tokens": f.completion_tokens,
        "total_tokens": f.prompt_tokens + f.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": f.cached_tokens},
    })
}

fn timings_json(f: &Finish) -> Value {
    let per_s = |n: usize, ms: f64| if ms > 0.0 { n as f64 * 1e3 / ms } else { 0.0 };
    let evaluated = f.prompt_tokens - f.cached_tokens;
    json!({
        "prompt_n": evaluated, "prompt_ms": f.prompt_ms, "prompt_per_second": per_s(evaluated, f.prompt_ms),
        "predicted_n": f.completion_tokens, "predicted_ms": f.predicted_ms,
        "predicted_per_second": per_s(f.completion_tokens, f.predicted_ms), "cache_n": f.cached_tokens,
    })
}

async fn collect_response(ctx: Ctx, mut rx: mpsc::UnboundedReceiver<Event>) -> ApiResult {
    let mut text = String::new();
    let mut lps = Vec::new();
    let fin = loop {
        match rx.recv().await {
            Some(Event::Text { text: t, logprobs }) => {
                text += &t;
                lps.extend(logprobs);
            }
            Some(Event::Done(f)) => break f,
            Some(Event::Error { message }) => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    message,
                ))
            }
            None => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the request was dropped",
                ))
            }
        }
    };
    let lp = if ctx.logprobs {
        logprobs_json(ctx.kind, &lps)
    } else {
        Value::Null
    };
    let choice = match ctx.kind {
        Kind::Chat => json!({"index": 0, "message": {"role": "assistant", "content": text},
                             "logprobs": lp, "finish_reason": fin.reason.as_str()}),
        Kind::Text => {
            json!({"index": 0, "text": text, "logprobs": lp, "finish_reason": fin.reason.as_str()})
        }
    };
    Ok(Json(json!({
        "id": ctx.id,
        "object": if ctx.kind == Kind::Chat { "chat.completion" } else { "text_completion" },
        "created": ctx.created,
        "model": ctx.app.model_id,
        "system_fingerprint": format!("bitnet-{}", env!("CARGO_PKG_VERSION")),
        "choices": [choice],
        "usage": usage_json(&fin),
        "timings": timings_json(&fin),
    }))
    .into_response())
}

impl Ctx {
    fn chunk(&self, delta: Value, finish: Option<&str>, lps: &[TokenLogprob]) -> Value {
        let lp = if self.logprobs && !lps.is_empty() {
            logprobs_json(self.kind, lps)
        } else {
            Value::Null
        };
        let choice = match self.kind {
            Kind::Chat => {
                json!({"index": 0, "delta": delta, "logprobs": lp, "finish_reason": finish})
            }
            Kind::Text => {
                json!({"index": 0, "text": delta.get("content").cloned().unwrap_or(json!("")),
                                 "logprobs": lp, "finish_reason": finish})
            }
        };
        json!({
            "id": self.id,
            "object": if self.kind == Kind::Chat { "chat.completion.chunk" } else { "text_completion" },
            "created": self.created,
            "model": self.app.model_id,
            "system_fingerprint": format!("bitnet-{}", env!("CARGO_PKG_VERSION")),
            "choices": [choice],
        })
    }
}

fn sse(v: &Value) -> SseEvent {
    SseEvent::default().data(v.to_string())
}

/// Server-sent events: a role chunk (chat), one chunk per piece of text, the finish chunk, a
/// usage chunk when asked for, then `[DONE]`. When the client goes away the stream is dropped,
/// which closes the job's channel and frees its slot.
fn stream_response(
    ctx: Ctx,
    rx: mpsc::UnboundedReceiver<Event>,
    include_usage: bool,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let first = if ctx.kind == Kind::Chat {
        vec![sse(&ctx.chunk(
            json!({"role": "assistant", "content": ""}),
            None,
            &[],
        ))]
    } else {
        Vec::new()
    };
    let state = (ctx, rx, false);
    let body = stream::unfold(state, move |(ctx, mut rx, done)| async move {
        if done {
            return None;
        }
        let (events, done) = match rx.recv().await {
            Some(Event::Text { text, logprobs }) => (
                vec![sse(&ctx.chunk(json!({"content": text}), None, &logprobs))],
                false,
            ),
            Some(Event::Done(f)) => {
                let mut last = ctx.chunk(json!({}), Some(f.reason.as_str()), &[]);
                last["timings"] = timings_json(&f);
                let mut v = vec![sse(&last)];
                if include_usage {
                    let mut u = ctx.chunk(json!({}), None, &[]);
                    u["choices"] = json!([]);
                    u["usage"] = usage_json(&f);
                    v.push(sse(&u));
                }
                v.push(SseEvent::default().data("[DONE]"));
                (v, true)
            }
            Some(Event::Error { message }) => {
                let e = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message);
                (vec![sse(&e.body())], true)
            }
            None => return None,
        };
        Some((stream::iter(events), (ctx, rx, done)))
    })
    .flatten();
    Sse::new(stream::iter(first).chain(body).map(Ok))
}
