//! Chat templates: llama.cpp's built-in formats (`llama_chat_apply_template`), written from
//! the behaviour of llama.cpp 0c1e57098 (`src/llama-chat.cpp`) and checked against the
//! expected outputs of its `tests/test-chat-template.cpp`.
//!
//! This is not a Jinja engine: a template string is either the name of a built-in format
//! (`"chatml"`, `"llama3"`, ...; [`builtin_templates`]) or a model's Jinja
//! `tokenizer.chat_template`, which is *recognised* by the substrings llama.cpp looks for
//! ([`Template::detect`]) and then rendered by the matching built-in format.
//!
//! One addition to llama.cpp's list: `"bitnet"`, the format of BitNet b1.58 2B-4T's own
//! template (each message `Role: content<|eot_id|>` with the role capitalised and the content
//! trimmed, then `Assistant: `), rendered as Hugging Face renders that template minus the BOS
//! token (the tokenizer adds it). ik_llama.cpp has a `bitnet` template too, which drops the
//! `<|eot_id|>` after system and assistant turns; the model's own template has them.

mod format;

use crate::error::{Error, Result};

/// One message of a conversation (`llama_chat_message`): a role (`"system"`, `"user"`,
/// `"assistant"`, ...) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// The built-in chat formats (llama.cpp's `llm_chat_template`, plus [`Template::Bitnet`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Template {
    Chatml,
    Llama2,
    Llama2Sys,
    Llama2SysBos,
    Llama2SysStrip,
    MistralV1,
    MistralV3,
    MistralV3Tekken,
    MistralV7,
    MistralV7Tekken,
    Phi3,
    Phi4,
    Falcon3,
    Zephyr,
    Monarch,
    Gemma,
    Orion,
    Openchat,
    Vicuna,
    VicunaOrca,
    Deepseek,
    Deepseek2,
    Deepseek3,
    DeepseekOcr,
    CommandR,
    Llama3,
    Chatglm3,
    Chatglm4,
    Glmedge,
    Minicpm,
    Exaone3,
    Exaone4,
    ExaoneMoe,
    RwkvWorld,
    Granite3,
    Granite40,
    Granite41,
    Gigachat,
    Megrez,
    Yandex,
    Bailing,
    BailingThink,
    Bailing2,
    Llama4,
    Smolvlm,
    Dots1,
    HunyuanMoe,
    OpenaiMoe,
    HunyuanDense,
    HunyuanVl,
    KimiK2,
    SeedOss,
    Grok2,
    PanguEmbed,
    SolarOpen,
    Bitnet,
}

/// Names of the built-in formats, in byte order (as llama.cpp's `std::map` lists them).
/// `dots1` has no name in llama.cpp (it is only detected), so it has none here either.
const NAMES: &[(&str, Template)] = &[
    ("bailing", Template::Bailing),
    ("bailing-think", Template::BailingThink),
    ("bailing2", Template::Bailing2),
    ("bitnet", Template::Bitnet),
    ("chatglm3", Template::Chatglm3),
    ("chatglm4", Template::Chatglm4),
    ("chatml", Template::Chatml),
    ("command-r", Template::CommandR),
    ("deepseek", Template::Deepseek),
    ("deepseek-ocr", Template::DeepseekOcr),
    ("deepseek2", Template::Deepseek2),
    ("deepseek3", Template::Deepseek3),
    ("exaone-moe", Template::ExaoneMoe),
    ("exaone3", Template::Exaone3),
    ("exaone4", Template::Exaone4),
    ("falcon3", Template::Falcon3),
    ("gemma", Template::Gemma),
    ("gigachat", Template::Gigachat),
    ("glmedge", Template::Glmedge),
    ("gpt-oss", Template::OpenaiMoe),
    ("granite", Template::Granite3),
    ("granite-4.0", Template::Granite40),
    ("granite-4.1", Template::Granite41),
    ("grok-2", Template::Grok2),
    ("hunyuan-dense", Template::HunyuanDense),
    ("hunyuan-moe", Template::HunyuanMoe),
    ("hunyuan-vl", Template::HunyuanVl),
    ("kimi-k2", Template::KimiK2),
    ("llama2", Template::Llama2),
    ("llama2-sys", Template::Llama2Sys),
    ("llama2-sys-bos", Template::Llama2SysBos),
    ("llama2-sys-strip", Template::Llama2SysStrip),
    ("llama3", Template::Llama3),
    ("llama4", Template::Llama4),
    ("megrez", Template::Megrez),
    ("minicpm", Template::Minicpm),
    ("mistral-v1", Template::MistralV1),
    ("mistral-v3", Template::MistralV3),
    ("mistral-v3-tekken", Template::MistralV3Tekken),
    ("mistral-v7", Template::MistralV7),
    ("mistral-v7-tekken", Template::MistralV7Tekken),
    ("monarch", Template::Monarch),
    ("openchat", Template::Openchat),
    ("orion", Template::Orion),
    ("pangu-embedded", Template::PanguEmbed),
    ("phi3", Template::Phi3),
    ("phi4", Template::Phi4),
    ("rwkv-world", Template::RwkvWorld),
    ("seed_oss", Template::SeedOss),
    ("smolvlm", Template::Smolvlm),
    ("solar-open", Template::SolarOpen),
    ("vicuna", Template::Vicuna),
    ("vicuna-orca", Template::VicunaOrca),
    ("yandex", Template::Yandex),
    ("zephyr", Template::Zephyr),
];

