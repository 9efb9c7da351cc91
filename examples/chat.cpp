// chat: a small interactive chat loop in C++ over bitnet.h, with a sampler chain.
//
//   chat -m MODEL [-n MAX_REPLY_TOKENS] [-s SEED]
//
// Reads one user message per line from stdin and answers each, keeping the conversation in the
// KV cache (only the new text is decoded each turn). The prompt format is plain
// "User: ...\nAssistant:"; a reply ends at an end-of-generation token, a newline or the
// token limit. Sampling: penalties, top-k, top-p, temperature, softmax, dist (the fork's
// common chain).
#include "bitnet.h"

#include <cstdio>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// Owners that free the C handles (bitnet_*_free ignore NULL).
struct ModelDeleter { void operator()(bitnet_model *m) const { bitnet_model_free(m); } };
struct ContextDeleter { void operator()(bitnet_context *c) const { bitnet_free(c); } };
struct SamplerDeleter { void operator()(bitnet_sampler *s) const { bitnet_sampler_free(s); } };

std::runtime_error error(const std::string &what) {
  const char *msg = bitnet_last_error();
  return std::runtime_error(what + ": " + (msg ? msg : "unknown error"));
}

std::vector<bitnet_token> tokenize(const bitnet_vocab *vocab, const std::string &text, bool add_special) {
  const int n = -bitnet_tokenize(vocab, text.data(), (int32_t)text.size(), nullptr, 0, add_special, true);
  std::vector<bitnet_token> tokens(n > 0 ? n : 0);
  if (bitnet_tokenize(vocab, text.data(), (int32_t)text.size(), tokens.data(), n, add_special, true) != n)
    throw error("tokenize");
  return tokens;
}

std::string piece(const bitnet_vocab *vocab, bitnet_token token) {
  std::string out(16, '\0');
  int n = bitnet_token_to_piece(vocab, token, &out[0], (int32_t)out.size(), 0, false);
  if (n < 0 && n != INT32_MIN) {  // too small: -n bytes needed
    out.resize(-n);
    n = bitnet_token_to_piece(vocab, token, &out[0], (int32_t)out.size(), 0, false);
  }
  if (n < 0) throw error("token_to_piece");
  out.resize(n);
  return out;
}

}  // namespace

int main(int argc, char **argv) {
  std::string model_path;
  int max_reply = 32;
  uint32_t seed = 42;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "-m" && i + 1 < argc) model_path = argv[++i];
    else if (a == "-n" && i + 1 < argc) max_reply = std::stoi(argv[++i]);
    else if (a == "-s" && i + 1 < argc) seed = (uint32_t)std::stoul(argv[++i]);
  }
  if (model_path.empty()) {
    std::cerr << "usage: " << argv[0] << " -m MODEL [-n MAX_REPLY_TOKENS] [-s SEED]\n";
    return 2;
  }

  try {
    std::unique_ptr<bitnet_model, ModelDeleter> model(
        bitnet_model_load_from_file(model_path.c_str(), bitnet_model_default_params()));
    if (!model) throw error("load model");
    const bitnet_vocab *vocab = bitnet_model_get_vocab(model.get());

    bitnet_context_params cparams = bitnet_context_default_params();
    cparams.n_ctx = 0;  // the model's training context
    std::unique_ptr<bitnet_context, ContextDeleter> ctx(bitnet_init_from_model(model.get(), cparams));
    if (!ctx) throw error("create context");
    const int n_ctx = (int)bitnet_n_ctx(ctx.get());

    std::unique_ptr<bitnet_sampler, SamplerDeleter> chain(
        bitnet_sampler_chain_init(bitnet_sampler_chain_default_params()));
    bitnet_sampler_chain_add(chain.get(), bitnet_sampler_init_penalties(bitnet_vocab_n_tokens(vocab), 64, 1.1f, 0.0f, 0.0f));
    bitnet_sampler_chain_add(chain.get(), bitnet_sampler_init_top_k(40));
    bitnet_sampler_chain_add(chain.get(), bitnet_sampler_init_top_p(0.95f, 1));
    bitnet_sampler_chain_add(chain.get(), bitnet_sampler_init_temp(0.8f));
    bitnet_sampler_chain_add(chain.get(), bitnet_sampler_init_softmax());
    bitnet_sampler_chain_add(chain.get(), bitnet_sampler_init_dist(seed));
    std::cerr << "chat: " << bitnet_sampler_chain_n(chain.get()) << " samplers, seed "
              << bitnet_sampler_get_seed(chain.get()) << ", n_ctx " << n_ctx << "\n";

    int n_past = 0;
    std::string line;
    for (int turn = 0; std::getline(std::cin, line); turn++) {
      if (line.empty()) continue;
      std::string text = (turn ? "\nUser: " : "User: ") + line + "\nAssistant:";
      std::vector<bitnet_token> tokens = tokenize(vocab, text, turn == 0);
      if (n_past + (int)tokens.size() + max_reply > n_ctx) {
        std::cerr << "chat: context full, stopping\n";
        break;
      }
      std::cout << "> " << line << "\n";
      bitnet_batch batch = bitnet_batch_get_one(tokens.data(), (int32_t)tokens.size());
      std::string reply;
      bitnet_token token;
      for (int i = 0; i < max_reply; i++) {
        if (bitnet_decode(ctx.get(), batch) != 0) throw error("decode");
        n_past += batch.n_tokens;
        token = bitnet_sampler_sample(chain.get(), ctx.get(), -1);
        if (token == BITNET_TOKEN_NULL) throw error("sample");
        if (bitnet_vocab_is_eog(vocab, token)) break;
        const std::string p = piece(vocab, token);
        if (p.find('\n') != std::string::npos) break;
        reply += p;
        batch = bitnet_batch_get_one(&token, 1);
      }
      std::cout << reply << "\n";
    }
    bitnet_perf_sampler_print(chain.get());
  } catch (const std::exception &e) {
    std::cerr << "chat: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
