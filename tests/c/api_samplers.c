/* User-defined samplers (bitnet_sampler_init with a bitnet_sampler_i, issue 17) and adaptive-p,
 * through the installed package:
 *  - struct bitnet_sampler / bitnet_sampler_i have llama.h's layout; a custom sampler reads its
 *    state as smpl->ctx, as llama.cpp clients do;
 *  - a custom sampler (bans one token, counts accept/reset calls, clones and frees its ctx)
 *    alone and in a chain beside built-ins: name/accept/apply/reset/clone/free dispatch through
 *    its iface, chain_get/remove hand back the same pointer, the chain frees it, a clone of the
 *    chain clones it, bitnet_sampler_copy; every ctx is freed exactly once (a live counter;
 *    valgrind and ASan see the rest);
 *  - a sampler that points cur_p->data at its own buffer; samplers that cannot be cloned;
 *  - adaptive-p: its transform recomputed here on three candidates, and sampling on a model.
 * Usage: api_samplers MODEL.gguf */
#include <bitnet.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* ---- the "ban" sampler: sets one token's logit to -inf */
static int live_ctx = 0; /* ctxs allocated and not yet freed */
static int frees = 0;

struct ban_ctx {
  bitnet_token banned;
  int n_accept;
  int n_reset;
  int n_apply;
};

static const char *ban_name(const struct bitnet_sampler *smpl) {
  (void)smpl;
  return "ban";
}
static void ban_accept(struct bitnet_sampler *smpl, bitnet_token token) {
  (void)token;
  ((struct ban_ctx *)smpl->ctx)->n_accept++;
}
static void ban_apply(struct bitnet_sampler *smpl, bitnet_token_data_array *cur_p) {
  struct ban_ctx *c = (struct ban_ctx *)smpl->ctx;
  c->n_apply++;
  for (size_t i = 0; i < cur_p->size; i++) {
    if (cur_p->data[i].id == c->banned) cur_p->data[i].logit = -INFINITY;
  }
}
static void ban_reset(struct bitnet_sampler *smpl) { ((struct ban_ctx *)smpl->ctx)->n_reset++; }
static struct bitnet_sampler *ban_clone(const struct bitnet_sampler *smpl);
static void ban_free(struct bitnet_sampler *smpl) {
  free(smpl->ctx);
  live_ctx--;
  frees++;
}

static struct bitnet_sampler_i ban_iface = {
    ban_name, ban_accept, ban_apply, ban_reset, ban_clone, ban_free, NULL, NULL, NULL, NULL, NULL, NULL,
};

static struct bitnet_sampler *ban_new(bitnet_token banned) {
  struct ban_ctx *c = calloc(1, sizeof *c);
  c->banned = banned;
  live_ctx++;
  return bitnet_sampler_init(&ban_iface, c);
}
static struct bitnet_sampler *ban_clone(const struct bitnet_sampler *smpl) {
  const struct ban_ctx *src = (const struct ban_ctx *)smpl->ctx;
  struct ban_ctx *c = malloc(sizeof *c);
  *c = *src;
  live_ctx++;
  return bitnet_sampler_init(smpl->iface, c);
}
static struct ban_ctx *ban_of(struct bitnet_sampler *smpl) { return (struct ban_ctx *)smpl->ctx; }

/* ---- "top1": keeps only the best candidate, copied into its own buffer (llama.h lets apply
 * point cur_p->data elsewhere); no clone function, but a ctx: cannot be cloned */
struct top1_ctx {
  bitnet_token_data buf[1];
};
static void top1_apply(struct bitnet_sampler *smpl, bitnet_token_data_array *cur_p) {
  struct top1_ctx *c = (struct top1_ctx *)smpl->ctx;
  size_t best = 0;
  for (size_t i = 1; i < cur_p->size; i++) {
    if (cur_p->data[i].logit > cur_p->data[best].logit) best = i;
  }
  c->buf[0] = cur_p->data[best];
  cur_p->data = c->buf;
  cur_p->size = 1;
  cur_p->selected = -1;
  cur_p->sorted = true;
}
static void top1_free(struct bitnet_sampler *smpl) {
  free(smpl->ctx);
  live_ctx--;
}
static struct bitnet_sampler_i top1_iface = {
    NULL, NULL, top1_apply, NULL, NULL, top1_free, NULL, NULL, NULL, NULL, NULL, NULL,
};
static struct bitnet_sampler *top1_new(void) {
  live_ctx++;
  return bitnet_sampler_init(&top1_iface, calloc(1, sizeof(struct top1_ctx)));
}

