//! The chat template a server uses: the library's `bitnet::chat` formats (llama.cpp's built-in
//! templates), picked by `--chat-template NAME`, else recognised from the GGUF's
//! `tokenizer.chat_template`, else ChatML (llama-server's fallback).

use bitnet::chat::{builtin_templates, ChatMessage, Template};
use bitnet::Model;

pub use bitnet::chat::ChatMessage as Message;

/// A resolved template and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct ChatTemplate {
    template: Template,
    name: &'static str,
}

impl ChatTemplate {
    /// `name` (a built-in name), else the model's template when recognised, else ChatML.
    pub fn resolve(model: &Model, name: Option<&str>) -> Result<ChatTemplate, String> {
        if let Some(n) = name {
            let template = Template::from_name(n).ok_or_else(|| {
                format!(
                    "unknown chat template {n:?}; built-in: {}",
                    builtin_templates().collect::<Vec<_>>().join(", ")
                )
            })?;
            return Ok(ChatTemplate {
                template,
                name: template.name().unwrap_or("custom"),
            });
        }
        let from_model = model
            .gguf()
            .get_str("tokenizer.chat_template")
            .ok()
            .and_then(Template::detect);
        let template = from_model.unwrap_or(Template::Chatml);
        Ok(ChatTemplate {
            template,
            name: template.name().unwrap_or("from the model"),
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The prompt for `messages`, ending with the assistant's turn opened.
    pub fn apply(&self, messages: &[ChatMessage]) -> String {
        self.template.apply(messages, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_and_format() {
        let t = Template::from_name("chatml").unwrap();
        let msgs = [ChatMessage::new("user", "Hi")];
        assert_eq!(
            t.apply(&msgs, true),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert!(Template::from_name("bitnet").is_some());
        assert!(Template::from_name("nope").is_none());
    }
}
