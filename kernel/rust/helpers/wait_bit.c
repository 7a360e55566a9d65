// SPDX-License-Identifier: GPL-2.0

#include <linux/lockdep.h>
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

/*
 * A lockdep map shared by many bit locks (zram's table_lock_map): the
 * lockdep calls are macros that compile to nothing without CONFIG_LOCKDEP.
 */
__rust_helper void rust_helper_lockdep_map_init(struct lockdep_map *map,
						const char *name,
						struct lock_class_key *key)
{
	lockdep_init_map(map, name, key, 0);
}

__rust_helper void rust_helper_lockdep_map_acquire(struct lockdep_map *map,
						   bool trylock)
{
	mutex_acquire(map, 0, trylock, _RET_IP_);
}

__rust_helper void rust_helper_lockdep_map_acquired(struct lockdep_map *map)
{
	lock_acquired(map, _RET_IP_);
}

__rust_helper void rust_helper_lockdep_map_release(struct lockdep_map *map)
{
	mutex_release(map, _RET_IP_);
}

/* 1 held, 0 not held by the current task, -1 no lockdep to ask. */
__rust_helper int rust_helper_lockdep_map_is_held(struct lockdep_map *map)
{
#ifdef CONFIG_LOCKDEP
	return lock_is_held(map);
#else
	return -1;
#endif
}
