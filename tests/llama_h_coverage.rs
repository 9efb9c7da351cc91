//! Coverage of current llama.h: the function names and parameter counts declared by llama.cpp
//! 0c1e57098's `include/llama.h` (vendored in the llama-cpp-python 0.3.36 sdist), as facts, checked
//! against `include/bitnet.h` with `llama_` -> `bitnet_`. Fails when bitnet.h lacks a
//! non-deprecated function that is not listed in [`NOT_YET`] (with the reason), declares one with
//! a different number of parameters, or has one that is still listed in `NOT_YET`.

use std::collections::HashMap;

/// (name without `llama_`, parameter count, deprecated in llama.h).
const LLAMA_H: &[(&str, usize, bool)] = &[
    ("ftype_name", 1, false),
    ("flash_attn_type_name", 1, false),
    ("load_mode_name", 1, false),
    ("load_mode_from_str", 1, false),
    ("version", 0, false),
    ("model_default_params", 0, false),
    ("context_default_params", 0, false),
    ("sampler_chain_default_params", 0, false),
    ("model_quantize_default_params", 0, false),
    ("backend_init", 0, false),
    ("backend_free", 0, false),
    ("numa_init", 1, false),
    ("attach_threadpool", 3, false),
    ("detach_threadpool", 1, false),
    ("model_init_from_user", 4, false),
    ("load_model_from_file", 2, true),
    ("model_load_from_file", 2, false),
    ("model_load_from_file_ptr", 2, false),
    ("model_load_from_splits", 3, false),
    ("model_save_to_file", 2, false),
    ("free_model", 1, true),
    ("model_free", 1, false),
    ("init_from_model", 2, false),
    ("new_context_with_model", 2, true),
    ("free", 1, false),
    ("time_us", 0, false),
    ("max_devices", 0, false),
    ("max_parallel_sequences", 0, false),
    ("max_tensor_buft_overrides", 0, false),
    ("supports_mmap", 0, false),
    ("supports_mlock", 0, false),
    ("supports_gpu_offload", 0, false),
    ("supports_rpc", 0, false),
    ("n_ctx", 1, false),
    ("n_ctx_seq", 1, false),
    ("n_batch", 1, false),
    ("n_ubatch", 1, false),
    ("n_seq_max", 1, false),
    ("n_rs_seq", 1, false),
    ("n_ctx_train", 1, true),
    ("n_embd", 1, true),
    ("n_layer", 1, true),
    ("n_head", 1, true),
    ("n_vocab", 1, true),
    ("get_model", 1, false),
    ("get_memory", 1, false),
    ("pooling_type", 1, false),
    ("model_get_vocab", 1, false),
    ("model_rope_type", 1, false),
    ("model_n_ctx_train", 1, false),
    ("model_n_embd", 1, false),
    ("model_n_embd_inp", 1, false),
    ("model_n_embd_out", 1, false),
    ("model_n_layer", 1, false),
    ("model_n_layer_nextn", 1, false),
    ("model_n_head", 1, false),
    ("model_n_head_kv", 1, false),
    ("model_n_swa", 1, false),
    ("model_rope_freq_scale_train", 1, false),
    ("model_n_cls_out", 1, false),
    ("model_cls_label", 2, false),
    ("vocab_type", 1, false),
    ("vocab_n_tokens", 1, false),
    ("model_meta_val_str", 4, false),
    ("model_meta_count", 1, false),
    ("model_meta_key_str", 1, false),
    ("model_meta_key_by_index", 4, false),
    ("model_meta_val_str_by_index", 4, false),
    ("model_desc", 3, false),
    ("model_ftype", 1, false),
    ("model_size", 1, false),
    ("model_chat_template", 2, false),
    ("model_n_params", 1, false),
    ("model_has_encoder", 1, false),
    ("model_has_decoder", 1, false),
    ("model_decoder_start_token", 1, false),
    ("model_is_recurrent", 1, false),
    ("model_is_hybrid", 1, false),
    ("model_is_diffusion", 1, false),
    ("model_quantize", 3, false),
    ("adapter_lora_init", 2, false),
    ("adapter_lora_init_from_file_ptr", 2, false),
    ("adapter_meta_val_str", 4, false),
    ("adapter_meta_count", 1, false),
    ("adapter_meta_key_by_index", 4, false),
    ("adapter_meta_val_str_by_index", 4, false),
    ("adapter_lora_free", 1, false),
    ("adapter_get_alora_n_invocation_tokens", 1, false),
    ("adapter_get_alora_invocation_tokens", 1, false),
    ("set_adapters_lora", 4, false),
    ("set_adapter_cvec", 6, false),
    ("memory_clear", 2, false),
    ("memory_seq_rm", 4, false),
    ("memory_seq_cp", 5, false),
    ("memory_seq_keep", 2, false),
    ("memory_seq_add", 5, false),
    ("memory_seq_div", 5, false),
    ("memory_seq_pos_min", 2, false),
    ("memory_seq_pos_max", 2, false),
    ("memory_can_shift", 1, false),
    ("state_get_size", 1, false),
    ("get_state_size", 1, true),
    ("state_get_data", 3, false),
    ("copy_state_data", 2, true),
    ("state_set_data", 3, false),
    ("set_state_data", 2, true),
    ("state_load_file", 5, false),
    ("load_session_file", 5, true),
    ("state_save_file", 4, false),
    ("save_session_file", 4, true),
    ("state_seq_get_size", 2, false),
    ("state_seq_get_data", 4, false),
    ("state_seq_set_data", 4, false),
    ("state_seq_save_file", 5, false),
    ("state_seq_load_file", 6, false),
    ("state_seq_get_size_ext", 3, false),
    ("state_seq_get_data_ext", 5, false),
    ("state_seq_set_data_ext", 5, false),
    ("batch_get_one", 2, false),
    ("batch_init", 3, false),
    ("batch_free", 1, false),
    ("encode", 2, false),
    ("decode", 2, false),
    ("batch_ext_init", 1, false),
    ("batch_ext_free", 1, false),
    ("batch_ext_clear", 1, false),
    ("batch_ext_add", 2, false),
    ("batch_ext_add_token", 3, false),
    ("batch_ext_add_embd", 3, false),
    ("batch_ext_add_seq", 3, false),
    ("batch_ext_set_embd_token", 3, false),
    ("batch_ext_set_embd_state", 3, false),
    ("batch_ext_set_output_embd", 3, false),
    ("batch_ext_set_output_logits", 3, false),
    ("batch_ext_set_pos", 3, false),
    ("process", 3, false),
    ("set_n_threads", 3, false),
    ("n_threads", 1, false),
    ("n_threads_batch", 1, false),
    ("set_embeddings", 2, false),
    ("set_causal_attn", 2, false),
    ("get_causal_attn", 1, false),
    ("set_warmup", 2, true),
    ("set_abort_callback", 3, false),
    ("synchronize", 1, false),
    ("get_logits", 1, false),
    ("get_logits_ith", 2, false),
    ("get_embeddings", 1, false),
    ("get_embeddings_ith", 2, false),
    ("get_embeddings_seq", 2, false),
    ("get_sampled_token_ith", 2, false),
    ("get_sampled_probs_ith", 2, false),
    ("get_sampled_probs_count_ith", 2, false),
    ("get_sampled_logits_ith", 2, false),
    ("get_sampled_logits_count_ith", 2, false),
    ("get_sampled_candidates_ith", 2, false),
    ("get_sampled_candidates_count_ith", 2, false),
    ("vocab_get_text", 2, false),
    ("vocab_get_score", 2, false),
    ("vocab_get_attr", 2, false),
    ("vocab_is_eog", 2, false),
    ("vocab_is_control", 2, false),
    ("vocab_bos", 1, false),
    ("vocab_eos", 1, false),
    ("vocab_eot", 1, false),
    ("vocab_sep", 1, false),
    ("vocab_nl", 1, false),
    ("vocab_pad", 1, false),
    ("vocab_mask", 1, false),
    ("vocab_get_add_bos", 1, false),
    ("vocab_get_add_eos", 1, false),
    ("vocab_get_add_sep", 1, false),
    ("vocab_get_suppress_tokens", 2, false),
    ("vocab_fim_pre", 1, false),
    ("vocab_fim_suf", 1, false),
    ("vocab_fim_mid", 1, false),
    ("vocab_fim_pad", 1, false),
    ("vocab_fim_rep", 1, false),
    ("vocab_fim_sep", 1, false),
    ("token_get_text", 2, true),
    ("token_get_score", 2, true),
    ("token_get_attr", 2, true),
    ("token_is_eog", 2, true),
    ("token_is_control", 2, true),
    ("token_bos", 1, true),
    ("token_eos", 1, true),
    ("token_eot", 1, true),
    ("token_cls", 1, true),
    ("token_sep", 1, true),
    ("token_nl", 1, true),
    ("token_pad", 1, true),
    ("add_bos_token", 1, true),
    ("add_eos_token", 1, true),
    ("token_fim_pre", 1, true),
    ("token_fim_suf", 1, true),
    ("token_fim_mid", 1, true),
    ("token_fim_pad", 1, true),
    ("token_fim_rep", 1, true),
    ("token_fim_sep", 1, true),
    ("vocab_cls", 1, true),
    ("tokenize", 7, false),
    ("token_to_piece", 6, false),
    ("detokenize", 7, false),
    ("chat_apply_template", 6, false),
    ("chat_builtin_templates", 2, false),
    ("set_sampler", 3, false),
    ("sampler_init", 2, false),
    ("sampler_name", 1, false),
    ("sampler_accept", 2, false),
    ("sampler_apply", 2, false),
    ("sampler_reset", 1, false),
    ("sampler_clone", 1, false),
    ("sampler_copy", 2, false),
    ("sampler_free", 1, false),
    ("sampler_chain_init", 1, false),
    ("sampler_chain_add", 2, false),
    ("sampler_chain_get", 2, false),
    ("sampler_chain_n", 1, false),
    ("sampler_chain_remove", 2, false),
    ("sampler_init_greedy", 0, false),
    ("sampler_init_dist", 1, false),
    ("sampler_init_top_k", 1, false),
    ("sampler_init_top_p", 2, false),
    ("sampler_init_min_p", 2, false),
    ("sampler_init_typical", 2, false),
    ("sampler_init_temp", 1, false),
    ("sampler_init_temp_ext", 3, false),
    ("sampler_init_xtc", 4, false),
    ("sampler_init_top_n_sigma", 1, false),
    ("sampler_init_mirostat", 5, false),
    ("sampler_init_mirostat_v2", 3, false),
    ("sampler_init_grammar", 3, false),
    ("sampler_init_grammar_lazy", 7, true),
    ("sampler_init_grammar_lazy_patterns", 7, false),
    ("sampler_init_penalties", 5, false),
    ("sampler_init_dry", 7, false),
    ("sampler_init_adaptive_p", 3, false),
    ("sampler_init_logit_bias", 3, false),
    ("sampler_init_infill", 1, false),
    ("sampler_get_seed", 1, false),
    ("sampler_sample", 3, false),
    ("split_path", 5, false),
    ("split_prefix", 5, false),
    ("print_system_info", 0, false),
    ("log_get", 2, false),
    ("log_set", 2, false),
    ("perf_context", 1, false),
    ("perf_context_print", 1, false),
    ("perf_context_reset", 1, false),
    ("perf_sampler", 1, false),
    ("perf_sampler_print", 1, false),
    ("perf_sampler_reset", 1, false),
    ("opt_param_filter_all", 2, false),
    ("opt_init", 3, false),
    ("opt_epoch", 7, false),
];

