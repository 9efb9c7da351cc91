//! Chat templates: the conversation rendered as the prompt text the model was trained on.
//!
//! A GGUF's `tokenizer.chat_template` (Jinja) is recognised by the markers of a few well-known
//! formats, as llama.cpp's `llm_chat_detect_template` does; `--chat-template NAME` picks one by
//! name. Without either, ChatML (llama-server's default).

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// The formats this server renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    ChatMl,
    Llama3,
    Llama2,
    /// BitNet b1.58 2B-4T: `User: ...<|eot_id|>Assistant: `.
    Bitnet,
}

pub const NAMES: &str = "chatml, llama3, llama2, bitnet";

impl Template {
    pub fn from_name(name: &str) -> Option<Template> {
        match name {
            "chatml" => Some(Template::ChatMl),
            "llama3" => Some(Template::Llama3),
            "llama2" => Some(Template::Llama2),
            "bitnet" => Some(Template::Bitnet),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Template::ChatMl => "chatml",
            Template::Llama3 => "llama3",
            Template::Llama2 => "llama2",
            Template::Bitnet => "bitnet",
        }
    }

    /// Recognises a Jinja template by its markers.
    pub fn detect(jinja: &str) -> Option<Template> {
        if jinja.contains("<|im_start|>") {
            Some(Template::ChatMl)
        } else if jinja.contains("<|start_header_id|>") {
            Some(Template::Llama3)
        } else if jinja.contains("Assistant: ") && jinja.contains("<|eot_id|>") {
            Some(Template::Bitnet)
        } else if jinja.contains("[INST]") {
            Some(Template::Llama2)
        } else {
            None
        }
    }

    /// The model's template (`tokenizer.chat_template`), else ChatML.
    pub fn for_model(model: &bitnet::Model) -> Template {
        model
            .gguf()
            .get_str("tokenizer.chat_template")
            .ok()
            .and_then(Template::detect)
            .unwrap_or(Template::ChatMl)
    }

    /// The prompt for `messages`, ending with the assistant's turn opened.
    pub fn apply(self, messages: &[Message]) -> String {
        let mut out = String::new();
        match self {
            Template::ChatMl => {
                for m in messages {
                    out += &format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content);
                }
                out += "<|im_start|>assistant\n";
            }
            Template::Llama3 => {
                for m in messages {
                    out += &format!(
                        "<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>",
                        m.role,
                        m.content.trim()
                    );
                }
                out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
            }
            Template::Bitnet => {
                for m in messages {
                    let who = match m.role.as_str() {
                        "system" => "System",
                        "assistant" => "Assistant",
                        _ => "User",
                    };
                    out += &format!("{who}: {}<|eot_id|>", m.content.trim());
                }
                out += "Assistant: ";
            }
            Template::Llama2 => {
                let mut system = String::new();
                let mut first = true;
                for m in messages {
                    match m.role.as_str() {
                        "system" => system = m.content.trim().to_string(),
                        "assistant" => out += &format!(" {}</s>", m.content.trim()),
                        _ => {
                            if first && !system.is_empty() {
                                out += &format!(
                                    "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{} [/INST]",
                                    m.content.trim()
                                );
                            } else {
                                out += &format!("<s>[INST] {} [/INST]", m.content.trim());
                            }
                            first = false;
                        }
                    }
                }
                // The first turn's BOS comes from the tokenizer.
                if let Some(rest) = out.strip_prefix("<s>") {
                    out = rest.to_string();
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs() -> Vec<Message> {
        vec![
            Message {
                role: "system".into(),
                content: "Be brief.".into(),
            },
            Message {
                role: "user".into(),
                content: "Hi".into(),
            },
        ]
    }

    #[test]
    fn renders_each_format() {
        assert_eq!(
            Template::ChatMl.apply(&msgs()),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            Template::Llama3.apply(&msgs()),
            "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>\
             <|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\n"
        );
        assert_eq!(
            Template::Bitnet.apply(&msgs()),
            "System: Be brief.<|eot_id|>User: Hi<|eot_id|>Assistant: "
        );
        assert_eq!(
            Template::Llama2.apply(&msgs()),
            "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]"
        );
    }

    #[test]
    fn detects_by_markers() {
        assert_eq!(
            Template::detect("{{'<|im_start|>' + m.role}}"),
            Some(Template::ChatMl)
        );
        assert_eq!(
            Template::detect("<|start_header_id|>"),
            Some(Template::Llama3)
        );
        assert_eq!(
            Template::detect("'Assistant: ' ... '<|eot_id|>'"),
            Some(Template::Bitnet)
        );
        assert_eq!(Template::detect("{{ x }}"), None);
        assert_eq!(Template::from_name("nope"), None);
    }
}
