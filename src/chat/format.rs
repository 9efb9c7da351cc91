//! How each built-in format renders a conversation (llama.cpp's `llm_chat_apply_template`).

use super::{ChatMessage, Template};

/// C's `isspace` in the "C" locale: what llama.cpp's `trim` strips from both ends.
fn trim(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\u{0b}' | '\u{0c}' | '\r'))
}

/// The first character upper-cased (ASCII, as C's `toupper`), the rest unchanged.
fn capitalize_first(s: &str) -> String {
    let mut out = s.to_string();
    if let Some(f) = out.get_mut(0..1) {
        f.make_ascii_uppercase();
    }
    out
}

pub(super) fn apply(t: Template, msgs: &[ChatMessage], add_ass: bool) -> String {
    use Template as T;
    let mut s = String::new();
    let ass = |s: &mut String, text: &str| {
        if add_ass {
            s.push_str(text);
        }
    };
    match t {
        T::Chatml => {
            for m in msgs {
                s += &format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content);
            }
            ass(&mut s, "<|im_start|>assistant\n");
        }
        T::MistralV7 | T::MistralV7Tekken => {
            let sp = if t == T::MistralV7 { " " } else { "" };
            for m in msgs {
                match m.role.as_str() {
                    "system" => s += &format!("[SYSTEM_PROMPT]{sp}{}[/SYSTEM_PROMPT]", m.content),
                    "user" => s += &format!("[INST]{sp}{}[/INST]", m.content),
                    _ => s += &format!("{sp}{}</s>", m.content),
                }
            }
        }
        T::MistralV1 | T::MistralV3 | T::MistralV3Tekken => {
            let lead = if t == T::MistralV1 { " " } else { "" };
            let trail = if t == T::MistralV3Tekken { "" } else { " " };
            let trim_assistant = t == T::MistralV3;
            let mut inside = false;
            for m in msgs {
                if !inside {
                    s += &format!("{lead}[INST]{trail}");
                    inside = true;
                }
                match m.role.as_str() {
                    "system" => s += &format!("{}\n\n", m.content),
                    "user" => s += &format!("{}{lead}[/INST]", m.content),
                    _ => {
                        let c = if trim_assistant {
                            trim(&m.content)
                        } else {
                            &m.content
                        };
                        s += &format!("{trail}{c}</s>");
                        inside = false;
                    }
                }
            }
        }
        T::Llama2 | T::Llama2Sys | T::Llama2SysBos | T::Llama2SysStrip => {
            let system_supported = t != T::Llama2;
            let bos_inside = t == T::Llama2SysBos;
            let strip = t == T::Llama2SysStrip;
            let mut inside = true;
            s += "[INST] ";
            for m in msgs {
                let c = if strip { trim(&m.content) } else { &m.content };
                if !inside {
                    inside = true;
                    s += if bos_inside { "<s>[INST] " } else { "[INST] " };
                }
                match m.role.as_str() {
                    "system" if system_supported => s += &format!("<<SYS>>\n{c}\n<</SYS>>\n\n"),
                    "system" => s += &format!("{c}\n"),
                    "user" => s += &format!("{c} [/INST]"),
                    _ => {
                        s += &format!("{c}</s>");
                        inside = false;
                    }
                }
            }
        }
        T::Phi3 => {
            for m in msgs {
                s += &format!("<|{}|>\n{}<|end|>\n", m.role, m.content);
            }
            ass(&mut s, "<|assistant|>\n");
        }
        T::Phi4 => {
            for m in msgs {
                s += &format!("<|im_start|>{}<|im_sep|>{}<|im_end|>", m.role, m.content);
            }
            ass(&mut s, "<|im_start|>assistant<|im_sep|>");
        }
        T::Falcon3 => {
            for m in msgs {
                s += &format!("<|{}|>\n{}\n", m.role, m.content);
            }
            ass(&mut s, "<|assistant|>\n");
        }
        T::Zephyr => {
            for m in msgs {
                s += &format!("<|{}|>\n{}<|endoftext|>\n", m.role, m.content);
            }
            ass(&mut s, "<|assistant|>\n");
        }
        T::Monarch => {
            for (i, m) in msgs.iter().enumerate() {
                let bos = if i == 0 { "" } else { "<s>" };
                s += &format!("{bos}{}\n{}</s>\n", m.role, m.content);
            }
            ass(&mut s, "<s>assistant\n");
        }
        T::Gemma => {
            let mut system = String::new();
            for m in msgs {
                if m.role == "system" {
                    system += trim(&m.content);
                    continue;
                }
                let role = if m.role == "assistant" {
                    "model"
                } else {
                    &m.role
                };
                s += &format!("<start_of_turn>{role}\n");
                if !system.is_empty() && role != "model" {
                    s += &format!("{system}\n\n");
                    system.clear();
                }
                s += &format!("{}<end_of_turn>\n", trim(&m.content));
            }
            ass(&mut s, "<start_of_turn>model\n");
        }
        T::Orion => {
            let mut system = String::new();
            for m in msgs {
                match m.role.as_str() {
                    "system" => system += &m.content,
                    "user" => {
                        s += "Human: ";
                        if !system.is_empty() {
                            s += &format!("{system}\n\n");
                            system.clear();
                        }
                        s += &format!("{}\n\nAssistant: </s>", m.content);
                    }
                    _ => s += &format!("{}</s>", m.content),
                }
            }
        }
        T::Openchat => {
            for m in msgs {
                if m.role == "system" {
                    s += &format!("{}<|end_of_turn|>", m.content);
                } else {
                    s += &format!(
                        "GPT4 Correct {}: {}<|end_of_turn|>",
                        capitalize_first(&m.role),
                        m.content
                    );
                }
            }
            ass(&mut s, "GPT4 Correct Assistant:");
        }
        T::Vicuna | T::VicunaOrca => {
            for m in msgs {
                match m.role.as_str() {
                    "system" if t == T::VicunaOrca => s += &format!("SYSTEM: {}\n", m.content),
                    "system" => s += &format!("{}\n\n", m.content),
                    "user" => s += &format!("USER: {}\n", m.content),
                    "assistant" => s += &format!("ASSISTANT: {}</s>\n", m.content),
                    _ => {}
                }
            }
            ass(&mut s, "ASSISTANT:");
        }
        T::Deepseek => {
            for m in msgs {
                match m.role.as_str() {
                    "system" => s += &m.content,
                    "user" => s += &format!("### Instruction:\n{}\n", m.content),
                    "assistant" => s += &format!("### Response:\n{}\n<|EOT|>\n", m.content),
                    _ => {}
                }
            }
            ass(&mut s, "### Response:\n");
        }
        T::CommandR => {
            for m in msgs {
                let tok = match m.role.as_str() {
                    "system" => "<|SYSTEM_TOKEN|>",
                    "user" => "<|USER_TOKEN|>",
                    "assistant" => "<|CHATBOT_TOKEN|>",
                    _ => continue,
                };
                s += &format!(
                    "<|START_OF_TURN_TOKEN|>{tok}{}<|END_OF_TURN_TOKEN|>",
                    trim(&m.content)
                );
            }
            ass(&mut s, "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>");
        }
        T::Llama3 => {
            for m in msgs {
                s += &format!(
                    "<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>",
                    m.role,
                    trim(&m.content)
                );
            }
            ass(&mut s, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        }
        T::Chatglm3 => {
            s += "[gMASK]sop";
            for m in msgs {
                s += &format!("<|{}|>\n {}", m.role, m.content);
            }
            ass(&mut s, "<|assistant|>");
        }
        T::Chatglm4 => {
            s += "[gMASK]<sop>";
            for m in msgs {
                s += &format!("<|{}|>\n{}", m.role, m.content);
            }
            ass(&mut s, "<|assistant|>\n");
        }
        T::Glmedge => {
            for m in msgs {
                s += &format!("<|{}|>\n{}", m.role, m.content);
            }
            ass(&mut s, "<|assistant|>");
        }
        T::Minicpm => {
            for m in msgs {
                if m.role == "user" {
                    s += &format!("<用户>{}<AI>", trim(&m.content));
                } else {
                    s += trim(&m.content);
                }
            }
        }
        T::Deepseek2 => {
            for m in msgs {
                match m.role.as_str() {
                    "system" => s += &format!("{}\n\n", m.content),
                    "user" => s += &format!("User: {}\n\n", m.content),
                    "assistant" => s += &format!("Assistant: {}<｜end▁of▁sentence｜>", m.content),
                    _ => {}
                }
            }
            ass(&mut s, "Assistant:");
        }
        T::Deepseek3 => {
            for m in msgs {
                match m.role.as_str() {
                    "system" => s += &format!("{}\n\n", m.content),
                    "user" => s += &format!("<｜User｜>{}", m.content),
                    "assistant" => {
                        s += &format!("<｜Assistant｜>{}<｜end▁of▁sentence｜>", m.content)
                    }
                    _ => {}
                }
            }
            ass(&mut s, "<｜Assistant｜>");
        }
        T::DeepseekOcr => {
            for m in msgs {
                s += &m.content;
            }
        }
        T::Exaone3 | T::Exaone4 => {
            for m in msgs {
                let c = trim(&m.content);
                match m.role.as_str() {
                    "system" => s += &format!("[|system|]{c}[|endofturn|]\n"),
                    "user" => s += &format!("[|user|]{c}\n"),
                    "assistant" => s += &format!("[|assistant|]{c}[|endofturn|]\n"),
                    "tool" if t == T::Exaone4 => s += &format!("[|tool|]{c}[|endofturn|]\n"),
                    _ => {}
                }
            }
            ass(&mut s, "[|assistant|]");
        }
        T::ExaoneMoe => {
            for m in msgs {
                if matches!(m.role.as_str(), "system" | "user" | "assistant" | "tool") {
                    s += &format!("<|{}|>\n{}<|endofturn|>\n", m.role, trim(&m.content));
                }
            }
            ass(&mut s, "<|assistant|>\n");
        }
        T::RwkvWorld => {
            for (i, m) in msgs.iter().enumerate() {
                let c = trim(&m.content);
                match m.role.as_str() {
                    "system" => s += &format!("System: {c}\n\n"),
                    "user" => {
                        s += &format!("User: {c}\n\n");
                        if i + 1 == msgs.len() {
                            s += "Assistant:";
                        }
                    }
                    "assistant" => s += &format!("Assistant: {c}\n\n"),
                    _ => {}
                }
            }
        }
        T::Granite3 => {
            for m in msgs {
                s += &format!("<|start_of_role|>{}<|end_of_role|>", m.role);
                if m.role == "assistant_tool_call" {
                    s += "<|tool_call|>";
                }
                s += &format!("{}<|end_of_text|>\n", m.content);
            }
            ass(&mut s, "<|start_of_role|>assistant<|end_of_role|>");
        }
        T::Granite40 | T::Granite41 => {
            for m in msgs {
                if m.role == "assistant_tool_call" {
                    s += "<|start_of_role|>assistant<|end_of_role|><|tool_call|>";
                } else {
                    s += &format!("<|start_of_role|>{}<|end_of_role|>", m.role);
                }
                s += &format!("{}<|end_of_text|>\n", m.content);
            }
            ass(&mut s, "<|start_of_role|>assistant<|end_of_role|>");
        }
        T::Gigachat => {
            let has_system = msgs.first().is_some_and(|m| m.role == "system");
            s += "<s>";
            if has_system {
                s += &format!("{}<|message_sep|>", msgs[0].content);
            }
            for m in &msgs[usize::from(has_system)..] {
                match m.role.as_str() {
                    "user" => {
                        s += &format!(
                            "user<|role_sep|>{}<|message_sep|>available functions<|role_sep|>[]<|message_sep|>",
                            m.content
                        )
                    }
                    "assistant" => {
                        s += &format!("assistant<|role_sep|>{}<|message_sep|>", m.content)
                    }
                    _ => {}
                }
            }
            ass(&mut s, "assistant<|role_sep|>");
        }
        T::Megrez => {
            for m in msgs {
                s += &format!(
                    "<|role_start|>{}<|role_end|>{}<|turn_end|>",
                    m.role, m.content
                );
            }
            ass(&mut s, "<|role_start|>assistant<|role_end|>");
        }
        T::Yandex => {
            for m in msgs {
                match m.role.as_str() {
                    "user" => s += &format!(" Пользователь: {}\n\n", m.content),
                    "assistant" => s += &format!(" Ассистент: {}\n\n", m.content),
                    _ => {}
                }
            }
            ass(&mut s, " Ассистент:[SEP]");
        }
        T::Bailing | T::BailingThink | T::Bailing2 => {
            let end = if t == T::Bailing2 { "<|role_end|>" } else { "" };
            if t == T::Bailing2 && msgs.first().is_none_or(|m| m.role != "system") {
                s += "<role>SYSTEM</role>detailed thinking off<|role_end|>";
            }
            for m in msgs {
                let role = if m.role == "user" {
                    "HUMAN".to_string()
                } else {
                    m.role.to_ascii_uppercase()
                };
                s += &format!("<role>{role}</role>{}{end}", m.content);
            }
            if add_ass {
                s += "<role>ASSISTANT</role>";
                if t == T::BailingThink {
                    s += "<think>";
                }
            }
        }
        T::Llama4 => {
            for m in msgs {
                s += &format!(
                    "<|header_start|>{}<|header_end|>\n\n{}<|eot|>",
                    m.role,
                    trim(&m.content)
                );
            }
            ass(&mut s, "<|header_start|>assistant<|header_end|>\n\n");
        }
        T::Smolvlm => {
            s += "<|im_start|>";
            for m in msgs {
                match m.role.as_str() {
                    "system" => s += &format!("{}\n\n", m.content),
                    "user" => s += &format!("User: {}<end_of_utterance>\n", m.content),
                    _ => s += &format!("Assistant: {}<end_of_utterance>\n", m.content),
                }
            }
            ass(&mut s, "Assistant:");
        }
        T::Dots1 => {
            for m in msgs {
                match m.role.as_str() {
                    "system" => s += &format!("<|system|>{}<|endofsystem|>", m.content),
                    "user" => s += &format!("<|userprompt|>{}<|endofuserprompt|>", m.content),
                    _ => s += &format!("<|response|>{}<|endofresponse|>", m.content),
                }
            }
            ass(&mut s, "<|response|>");
        }
        T::HunyuanMoe => {
            for m in msgs {
                match m.role.as_str() {
                    "system" => s += &format!("<|startoftext|>{}<|extra_4|>", m.content),
                    "assistant" => s += &format!("{}<|eos|>", m.content),
                    _ => s += &format!("<|startoftext|>{}<|extra_0|>", m.content),
                }
            }
        }
        T::OpenaiMoe => {
            for m in msgs {
                let end = if m.role == "assistant" {
                    "<|return|>"
                } else {
                    "<|end|>"
                };
                s += &format!("<|start|>{}<|message|>{}{end}", m.role, m.content);
            }
            ass(&mut s, "<|start|>assistant");
        }
        T::HunyuanDense => {
            for (i, m) in msgs.iter().enumerate() {
                if i == 0 && m.role == "system" {
                    s += &format!("{}<｜hy_place▁holder▁no▁3｜>", m.content);
                }
                match m.role.as_str() {
                    "assistant" => {
                        s += &format!("<｜hy_Assistant｜>{}<｜hy_place▁holder▁no▁2｜>", m.content)
                    }
                    "user" => s += &format!("<｜hy_User｜>{}<｜hy_Assistant｜>", m.content),
                    _ => {}
                }
            }
        }
        T::HunyuanVl => {
            s += "<｜hy_begin▁of▁sentence｜>";
            for (i, m) in msgs.iter().enumerate() {
                if i == 0 && m.role == "system" {
                    s += &format!("{}<｜hy_place▁holder▁no▁3｜>", m.content);
                    continue;
                }
                match m.role.as_str() {
                    "user" => s += &format!("{}<｜hy_User｜>", m.content),
                    "assistant" => s += &format!("{}<｜hy_Assistant｜>", m.content),
                    _ => {}
                }
            }
        }
        T::KimiK2 => {
            for m in msgs {
                s += match m.role.as_str() {
                    "system" => "<|im_system|>system<|im_middle|>",
                    "user" => "<|im_user|>user<|im_middle|>",
                    "assistant" => "<|im_assistant|>assistant<|im_middle|>",
                    "tool" => "<|im_system|>tool<|im_middle|>",
                    _ => "",
                };
                s += &format!("{}<|im_end|>", m.content);
            }
            ass(&mut s, "<|im_assistant|>assistant<|im_middle|>");
        }
        T::SeedOss => {
            for m in msgs {
                let c = if m.role == "assistant" {
                    trim(&m.content)
                } else {
                    &m.content
                };
                s += &format!("<seed:bos>{}\n{c}<seed:eos>", m.role);
            }
            ass(&mut s, "<seed:bos>assistant\n");
        }
        T::Grok2 => {
            for m in msgs {
                match m.role.as_str() {
                    "system" => s += &format!("System: {}<|separator|>\n\n", trim(&m.content)),
                    "user" => s += &format!("Human: {}<|separator|>\n\n", trim(&m.content)),
                    "assistant" => s += &format!("Assistant: {}<|separator|>\n\n", m.content),
                    _ => {}
                }
            }
            ass(&mut s, "Assistant:");
        }
        T::PanguEmbed => {
            for (i, m) in msgs.iter().enumerate() {
                if i == 0 && m.role != "system" {
                    s += "[unused9]系统：[unused10]";
                }
                let label = match m.role.as_str() {
                    "system" => "系统",
                    "user" => "用户",
                    "assistant" => "助手",
                    "tool" => "工具",
                    "function" => "方法",
                    _ => continue,
                };
                s += &format!("[unused9]{label}：{}[unused10]", m.content);
            }
            ass(&mut s, "[unused9]助手：");
        }
        T::SolarOpen => {
            for m in msgs {
                s += &format!("<|begin|>{}<|content|>{}<|end|>", m.role, m.content);
            }
            ass(&mut s, "<|begin|>assistant");
        }
        T::Bitnet => {
            for m in msgs {
                s += &format!(
                    "{}: {}<|eot_id|>",
                    capitalize_jinja(&m.role),
                    trim(&m.content)
                );
            }
            ass(&mut s, "Assistant: ");
        }
    }
    s
}

/// Jinja's `capitalize` filter: first character upper case, the rest lower case.
fn capitalize_jinja(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(f) => f
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}