/// Non-deprecated llama.h functions bitnet does not have yet, and why.
const NOT_YET: &[(&str, &str)] = &[];

/// Every `bitnet_*` function declared in the header, with its parameter count.
fn header_functions() -> HashMap<String, usize> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("include/bitnet.h");
    let mut text = std::fs::read_to_string(path).expect("include/bitnet.h");
    // Drop comments.
    while let Some(a) = text.find("/*") {
        let b = text[a..].find("*/").map_or(text.len(), |b| a + b + 2);
        text.replace_range(a..b, " ");
    }
    let mut out = HashMap::new();
    for decl in text.split(';') {
        // A chunk may start with the end of a block (`extern "C" {`, `};`).
        let decl = &decl[decl.rfind(['{', '}']).map_or(0, |i| i + 1)..];
        let Some(open) = decl.find('(') else { continue };
        let head = &decl[..open];
        let name = head
            .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap_or("");
        if !name.starts_with("bitnet_") || head.contains("typedef") {
            continue;
        }
        let Some(close) = decl.rfind(')') else {
            continue;
        };
        let params = decl[open + 1..close].trim();
        let n = if params.is_empty() || params == "void" {
            0
        } else {
            params.matches(',').count() + 1
        };
        out.insert(name.to_string(), n);
    }
    out
}