/// The names `llama_chat_builtin_templates` lists, in byte order.
pub fn builtin_templates() -> impl ExactSizeIterator<Item = &'static str> {
    NAMES.iter().map(|(n, _)| *n)
}

impl Template {
    /// The built-in format called `name` exactly.
    pub fn from_name(name: &str) -> Option<Template> {
        NAMES
            .binary_search_by(|(n, _)| n.as_bytes().cmp(name.as_bytes()))
            .ok()
            .map(|i| NAMES[i].1)
    }

    /// The format's name (`None` for dots1, which llama.cpp only detects).
    pub fn name(self) -> Option<&'static str> {
        NAMES.iter().find(|(_, t)| *t == self).map(|(n, _)| *n)
    }

    /// `llm_chat_detect_template`: a built-in name, or a Jinja template recognised by the
    /// substrings llama.cpp checks, in its order; `None` when nothing matches.
    pub fn detect(tmpl: &str) -> Option<Template> {
        use Template as T;
        if let Some(t) = Template::from_name(tmpl) {
            return Some(t);
        }
        let has = |s: &str| tmpl.contains(s);
        let t = if has("<|im_start|>") {
            if has("<|im_sep|>") {
                T::Phi4
            } else if has("<end_of_utterance>") {
                T::Smolvlm
            } else {
                T::Chatml
            }
        } else if tmpl.starts_with("mistral") || has("[INST]") {
            if has("[SYSTEM_PROMPT]") {
                T::MistralV7
            } else if has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]") {
                if has(" [INST]") {
                    T::MistralV1
                } else if has("\"[INST]\"") {
                    T::MistralV3Tekken
                } else {
                    T::MistralV3
                }
            } else if has("content.strip()") {
                T::Llama2SysStrip
            } else if has("bos_token + '[INST]") {
                T::Llama2SysBos
            } else if has("<<SYS>>") {
                T::Llama2Sys
            } else {
                T::Llama2
            }
        } else if has("<|assistant|>") && has("<|end|>") {
            T::Phi3
        } else if has("[gMASK]<sop>") {
            T::Chatglm4
        } else if has("<|assistant|>") && has("<|user|>") {
            if has("<|tool_declare|>") {
                T::ExaoneMoe
            } else if has("</s>") {
                T::Falcon3
            } else {
                T::Glmedge
            }
        } else if has("<|{{ item['role'] }}|>") && has("<|begin_of_image|>") {
            T::Glmedge
        } else if has("<|user|>") && has("<|endoftext|>") {
            T::Zephyr
        } else if has("bos_token + message['role']") {
            T::Monarch
        } else if has("<start_of_turn>") {
            T::Gemma
        } else if has("'\\n\\nAssistant: ' + eos_token") {
            T::Orion
        } else if has("GPT4 Correct ") {
            T::Openchat
        } else if has("USER: ") && has("ASSISTANT: ") {
            if has("SYSTEM: ") {
                T::VicunaOrca
            } else {
                T::Vicuna
            }
        } else if has("### Instruction:") && has("<|EOT|>") {
            T::Deepseek
        } else if has("<|START_OF_TURN_TOKEN|>") && has("<|USER_TOKEN|>") {
            T::CommandR
        } else if has("<|start_header_id|>") && has("<|end_header_id|>") {
            T::Llama3
        } else if has("[gMASK]sop") {
            T::Chatglm3
        } else if has("<用户>") {
            T::Minicpm
        } else if has("'Assistant: ' + message['content'] + eos_token") {
            T::Deepseek2
        } else if has("<｜Assistant｜>") && has("<｜User｜>") && has("<｜end▁of▁sentence｜>") {
            T::Deepseek3
        } else if has("[|system|]") && has("[|assistant|]") && has("[|endofturn|]") {
            if has("[|tool|]") {
                T::Exaone4
            } else {
                T::Exaone3
            }
        } else if has("rwkv-world") || has("{{- 'User: ' + message['content']|trim + '\\n\\n' -}}") {
            T::RwkvWorld
        } else if has("<|start_of_role|>") {
            if has("<tool_call>") || has("<tools>") {
                if has("g4_default_system_message") {
                    T::Granite40
                } else {
                    T::Granite41
                }
            } else {
                T::Granite3
            }
        } else if has("message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]") {
            T::Gigachat
        } else if has("<|role_start|>") {
            T::Megrez
        } else if has(" Ассистент:") {
            T::Yandex
        } else if has("<role>ASSISTANT</role>") && has("'HUMAN'") {
            T::Bailing
        } else if has("<role>ASSISTANT</role>") && has("\"HUMAN\"") && has("<think>") {
            T::BailingThink
        } else if has("<role>ASSISTANT</role>") && has("<role>HUMAN</role>") && has("<|role_end|>")
        {
            T::Bailing2
        } else if has("<|header_start|>") && has("<|header_end|>") {
            T::Llama4
        } else if has("<|endofuserprompt|>") {
            T::Dots1
        } else if has("<|extra_0|>") && has("<|extra_4|>") {
            T::HunyuanMoe
        } else if has("<|start|>") && has("<|channel|>") {
            T::OpenaiMoe
        } else if has("<｜hy_Assistant｜>") && has("<｜hy_begin▁of▁sentence｜>") {
            T::HunyuanVl
        } else if has("<｜hy_Assistant｜>") && has("<｜hy_place▁holder▁no▁3｜>") {
            T::HunyuanDense
        } else if has("<|im_assistant|>assistant<|im_middle|>") {
            T::KimiK2
        } else if has("<seed:bos>") {
            T::SeedOss
        } else if has("'Assistant: '  + message['content'] + '<|separator|>") {
            T::Grok2
        } else if has("[unused9]系统：[unused10]") {
            T::PanguEmbed
        } else if has("<|begin|>") && has("<|end|>") && has("<|content|>") {
            T::SolarOpen
        } else if has("<|eot_id|>") && has("'Assistant: '") {
            // BitNet b1.58 2B-4T (checked last: it changes no llama.cpp detection).
            T::Bitnet
        } else {
            return None;
        };
        Some(t)
    }

    /// Formats `msgs` in this format; `add_ass` appends the start of an assistant turn
    /// (for the formats that have one).
    pub fn apply(self, msgs: &[ChatMessage], add_ass: bool) -> String {
        format::apply(self, msgs, add_ass)
    }
}

