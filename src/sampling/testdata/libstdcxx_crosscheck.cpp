// Dev-only differential harness: the fork's candidate operations written against libstdc++ 12.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>
struct TD { int id; float logit; float p; };
static std::vector<TD> make(int n, int mul, int mod, float scale, float off) {
    std::vector<TD> v; for (int i = 0; i < n; ++i) v.push_back({i, (float)((long)i * mul % mod) / scale - off, 0.0f}); return v;
}
static auto comp = [](const TD& a, const TD& b) { return a.logit > b.logit; };
static void softmax(std::vector<TD>& v, bool& sorted) {
    if (!sorted) { std::sort(v.begin(), v.end(), comp); sorted = true; }
    float mx = v[0].logit, s = 0.0f;
    for (auto& t : v) { float p = expf(t.logit - mx); t.p = p; s += p; }
    for (auto& t : v) t.p /= s;
}
static int dist(const std::vector<TD>& v, std::mt19937& rng) {
    std::vector<float> w; for (auto& t : v) w.push_back(t.p);
    std::discrete_distribution<int> d(w.begin(), w.end()); return d(rng);
}
static void top_k(std::vector<TD>& v, int k, bool& sorted) {
    if (k <= 0) k = v.size(); k = std::min(k, (int)v.size());
    if (!sorted) {
        if (k <= 128) std::partial_sort(v.begin(), v.begin() + k, v.end(), comp);
        else {
            const int nb = 128; const float lo = -10.0f, hi = 10.0f; const float sc = nb/(hi-lo); const float inter = -lo*sc;
            std::vector<int> bi(v.size()); std::vector<int> histo(nb, 0);
            for (size_t i = 0; i < v.size(); ++i) { int ib = int(sc * v[i].logit + inter); ib = std::max(0, std::min(nb-1, ib)); bi[i] = ib; ++histo[ib]; }
            int nhave = 0, ib = nb - 1; for (; ib >= 0; --ib) { nhave += histo[ib]; if (nhave >= k) break; }
            std::vector<TD> tmp(nhave); std::vector<TD*> ptrs; TD* ptr = tmp.data();
            for (int j = nb-1; j >= ib; --j) { ptrs.push_back(ptr); ptr += histo[j]; }
            for (size_t i = 0; i < v.size(); ++i) { int j = bi[i]; if (j >= ib) *ptrs[nb-1-j]++ = v[i]; }
            ptr = tmp.data(); int nd = 0;
            for (int j = nb-1; j > ib; --j) { std::sort(ptr, ptr + histo[j], comp); ptr += histo[j]; nd += histo[j]; }
            std::partial_sort(ptr, ptr + k - nd, ptr + histo[ib], comp);
            std::memcpy(v.data(), tmp.data(), k*sizeof(TD));
        }
        sorted = true;
    }
    v.resize(k);
}
static void typical(std::vector<TD>& v, float p, size_t min_keep, bool& sorted) {
    softmax(v, sorted);
    float H = 0.0f; for (auto& t : v) H += -t.p * logf(t.p);
    std::vector<float> sc; for (auto& t : v) sc.push_back(fabsf(-logf(t.p) - H));
    std::vector<size_t> idx(v.size()); std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return sc[a] < sc[b]; });
    float cum = 0.0f; size_t last = idx.size();
    for (size_t i = 0; i < idx.size(); ++i) { cum += v[idx[i]].p; if (cum > p && i >= min_keep - 1) { last = i + 1; break; } }
    std::vector<TD> nv; for (size_t i = 0; i < last; ++i) nv.push_back(v[idx[i]]);
    v = nv; sorted = false;
}
static void print_ids(const char* tag, const std::vector<TD>& v, size_t upto) {
    printf("%s:", tag); for (size_t i = 0; i < std::min(upto, v.size()); ++i) printf("%s%d", i ? "," : "", v[i].id); printf("\n");
}
int main() {
    // A: softmax + dist, 3000 candidates with heavy ties, seed 42, 30 steps.
    { std::mt19937 rng(42); printf("A:");
      for (int s = 0; s < 30; ++s) { auto v = make(3000, 7919, 613, 64.0f, 4.0f); bool so = false; softmax(v, so); int i = dist(v, rng); printf("%s%d", s ? "," : "", v[i].id); }
      printf("\n"); }
    // B: top_k 40 order (ties at the cut).
    { auto v = make(3000, 7919, 613, 64.0f, 4.0f); bool so = false; top_k(v, 40, so); print_ids("B", v, 40); }
    // C: top_k 300 (bucket path) order.
    { auto v = make(3000, 7919, 613, 64.0f, 4.0f); bool so = false; top_k(v, 300, so); print_ids("C", v, 300); }
    // D: typical 0.5 min_keep 1 on a small-range array, then ids in order.
    { auto v = make(500, 31, 97, 16.0f, 3.0f); bool so = false; typical(v, 0.5f, 1, so); print_ids("D", v, 1000); }
    // E: discrete_distribution with p all zero (NaN weights) and mixed: first 10 draws seed 7.
    { std::mt19937 rng(7); std::vector<TD> z(5, TD{0, 0.0f, 0.0f}); for (int i = 0; i < 5; ++i) z[i].id = i;
      printf("E:"); for (int s = 0; s < 5; ++s) printf("%s%d", s ? "," : "", dist(z, rng)); printf("\n"); }
}
