// Compiled, not run: bitnet.h in C++11 (-pedantic -Werror), with its extern "C" linkage.
#include "bitnet.h"

int header_check_cxx();
int header_check_cxx() {
  bitnet_batch b = bitnet_batch_get_one(nullptr, 0);
  enum bitnet_vocab_type t = BITNET_VOCAB_TYPE_BPE;
  bitnet_status s = bitnet_last_status();
  (void)b;
  return static_cast<int>(t) + static_cast<int>(s);
}