/// `llama_chat_apply_template`: formats `msgs` with the template `tmpl` (a built-in name or a
/// model's Jinja template recognised as llama.cpp recognises it). An error when the template
/// is not recognised.
pub fn apply_template(tmpl: &str, msgs: &[ChatMessage], add_ass: bool) -> Result<String> {
    let t = Template::detect(tmpl).ok_or_else(|| {
        let shown: String = tmpl.chars().take(60).collect();
        let more = if tmpl.chars().count() > 60 { "..." } else { "" };
        Error::unsupported(format!(
            "chat template {shown:?}{more} is not a built-in template and is not recognised \
             (bitnet formats templates by name; see bitnet_chat_builtin_templates)"
        ))
    })?;
    Ok(t.apply(msgs, add_ass))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sorted_unique_and_round_trip() {
        for w in NAMES.windows(2) {
            assert!(
                w[0].0.as_bytes() < w[1].0.as_bytes(),
                "{} / {}",
                w[0].0,
                w[1].0
            );
        }
        for (n, t) in NAMES {
            assert_eq!(Template::from_name(n), Some(*t));
            assert_eq!(t.name(), Some(*n));
            assert_eq!(Template::detect(n), Some(*t));
        }
        assert_eq!(Template::Dots1.name(), None);
        assert_eq!(builtin_templates().len(), NAMES.len());
    }

    #[test]
    fn unknown_template_is_an_error_naming_it() {
        let e = apply_template("INVALID TEMPLATE", &[ChatMessage::new("user", "hi")], true)
            .unwrap_err();
        assert!(e.message().contains("INVALID TEMPLATE"), "{e}");
    }

    #[test]
    fn bitnet_renders_the_models_own_format() {
        let msgs = [
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", " Hi "),
            ChatMessage::new("assistant", "Hello."),
            ChatMessage::new("user", "Bye"),
        ];
        assert_eq!(
            apply_template("bitnet", &msgs, true).unwrap(),
            "System: Be brief.<|eot_id|>User: Hi<|eot_id|>Assistant: Hello.<|eot_id|>\
             User: Bye<|eot_id|>Assistant: "
        );
        // The model's Jinja template is recognised.
        let jinja = "{% for message in messages %}{% set content = message['role'] | capitalize \
                     + ': '+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 \
                     %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor \
                     %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}";
        assert_eq!(Template::detect(jinja), Some(Template::Bitnet));
    }
}
