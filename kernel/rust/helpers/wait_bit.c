// SPDX-License-Identifier: GPL-2.0

#include <linux/wait_bit.h>

__rust_helper int rust_helper_wait_on_bit_lock(unsigned long *word, int bit,
					       unsigned int mode)
{
	return wait_on_bit_lock(word, bit, mode);
}

__rust_helper void rust_helper_clear_and_wake_up_bit(int bit,
						     unsigned long *word)
{
	clear_and_wake_up_bit(bit, word);
}

__rust_helper bool rust_helper_test_and_set_bit_lock(long nr,
						     volatile unsigned long *addr)
{
	return test_and_set_bit_lock(nr, addr);
}