/* ---- "first": selects index 0; no ctx, no clone, no free (llama.h allows that) */
static void first_apply(struct bitnet_sampler *smpl, bitnet_token_data_array *cur_p) {
  (void)smpl;
  cur_p->selected = 0;
}
static struct bitnet_sampler_i first_iface = {
    NULL, NULL, first_apply, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
};

static bitnet_token argmax_except(const float *logits, int n, bitnet_token except) {
  int best = -1;
  for (int i = 0; i < n; i++) {
    if (i == except) continue;
    if (best < 0 || logits[i] > logits[best]) best = i;
  }
  return best;
}

static void layout(void) {
#if UINTPTR_MAX == 0xffffffffffffffffu
  /* llama.h 0c1e57098 on LP64: 12 function pointers; {iface, ctx}. */
  CHECK(sizeof(struct bitnet_sampler_i) == 96);
  CHECK(offsetof(struct bitnet_sampler_i, name) == 0);
  CHECK(offsetof(struct bitnet_sampler_i, apply) == 16);
  CHECK(offsetof(struct bitnet_sampler_i, free) == 40);
  CHECK(offsetof(struct bitnet_sampler_i, backend_init) == 48);
  CHECK(offsetof(struct bitnet_sampler_i, copy_state) == 88);
  CHECK(sizeof(struct bitnet_sampler) == 16);
  CHECK(offsetof(struct bitnet_sampler, iface) == 0 && offsetof(struct bitnet_sampler, ctx) == 8);
  CHECK(sizeof(struct bitnet_sampler_data) == 32);
#endif
}

