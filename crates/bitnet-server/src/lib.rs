//! `bitnet serve`: an OpenAI-compatible HTTP server on the bitnet Rust API.
//!
//! - [`engine`]: one thread owns the model's [`bitnet::Context`] and runs continuous batching
//!   over N slots (one sequence each), with batch-invariant arithmetic.
//! - [`http`]: axum routes (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/v1/models`,
//!   `/health`, `/tokenize`, `/detokenize`, `/props`, `/slots`, `/metrics`), API-key check,
//!   limits, OpenAI-shaped errors, server-sent events.
//! - [`api`]: request bodies and their validation; [`template`]: chat templates; [`embed`]: the
//!   embeddings context and its thread.
//!
//! See `docs/server.md`.

pub mod api;
pub mod embed;
pub mod engine;
pub mod grammar;
pub mod http;
pub mod template;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Everything `bitnet serve` is told on its command line.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub model_path: String,
    pub host: String,
    pub port: u16,
    pub api_key: Option<String>,
    pub parallel: usize,
    /// Total KV cells shared by the slots; 0 = the model's training context.
    pub n_ctx: u32,
    pub n_batch: u32,
    pub threads: i32,
    pub chat_template: Option<String>,
    pub alias: Option<String>,
    pub max_body_bytes: usize,
    pub max_prompt_tokens: usize,
    pub max_tokens_limit: usize,
    pub max_queue: usize,
    /// Pooling of `/v1/embeddings` (`None` = the model's, else MEAN); see `embed.rs`.
    pub pooling: Option<bitnet::PoolingType>,
    /// `--no-embeddings`: no embeddings context (`/v1/embeddings` answers 404).
    pub no_embeddings: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            model_path: String::new(),
            host: "127.0.0.1".into(),
            port: 8080,
            api_key: None,
            parallel: 4,
            n_ctx: 0,
            n_batch: 512,
            threads: 0,
            chat_template: None,
            alias: None,
            max_body_bytes: 4 << 20,
            max_prompt_tokens: usize::MAX,
            max_tokens_limit: 8192,
            max_queue: 64,
            pooling: None,
            no_embeddings: false,
        }
    }
}

pub const HELP: &str = "usage: bitnet serve -m MODEL [OPTIONS]

An OpenAI-compatible HTTP server (chat/completions, completions, embeddings, models, tokenize,
detokenize, props, slots, metrics, health) with continuous batching over --parallel slots.

