//! Chat group: `llama_chat_message`, `llama_chat_apply_template`, `llama_chat_builtin_templates`
//! over [`crate::chat`] (`bitnet_model_chat_template` is in the model group).

use super::{c_str, call, slice, slice_mut};
use crate::chat::{self, ChatMessage};
use crate::error::Error;
use std::ffi::{c_char, CString};
use std::sync::OnceLock;

/// One message of a conversation: role ("system", "user", "assistant", ...) and content, both
/// NUL-terminated UTF-8.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_chat_message {
    pub role: *const c_char,
    pub content: *const c_char,
}

/// Formats a conversation with a chat template: `tmpl` is a built-in template name (see
/// bitnet_chat_builtin_templates) or a model's Jinja template (bitnet_model_chat_template),
/// recognised as llama.cpp recognises it; NULL means "chatml". This is not a Jinja engine.
/// `add_ass` appends the start of an assistant turn. Writes at most `length` bytes into `buf`
/// as strncpy does (NUL-terminated only when the text is shorter than `length`) and returns the
/// text's full length: call again with a larger buffer when it exceeds `length`. Returns -1
/// when the template is not recognised or an argument is invalid (bitnet_last_error says which).
#[no_mangle]
pub extern "C" fn bitnet_chat_apply_template(
    tmpl: *const c_char,
    chat: *const bitnet_chat_message,
    n_msg: usize,
    add_ass: bool,
    buf: *mut c_char,
    length: i32,
) -> i32 {
    call(-1, || {
        let tmpl = if tmpl.is_null() {
            "chatml"
        } else {
            c_str(tmpl, "tmpl")?
        };
        let n = i64::try_from(n_msg)
            .map_err(|_| Error::invalid_argument(format!("n_msg {n_msg} is too large")))?;
        let msgs = slice(chat, n, "chat")?
            .iter()
            .enumerate()
            .map(|(i, m)| {
                Ok(ChatMessage::new(
                    c_str(m.role, &format!("chat[{i}].role"))?,
                    c_str(m.content, &format!("chat[{i}].content"))?,
                ))
            })
            .collect::<crate::error::Result<Vec<_>>>()?;
        let text = chat::apply_template(tmpl, &msgs, add_ass)?;
        let full = i32::try_from(text.len()).map_err(|_| {
            Error::invalid_argument(format!(
                "formatted chat of {} bytes does not fit int32_t",
                text.len()
            ))
        })?;
        if length > 0 && !buf.is_null() {
            let out = slice_mut(buf.cast::<u8>(), i64::from(length), "buf")?;
            let n = text.len().min(out.len());
            out[..n].copy_from_slice(&text.as_bytes()[..n]);
            out[n..].fill(0);
        }
        Ok(full)
    })
}

fn builtin_names() -> &'static [CString] {
    static NAMES: OnceLock<Vec<CString>> = OnceLock::new();
    NAMES.get_or_init(|| {
        chat::builtin_templates()
            .map(|n| CString::new(n).expect("template names have no NUL"))
            .collect()
    })
}

/// Writes up to `len` built-in template names (static strings, byte order) into `output` and
/// returns how many there are in total. `output` may be NULL when `len` is 0.
#[no_mangle]
pub extern "C" fn bitnet_chat_builtin_templates(output: *mut *const c_char, len: usize) -> i32 {
    call(-1, || {
        let names = builtin_names();
        let n = len.min(names.len());
        let out = slice_mut(output, n as i64, "output")?;
        for (o, name) in out.iter_mut().zip(names) {
            *o = name.as_ptr();
        }
        Ok(names.len() as i32)
    })
}
