/* libFuzzer harness for the BT decoder: any bytes, every mode. Checks the
 * decoder's own invariants (length bounds, consistency when more bytes are
 * available, register ranges). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "monitor/bt/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum bt_mode modes[] = { BT_MODE16, BT_MODE32, BT_MODE64 };
	uint8_t buf[32];
	size_t n = size < sizeof(buf) ? size : sizeof(buf);
	memset(buf, 0, sizeof(buf));
	memcpy(buf, data, n);
	for (int m = 0; m < 3; m++) {
		struct bt_insn a, b;
		int r = bt_decode(buf, n, modes[m], &a);
		if (r == 0) {
			if (a.len < 1 || a.len > 15 || a.len > n)
				abort();
			if (a.reg > 15 || a.rm > 15 || a.base > 16 || a.index > 15)
				abort();
			if (a.opsize != 2 && a.opsize != 4 && a.opsize != 8)
				abort();
			/* Exactly len bytes are enough; more change nothing. */
			if (bt_decode(buf, a.len, modes[m], &b) != 0 || b.len != a.len ||
			    b.op != a.op || b.imm != a.imm || b.disp != a.disp)
				abort();
		} else if (r != -EAGAIN && r != -EILSEQ && r != -E2BIG) {
			abort();
		}
		if (r == -EAGAIN && n >= 15)
			abort();
		if (r == 0 || r == -EILSEQ || r == -E2BIG) {
			/* The full-length answer is stable with padding. */
			if (bt_decode(buf, sizeof(buf), modes[m], &b) != r)
				abort();
		}
	}
	return 0;
}