options:
  -m, --model FILE          GGUF model (required)
  --host HOST               address to listen on (default 127.0.0.1; 0.0.0.0 for all)
  --port PORT               TCP port (default 8080; 0 = any free port, printed at start)
  --api-key KEY             require `Authorization: Bearer KEY` on every endpoint but /health
                            (also read from BITNET_API_KEY)
  -np, --parallel N         slots decoded together (default 4, at most 64)
  -c, --ctx-size N          KV cells shared by all slots; each slot gets N / parallel
                            (default: the model's training context, as llama-server)
  -b, --batch-size N        most tokens decoded in one step (default 512)
  -t, --threads N           threads (default: all cores)
  --chat-template NAME      a built-in template (chatml, llama3, llama2, bitnet, ... as llama.cpp's;
                            default: recognised from the GGUF, else chatml)
  --alias NAME              model id shown by /v1/models (default: the file name)
  --max-body BYTES          largest request body (default 4194304)
  --max-prompt N            most prompt tokens (default: a slot's context - 1)
  --max-tokens-limit N      largest max_tokens a request may ask for (default 8192)
  --max-queue N             requests waiting for a slot before 429 (default 64)
  --pooling TYPE            /v1/embeddings pooling: mean, cls or last (default: the model's,
                            else mean); inputs are embedded in a context of their own, at most
                            --batch-size tokens each, normalized to unit length
  --no-embeddings           no embeddings context (/v1/embeddings answers 404)";

fn value<T: std::str::FromStr>(flag: &str, v: Option<&String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
    v.parse().map_err(|_| format!("{flag}: cannot read {v:?}"))
}

/// Parses `bitnet serve`'s options (without the subcommand). `Ok(None)` = help was asked for.
pub fn parse_args(argv: &[String]) -> Result<Option<ServerConfig>, String> {
    let mut c = ServerConfig {
        api_key: std::env::var("BITNET_API_KEY")
            .ok()
            .filter(|k| !k.is_empty()),
        ..Default::default()
    };
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "-m" | "--model" => c.model_path = value(a, it.next())?,
            "--host" => c.host = value(a, it.next())?,
            "--port" => c.port = value(a, it.next())?,
            "--api-key" => c.api_key = Some(value(a, it.next())?),
            "-np" | "--parallel" => c.parallel = value(a, it.next())?,
            "-c" | "--ctx-size" => c.n_ctx = value(a, it.next())?,
            "-b" | "--batch-size" => c.n_batch = value(a, it.next())?,
            "-t" | "--threads" => c.threads = value(a, it.next())?,
            "--chat-template" => c.chat_template = Some(value(a, it.next())?),
            "--alias" => c.alias = Some(value(a, it.next())?),
            "--max-body" => c.max_body_bytes = value(a, it.next())?,
            "--max-prompt" => c.max_prompt_tokens = value(a, it.next())?,
            "--max-tokens-limit" => c.max_tokens_limit = value(a, it.next())?,
            "--max-queue" => c.max_queue = value(a, it.next())?,
            "--pooling" => {
                let v: String = value(a, it.next())?;
                c.pooling = Some(match v.as_str() {
                    "mean" => bitnet::PoolingType::Mean,
                    "cls" => bitnet::PoolingType::Cls,
                    "last" => bitnet::PoolingType::Last,
                    _ => return Err(format!("--pooling {v:?} must be mean, cls or last")),
                });
            }
            "--no-embeddings" => c.no_embeddings = true,
            other => return Err(format!("unknown option {other:?} (see --help)")),
        }
    }
    if c.model_path.is_empty() {
        return Err("a model is required: -m MODEL".into());
    }
    if !(1..=64).contains(&c.parallel) {
        return Err(format!("--parallel {} must be in 1..=64", c.parallel));
    }
    if c.max_tokens_limit == 0 || c.max_body_bytes == 0 {
        return Err("--max-tokens-limit and --max-body must be positive".into());
    }
    if let Some(t) = &c.chat_template {
        if bitnet::chat::Template::from_name(t).is_none() {
            return Err(format!(
                "unknown chat template {t:?}; built-in: {}",
                bitnet::chat::builtin_templates()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(Some(c))
}

/// `bitnet serve ARGS`: returns the process exit code.
pub fn main(argv: &[String]) -> i32 {
    let cfg = match parse_args(argv) {
        Ok(Some(c)) => c,
        Ok(None) => {
            println!("{HELP}");
            return 0;
        }
        Err(e) => {
            eprintln!("bitnet serve: {e}");
            return 2;
        }
    };
    match serve(cfg) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("bitnet serve: error: {e}");
            1
        }
    }
}

/// Loads the model, starts the engine, serves until SIGINT / SIGTERM, then stops cleanly:
/// in-flight requests end with an error event, the engine thread is joined.
pub fn serve(cfg: ServerConfig) -> Result<(), String> {
    // A client that disconnects must give the writer EPIPE, not kill the process (the `bitnet`
    // tool restores SIGPIPE's default for pipes at start-up).
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to "ignore" is a plain libc call with no memory
    // effects; it happens before this function starts any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let model = Arc::new(bitnet::Model::load(&cfg.model_path).map_err(|e| e.to_string())?);
    let n_ctx = if cfg.n_ctx == 0 {
        u32::try_from(model.config().n_ctx_train).unwrap_or(u32::MAX)
    } else {
        cfg.n_ctx
    };
    if (n_ctx as usize) < 32 * cfg.parallel {
        return Err(format!(
            "--ctx-size {n_ctx} leaves fewer than 32 tokens to each of {} slots",
            cfg.parallel
        ));
    }
    let engine = engine::start(
        model.clone(),
        &engine::EngineParams {
            n_parallel: cfg.parallel,
            n_ctx,
            n_batch: cfg.n_batch,
            n_threads: cfg.threads,
        },
    )
    .map_err(|e| e.to_string())?;
    let embedder = if cfg.no_embeddings {
        None
    } else {
        let p = embed::EmbedParams {
            pooling: cfg
                .pooling
                .unwrap_or_else(|| embed::default_pooling(&model)),
            n_tokens: cfg.n_batch,
            n_threads: cfg.threads,
        };
        Some(embed::Embedder::start(model.clone(), &p).map_err(|e| e.to_string())?)
    };
    let template = template::ChatTemplate::resolve(&model, cfg.chat_template.as_deref())?;
    let model_id = cfg.alias.clone().unwrap_or_else(|| {
        std::path::Path::new(&cfg.model_path)
            .file_name()
            .map_or_else(
                || cfg.model_path.clone(),
                |f| f.to_string_lossy().into_owned(),
            )
    });
    let app = Arc::new(http::App {
        grammars: grammar::Grammars::new(model.clone()),
        model,
        engine,
        embedder,
        cfg: cfg.clone(),
        model_id,
        template,
        next_id: AtomicU64::new(1),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let result =
        rt.block_on(async {
            let addr = format!("{}:{}", cfg.host, cfg.port);
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            let local = listener.local_addr().map_err(|e| e.to_string())?;
            let sh = &app.engine.shared;
            eprintln!(
            "bitnet serve: listening on http://{local} ({} slots of {} tokens, template {}, {})",
            cfg.parallel,
            sh.n_ctx_slot,
            app.template.name(),
            if cfg.api_key.is_some() { "API key required" } else { "no API key" }
        );
            let stopper = app.clone();
            axum::serve(listener, http::router(app.clone()))
                .with_graceful_shutdown(async move {
                    shutdown_signal().await;
                    eprintln!("bitnet serve: shutting down");
                    // Ends in-flight requests (their streams get an error event and close).
                    let _ = tokio::task::spawn_blocking(move || stopper.engine.shutdown()).await;
                })
                .await
                .map_err(|e| format!("server error: {e}"))
        });
    app.engine.shutdown();
    // Connections still open (idle keep-alive ones) do not hold the process.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
