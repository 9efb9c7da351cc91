/* Compiled, not run: bitnet.h must be clean C99 (-pedantic -Werror) and C++11 (header_check.cpp). */
#include "bitnet.h"

int header_check(void);
int header_check(void) {
  struct bitnet_batch b = bitnet_batch_get_one(NULL, 0);
  bitnet_batch plain = b; /* the llama.h-style typedef */
  enum bitnet_vocab_type t = BITNET_VOCAB_TYPE_SPM;
  bitnet_memory_t mem = NULL;
  (void)plain;
  (void)mem;
  return (int)t + BITNET_TOKEN_NULL + (int)BITNET_OK + (BITNET_DEFAULT_SEED == 0xFFFFFFFFu);
}