#[test]
fn bitnet_h_covers_current_llama_h() {
    let have = header_functions();
    let not_yet: HashMap<&str, &str> = NOT_YET.iter().copied().collect();
    let mut problems = Vec::new();
    let (mut present, mut present_dep) = (0, 0);
    let total = LLAMA_H.iter().filter(|f| !f.2).count();
    for &(name, n_params, deprecated) in LLAMA_H {
        let ours = format!("bitnet_{name}");
        match have.get(&ours) {
            Some(&n) => {
                if n != n_params {
                    problems.push(format!(
                        "{ours} takes {n} parameters, llama_{name} {n_params}"
                    ));
                }
                if deprecated {
                    present_dep += 1;
                } else {
                    present += 1;
                }
                if not_yet.contains_key(name) {
                    problems.push(format!("{ours} exists now: remove it from NOT_YET"));
                }
            }
            None if deprecated => {}
            None if not_yet.contains_key(name) => {}
            None => problems.push(format!(
                "{ours} is missing (llama_{name}, {n_params} parameters)"
            )),
        }
    }
    for (name, _) in NOT_YET {
        assert!(
            LLAMA_H.iter().any(|f| f.0 == *name && !f.2),
            "NOT_YET lists {name}, which is not a non-deprecated llama.h function"
        );
    }
    eprintln!(
        "llama.h coverage: {present}/{total} non-deprecated functions, {present_dep}/{} deprecated, {} listed as not yet",
        LLAMA_H.len() - total,
        NOT_YET.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(present + NOT_YET.len(), total);
}

#[test]
fn the_list_is_llama_h_0c1e57098() {
    assert_eq!(LLAMA_H.len(), 255);
    assert_eq!(LLAMA_H.iter().filter(|f| f.2).count(), 36);
    for name in [
        "batch_ext_init",
        "process",
        "chat_apply_template",
        "sampler_init_penalties",
    ] {
        assert!(LLAMA_H.iter().any(|f| f.0 == name), "{name}");
    }
}