static void model_free_checks(void) {
  /* alone */
  struct bitnet_sampler *s = ban_new(2);
  CHECK(s && s->iface == &ban_iface && ban_of(s)->banned == 2);
  CHECK(strcmp(bitnet_sampler_name(s), "ban") == 0);
  bitnet_token_data d[4] = {{0, 1.0f, 0}, {1, 0.5f, 0}, {2, 3.0f, 0}, {3, 2.0f, 0}};
  bitnet_token_data_array cur = {d, 4, -1, false};
  bitnet_sampler_apply(s, &cur);
  CHECK(isinf(d[2].logit) && d[2].logit < 0 && d[0].logit == 1.0f && cur.size == 4);
  bitnet_sampler_accept(s, 1);
  bitnet_sampler_reset(s);
  CHECK(ban_of(s)->n_accept == 1 && ban_of(s)->n_reset == 1 && ban_of(s)->n_apply == 1);
  CHECK(bitnet_sampler_get_seed(s) == BITNET_DEFAULT_SEED);
  struct bitnet_sampler *c = bitnet_sampler_clone(s);
  CHECK(c && c != s && c->ctx != s->ctx && ban_of(c)->banned == 2 && ban_of(c)->n_accept == 1);
  CHECK(live_ctx == 2);
  bitnet_sampler_free(c);
  CHECK(live_ctx == 1);

  /* in a chain with built-ins: ban 2, then greedy picks 3 */
  struct bitnet_sampler *chain = bitnet_sampler_chain_init(bitnet_sampler_chain_default_params());
  bitnet_sampler_chain_add(chain, bitnet_sampler_init_temp(1.0f));
  bitnet_sampler_chain_add(chain, s);
  bitnet_sampler_chain_add(chain, bitnet_sampler_init_greedy());
  CHECK(bitnet_sampler_chain_n(chain) == 3);
  CHECK(bitnet_sampler_chain_get(chain, 1) == s && bitnet_sampler_chain_get(chain, -1) == chain);
  CHECK(bitnet_sampler_chain_get(s, -1) == NULL); /* not a chain */
  bitnet_clear_error();
  CHECK(strcmp(bitnet_sampler_name(bitnet_sampler_chain_get(chain, 1)), "ban") == 0);
  CHECK(strcmp(bitnet_sampler_name(bitnet_sampler_chain_get(chain, 2)), "greedy") == 0);
  bitnet_sampler_chain_add(chain, s); /* twice: refused, would be freed twice */
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_token_data e[4] = {{0, 1.0f, 0}, {1, 0.5f, 0}, {2, 3.0f, 0}, {3, 2.0f, 0}};
  bitnet_token_data_array cur2 = {e, 4, -1, false};
  bitnet_sampler_apply(chain, &cur2);
  CHECK(cur2.selected == 3 && e[cur2.selected].id == 3);
  bitnet_sampler_accept(chain, 3);
  bitnet_sampler_reset(chain);
  CHECK(ban_of(s)->n_apply == 2 && ban_of(s)->n_accept == 2 && ban_of(s)->n_reset == 2);

  /* a clone of the chain clones the member through its iface */
  struct bitnet_sampler *cc = bitnet_sampler_clone(chain);
  CHECK(cc && bitnet_sampler_chain_n(cc) == 3);
  struct bitnet_sampler *cm = bitnet_sampler_chain_get(cc, 1);
  CHECK(cm && cm != s && cm->iface == &ban_iface && ban_of(cm)->banned == 2 && live_ctx == 2);
  bitnet_token_data f[4] = {{0, 1.0f, 0}, {1, 0.5f, 0}, {2, 3.0f, 0}, {3, 2.0f, 0}};
  bitnet_token_data_array cur3 = {f, 4, -1, false};
  bitnet_sampler_apply(cc, &cur3);
  CHECK(cur3.selected == 3 && ban_of(cm)->n_apply == 3 && ban_of(s)->n_apply == 2);
  int before = frees;
  bitnet_sampler_free(cc); /* frees the cloned member's ctx once */
  CHECK(live_ctx == 1 && frees == before + 1);

  /* copy: dst's ctx freed and replaced by a clone of src's state */
  struct bitnet_sampler *other = ban_new(7);
  bitnet_sampler_copy(s, other);
  CHECK(ban_of(other)->banned == 2 && ban_of(other)->n_accept == 2 && other->ctx != s->ctx && live_ctx == 2);
  struct bitnet_sampler *g = bitnet_sampler_init_greedy();
  bitnet_sampler_copy(g, other); /* different kinds: refused */
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(ban_of(other)->banned == 2);
  bitnet_sampler_free(g);
  bitnet_sampler_free(other);

  /* remove: the chain gives it back and no longer frees it */
  CHECK(bitnet_sampler_chain_remove(chain, 1) == s && bitnet_sampler_chain_n(chain) == 2);
  before = frees;
  bitnet_sampler_free(chain);
  CHECK(frees == before && live_ctx == 1);
  bitnet_sampler_free(s);
  CHECK(live_ctx == 0);

  /* no ctx, no clone, no free: a clone copies the handle */
  struct bitnet_sampler *first = bitnet_sampler_init(&first_iface, NULL);
  CHECK(first && strcmp(bitnet_sampler_name(first), "(null)") == 0);
  struct bitnet_sampler *first2 = bitnet_sampler_clone(first);
  CHECK(first2 && first2 != first && first2->iface == &first_iface && first2->ctx == NULL);
  bitnet_sampler_free(first2);

  /* a ctx and no clone: cannot be cloned, alone or in a chain (the partial clone is freed) */
  struct bitnet_sampler *t1 = top1_new();
  CHECK(bitnet_sampler_clone(t1) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_UNSUPPORTED);
  struct bitnet_sampler *chain2 = bitnet_sampler_chain_init(bitnet_sampler_chain_default_params());
  bitnet_sampler_chain_add(chain2, ban_new(1));
  bitnet_sampler_chain_add(chain2, t1);
  bitnet_sampler_chain_add(chain2, first);
  CHECK(bitnet_sampler_clone(chain2) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_UNSUPPORTED);
  CHECK(live_ctx == 2);
  /* top1 moves the data pointer to its buffer: the chain takes its one candidate from there */
  bitnet_token_data h[3] = {{0, 1.0f, 0}, {1, 5.0f, 0}, {2, 9.0f, 0}};
  bitnet_token_data_array cur4 = {h, 3, -1, false};
  bitnet_sampler_apply(chain2, &cur4); /* ban 1, keep 2, select index 0 */
  CHECK(cur4.size == 1 && cur4.selected == 0 && cur4.data[0].id == 2 && cur4.sorted);
  bitnet_sampler_free(chain2);
  CHECK(live_ctx == 0);

  /* bad arguments */
  CHECK(bitnet_sampler_init(NULL, NULL) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  struct bitnet_sampler *gr = bitnet_sampler_init_greedy();
  CHECK(bitnet_sampler_init(gr->iface, NULL) == NULL); /* the built-ins' table, foreign ctx */
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  /* a built-in called through its iface, as a wrapper sampler would */
  bitnet_token_data k[3] = {{0, 1.0f, 0}, {1, 5.0f, 0}, {2, 2.0f, 0}};
  bitnet_token_data_array cur5 = {k, 3, -1, false};
  gr->iface->apply(gr, &cur5);
  CHECK(cur5.selected == 1 && strcmp(gr->iface->name(gr), "greedy") == 0);
  struct bitnet_sampler *gr2 = gr->iface->clone(gr);
  CHECK(gr2 && strcmp(bitnet_sampler_name(gr2), "greedy") == 0);
  bitnet_sampler_free(gr2);
  bitnet_sampler_free(gr);
}

/* adaptive-p's transform on three candidates, recomputed here as llama.cpp writes it */
static void adaptive_p_by_hand(void) {
  const float target = 0.3f, decay = 0.5f;
  struct bitnet_sampler *a = bitnet_sampler_init_adaptive_p(target, decay, 7);
  CHECK(a && strcmp(bitnet_sampler_name(a), "adaptive-p") == 0);
  CHECK(bitnet_sampler_get_seed(a) == BITNET_DEFAULT_SEED); /* as llama.cpp */
  float logits[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
  bitnet_token_data d[3];
  for (int i = 0; i < 3; i++) d[i] = (bitnet_token_data){i, logits[i], 0.0f};
  bitnet_token_data_array cur = {d, 3, -1, false};
  bitnet_sampler_apply(a, &cur);
  /* unsorted softmax of the inputs */
  float mx = logits[0], p[3], sum = 0.0f;
  for (int i = 1; i < 3; i++) mx = logits[i] > mx ? logits[i] : mx;
  for (int i = 0; i < 3; i++) sum += (p[i] = expf(logits[i] - mx));
  for (int i = 0; i < 3; i++) p[i] /= sum;
  /* the starting average is the target: adapted = 2t - t */
  float adapted = 2.0f * target - (target / (1.0f - decay)) / (1.0f / (1.0f - decay));
  float q[3], qs = 0.0f, qmax;
  for (int i = 0; i < 3; i++) {
    float dist = fabsf((p[i] - adapted) * (1.0f / 0.3f));
    q[i] = 5.0f - 10.0f * dist * dist / (1.0f + dist);
    CHECK(fabsf(d[i].logit - q[i]) <= 1e-5f);
    CHECK(d[i].id == i);
  }
  qmax = q[0];
  for (int i = 1; i < 3; i++) qmax = q[i] > qmax ? q[i] : qmax;
  for (int i = 0; i < 3; i++) qs += (q[i] = expf(q[i] - qmax));
  for (int i = 0; i < 3; i++) CHECK(fabsf(d[i].p - q[i] / qs) <= 1e-6f);
  CHECK(fabsf(q[1] / qs - 0.6649f) < 1e-3f); /* the target token is the most likely now */
  CHECK(cur.selected >= 0 && cur.selected < 3 && !cur.sorted);
  bitnet_sampler_free(a);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
    return 2;
  }
  layout();
  model_free_checks();
  adaptive_p_by_hand();

  struct bitnet_model_params mp = bitnet_model_default_params();
  struct bitnet_model *model = bitnet_model_load_from_file(argv[1], mp);
  CHECK(model != NULL);
  if (!model) CHECK_DONE();
  const int n_vocab = bitnet_vocab_n_tokens(bitnet_model_get_vocab(model));
  struct bitnet_context_params cp = bitnet_context_default_params();
  cp.n_ctx = 64;
  cp.n_threads = cp.n_threads_batch = 1;
  struct bitnet_context *ctx = bitnet_init_from_model(model, cp);
  CHECK(ctx != NULL);
  bitnet_token prompt[4] = {1, 450, 4996, 17354};
  CHECK(bitnet_decode(ctx, bitnet_batch_get_one(prompt, 4)) == 0);
  const float *row = bitnet_get_logits_ith(ctx, -1);
  bitnet_token top = argmax_except(row, n_vocab, -1);
  bitnet_token second = argmax_except(row, n_vocab, top);

  /* ban the greedy token: the chain samples the runner-up */
  struct bitnet_sampler *s = ban_new(top);
  struct bitnet_sampler *chain = bitnet_sampler_chain_init(bitnet_sampler_chain_default_params());
  bitnet_sampler_chain_add(chain, bitnet_sampler_init_top_k(50));
  bitnet_sampler_chain_add(chain, s);
  bitnet_sampler_chain_add(chain, bitnet_sampler_init_greedy());
  CHECK(bitnet_sampler_sample(chain, ctx, -1) == second);
  CHECK(ban_of(s)->n_apply == 1 && ban_of(s)->n_accept == 1);
  struct bitnet_sampler *cc = bitnet_sampler_clone(chain);
  CHECK(cc && bitnet_sampler_sample(cc, ctx, -1) == second);
  CHECK(ban_of(bitnet_sampler_chain_get(cc, 1))->n_accept == 2 && ban_of(s)->n_accept == 1);
  bitnet_sampler_free(cc);
  /* a user sampler alone selects nothing: an error, not a crash */
  struct bitnet_sampler *alone = ban_new(top);
  CHECK(bitnet_sampler_sample(alone, ctx, -1) == BITNET_TOKEN_NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_sampler_free(alone);
  /* one that selects, alone: index 0 of the unsorted candidates is token 0 */
  struct bitnet_sampler *first = bitnet_sampler_init(&first_iface, NULL);
  CHECK(bitnet_sampler_sample(first, ctx, -1) == 0);
  bitnet_sampler_free(first);
  /* top1 (own buffer) then greedy: the argmax */
  struct bitnet_sampler *c2 = bitnet_sampler_chain_init(bitnet_sampler_chain_default_params());
  bitnet_sampler_chain_add(c2, top1_new());
  bitnet_sampler_chain_add(c2, bitnet_sampler_init_greedy());
  CHECK(bitnet_sampler_sample(c2, ctx, -1) == top);
  bitnet_sampler_free(c2);

  /* adaptive-p after min-p: valid tokens, same seed same tokens, reset replays, a clone too */
  struct bitnet_sampler *ap[2];
  for (int k = 0; k < 2; k++) {
    ap[k] = bitnet_sampler_chain_init(bitnet_sampler_chain_default_params());
    bitnet_sampler_chain_add(ap[k], bitnet_sampler_init_min_p(0.05f, 1));
    bitnet_sampler_chain_add(ap[k], bitnet_sampler_init_adaptive_p(0.5f, 0.9f, 42));
  }
  bitnet_token first_tok = -1;
  int distinct = 0;
  for (int step = 0; step < 6; step++) {
    bitnet_token t0 = bitnet_sampler_sample(ap[0], ctx, -1);
    bitnet_token t1 = bitnet_sampler_sample(ap[1], ctx, -1);
    CHECK(t0 >= 0 && t0 < n_vocab && t0 == t1);
    if (step == 0) first_tok = t0;
    distinct += t0 != first_tok;
  }
  bitnet_sampler_reset(ap[0]);
  CHECK(bitnet_sampler_sample(ap[0], ctx, -1) == first_tok);
  struct bitnet_sampler *apc = bitnet_sampler_clone(ap[0]);
  CHECK(apc && bitnet_sampler_chain_n(apc) == 2);
  CHECK(bitnet_sampler_sample(apc, ctx, -1) >= 0);
  bitnet_sampler_free(apc);
  printf("adaptive-p: %d of 5 later draws differ from the first\n", distinct);
  /* disabled (target < 0): a plain draw, still a valid token */
  struct bitnet_sampler *off = bitnet_sampler_init_adaptive_p(-1.0f, 0.9f, 3);
  bitnet_token t = bitnet_sampler_sample(off, ctx, -1);
  CHECK(t >= 0 && t < n_vocab);
  bitnet_sampler_free(off);
  bitnet_sampler_free(ap[0]);
  bitnet_sampler_free(ap[1]);

  bitnet_sampler_free(chain);
  CHECK(live_ctx == 0);
  bitnet_free(ctx);
  bitnet_model_free(model);
  CHECK_DONE();
}
