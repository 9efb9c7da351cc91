#include "llama.h"
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>
int main(int argc, char ** argv) {
    // argv[1]: vocab gguf, argv[2]: inputs (separator format), argv[3]: output
    llama_backend_init();
    auto mp = llama_model_default_params();
    mp.vocab_only = true;
    llama_model * model = llama_load_model_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "load failed\n"); return 1; }
    std::ifstream f(argv[2], std::ios::binary);
    std::stringstream ss; ss << f.rdbuf();
    std::string data = ss.str();
    const std::string sep = "\n__ggml_vocab_test__\n";
    FILE * out = fopen(argv[3], "wb");
    size_t start = 0;
    while (true) {
        size_t p = data.find(sep, start);
        if (p == std::string::npos) break;
        std::string text = data.substr(start, p - start);
        start = p + sep.size();
        for (int mode = 0; mode < 2; ++mode) {
            std::vector<llama_token> toks(text.size() * 2 + 8);
            int n = llama_tokenize(model, text.data(), text.size(), toks.data(), toks.size(), mode, mode);
            if (n < 0) { fprintf(out, "ERR\n"); continue; }
            toks.resize(n);
            for (auto t : toks) fprintf(out, " %d", t);
            fprintf(out, "\n");
            for (int rs = 0; rs < 2; ++rs) {
                std::vector<char> buf(text.size() * 4 + 1024);
                int m = llama_detokenize(model, toks.data(), toks.size(), buf.data(), buf.size(), rs, mode);
                if (m < 0) { fprintf(out, "DERR\n"); continue; }
                for (int i = 0; i < m; ++i) fprintf(out, "%02x", (unsigned char) buf[i]);
                fprintf(out, "\n");
            }
        }
    }
    // pieces of every token, with and without special, lstrip 0 and 1
    int nv = llama_n_vocab(model);
    for (int t = 0; t < nv; ++t) {
        for (int sp = 0; sp < 2; ++sp) {
            char buf[512];
            int m = llama_token_to_piece(model, t, buf, sizeof(buf), sp, sp);
            fprintf(out, "P%d.%d:", t, sp);
            for (int i = 0; i < m; ++i) fprintf(out, "%02x", (unsigned char) buf[i]);
            fprintf(out, "\n");
        }
    }
    fprintf(out, "bos %d eos %d eot %d eom %d nl %d pad %d unk %d addbos %d addeos %d\n",
        llama_token_bos(model), llama_token_eos(model), llama_token_eot(model), -2,
        llama_token_nl(model), llama_token_pad(model), -2, llama_add_bos_token(model), llama_add_eos_token(model));
    for (int t = 0; t < nv; ++t) if (llama_token_is_eog(model, t)) fprintf(out, "eog %d\n", t);
    fclose(out);
    return 0;
}
