//! OpenAI request bodies (the fields this server reads; others are ignored) and their checks.

use crate::engine::SamplingParams;
use bitnet::sampling::LogitBias;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

/// `top_k` when a request does not say (llama-server's default): sampling then sorts 40
/// candidates, not the whole vocabulary. `top_k: 0` samples from all tokens.
pub const DEFAULT_TOP_K: i32 = 40;

/// A string or a list of strings (`stop`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// Parameters shared by chat and text completions.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Common {
    pub model: Option<String>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<i32>,
    pub min_p: Option<f32>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub logit_bias: Option<HashMap<String, f32>>,
    pub stop: Option<OneOrMany>,
    pub n: Option<i64>,
    pub response_format: Option<Value>,
    /// Chat: a bool; completions: the number of alternatives (an integer).
    pub logprobs: Option<Value>,
    pub top_logprobs: Option<i64>,
    pub echo: Option<bool>,
    /// llama-server's extension: a GBNF grammar (root rule `root`) the output must match.
    pub grammar: Option<String>,
}

/// Content of a chat message: text, or a list of parts of which the text ones are used.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Part {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: Option<Content>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    #[serde(flatten)]
    pub common: Common,
}

/// `prompt` of `/v1/completions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<i64>),
    TokenLists(Vec<Vec<i64>>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    pub prompt: Prompt,
    #[serde(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TokenizeRequest {
    pub content: String,
    #[serde(default)]
    pub add_special: bool,
    #[serde(default)]
    pub with_pieces: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DetokenizeRequest {
    pub tokens: Vec<i64>,
}

/// A bad parameter: the message and the parameter's name (400).
#[derive(Debug, Clone)]
pub struct BadParam {
    pub message: String,
    pub param: Option<&'static str>,
}

fn bad(param: &'static str, message: impl Into<String>) -> BadParam {
    BadParam {
        message: message.into(),
        param: Some(param),
    }
}

/// The checked generation settings of a request.
#[derive(Debug, Clone)]
pub struct Generation {
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    /// `None` = until the slot is full.
    pub max_tokens: Option<usize>,
    pub stream: bool,
    pub include_usage: bool,
    pub logprobs: Option<usize>,
    /// `response_format`: `None` for text, else `json_object` / `json_schema` with its schema.
    pub response_format: Option<(String, Option<Value>)>,
}

fn in_range(
    param: &'static str,
    v: Option<f32>,
    lo: f32,
    hi: f32,
    default: f32,
) -> Result<f32, BadParam> {
    match v {
        None => Ok(default),
        Some(x) if x.is_finite() && (lo..=hi).contains(&x) => Ok(x),
        Some(x) => Err(bad(
            param,
            format!("{param} must be between {lo} and {hi}, got {x}"),
        )),
    }
}

impl Common {
    /// Checks the values; `chat` selects the chat form of `logprobs`. `max_tokens_limit` is the
    /// server's cap, `n_vocab` bounds `logit_bias` keys.
    pub fn generation(
        &self,
        chat: bool,
        max_tokens_limit: usize,
        n_vocab: usize,
    ) -> Result<Generation, BadParam> {
        if let Some(n) = self.n {
            if n != 1 {
                return Err(bad("n", "only n = 1 is supported"));
            }
        }
        if self.echo == Some(true) {
            return Err(bad("echo", "echo is not supported"));
        }
        let temperature = in_range("temperature", self.temperature, 0.0, 2.0, 1.0)?;
        let top_p = in_range("top_p", self.top_p, 0.0, 1.0, 1.0)?;
        let min_p = in_range("min_p", self.min_p, 0.0, 1.0, 0.0)?;
        let presence_penalty = in_range("presence_penalty", self.presence_penalty, -2.0, 2.0, 0.0)?;
        let frequency_penalty =
            in_range("frequency_penalty", self.frequency_penalty, -2.0, 2.0, 0.0)?;
        let top_k = match self.top_k {
            Some(k) if k < 0 => return Err(bad("top_k", format!("top_k must be >= 0, got {k}"))),
            k => k.unwrap_or(DEFAULT_TOP_K),
        };
        let seed = match self.seed {
            None | Some(-1) => None,
            Some(s) if (0..u32::MAX as i64).contains(&s) => Some(s as u32),
            Some(s) => {
                return Err(bad(
                    "seed",
                    format!("seed must be in 0..{} (or -1), got {s}", u32::MAX),
                ))
            }
        };
        let max_tokens = match self.max_completion_tokens.or(self.max_tokens) {
            None => None,
            Some(m) if m >= 1 && m as u64 <= max_tokens_limit as u64 => Some(m as usize),
            Some(m) => {
                return Err(bad(
                    if self.max_completion_tokens.is_some() {
                        "max_completion_tokens"
                    } else {
                        "max_tokens"
                    },
                    format!("max_tokens must be in 1..={max_tokens_limit}, got {m}"),
                ))
            }
        };
        let mut logit_bias = Vec::new();
        for (k, &v) in self.logit_bias.iter().flatten() {
            let token = k
                .parse::<i64>()
                .ok()
                .filter(|&t| t >= 0 && (t as u64) < n_vocab as u64)
                .ok_or_else(|| {
                    bad(
                        "logit_bias",
                        format!("logit_bias key {k:?} is not a token id in 0..{n_vocab}"),
                    )
                })?;
            if !v.is_finite() || !(-100.0..=100.0).contains(&v) {
                return Err(bad(
                    "logit_bias",
                    format!("logit_bias value for {k} must be in -100..=100, got {v}"),
                ));
            }
            logit_bias.push(LogitBias {
                token: token as i32,
                bias: v,
            });
        }
        logit_bias.sort_by_key(|b| b.token);
        let stop = match &self.stop {
            None => Vec::new(),
            Some(OneOrMany::One(s)) => vec![s.clone()],
            Some(OneOrMany::Many(v)) => v.clone(),
        };
        if stop.len() > 16 {
            return Err(bad("stop", "at most 16 stop strings"));
        }
        let top = match self.top_logprobs {
            None => 0,
            Some(n) if (0..=20).contains(&n) => n as usize,
            Some(n) => {
                return Err(bad(
                    "top_logprobs",
                    format!("top_logprobs must be in 0..=20, got {n}"),
                ))
            }
        };
        let logprobs = match (&self.logprobs, chat) {
            (None | Some(Value::Null), _) => None,
            (Some(Value::Bool(b)), true) => b.then_some(top),
            (Some(Value::Number(n)), false) => match n.as_u64() {
                Some(k) if k <= 20 => Some(k as usize),
                _ => return Err(bad("logprobs", "logprobs must be an integer in 0..=20")),
            },
            _ => {
                return Err(bad(
                    "logprobs",
                    if chat {
                        "logprobs must be a boolean"
                    } else {
                        "logprobs must be an integer"
                    },
                ))
            }
        };
        if chat && self.top_logprobs.is_some() && logprobs.is_none() {
            return Err(bad("top_logprobs", "top_logprobs needs logprobs: true"));
        }
        let response_format = match &self.response_format {
            None | Some(Value::Null) => None,
            Some(v) => match v.get("type").and_then(Value::as_str) {
                Some("text") => None,
                Some("json_object") => Some(("json_object".to_string(), v.get("schema").cloned())),
                Some("json_schema") => {
                    let schema = v
                        .get("json_schema")
                        .and_then(|j| j.get("schema"))
                        .cloned()
                        .ok_or_else(|| {
                            bad("response_format", "json_schema needs json_schema.schema")
                        })?;
                    Some(("json_schema".to_string(), Some(schema)))
                }
                _ => {
                    return Err(bad(
                        "response_format",
                        "response_format.type must be text, json_object or json_schema",
                    ))
                }
            },
        };
        Ok(Generation {
            sampling: SamplingParams {
                temperature,
                top_p,
                top_k,
                min_p,
                seed,
                presence_penalty,
                frequency_penalty,
                logit_bias,
            },
            stop,
            max_tokens,
            stream: self.stream.unwrap_or(false),
            include_usage: self
                .stream_options
                .as_ref()
                .is_some_and(|o| o.include_usage),
            logprobs,
            response_format,
        })
    }
}

impl ChatMessage {
    /// The message's text (text parts joined); other part types are refused.
    pub fn text(&self) -> Result<String, BadParam> {
        match &self.content {
            None => Ok(String::new()),
            Some(Content::Text(s)) => Ok(s.clone()),
            Some(Content::Parts(parts)) => {
                let mut out = String::new();
                for p in parts {
                    match (p.kind.as_str(), &p.text) {
                        ("text", Some(t)) => out += t,
                        (k, _) => {
                            return Err(bad(
                                "messages",
                                format!("content part type {k:?} is not supported (text only)"),
                            ))
                        }
                    }
                }
                Ok(out)
            }
        }
    }
}
