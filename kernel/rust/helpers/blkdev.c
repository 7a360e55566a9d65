// SPDX-License-Identifier: GPL-2.0

#include <linux/blkdev.h>
#include <linux/sched.h>

__rust_helper struct gendisk *rust_helper_dev_to_disk(struct device *dev)
{
	return dev_to_disk(dev);
}

__rust_helper unsigned int rust_helper_disk_openers(struct gendisk *disk)
{
	return disk_openers(disk);
}

__rust_helper sector_t rust_helper_get_capacity(struct gendisk *disk)
{
	return get_capacity(disk);
}

__rust_helper loff_t rust_helper_bdev_nr_bytes(struct block_device *bdev)
{
	return bdev_nr_bytes(bdev);
}

/*
 * The task's installed plug. Read in C: task_struct's layout as bindgen
 * sees it need not match the compiler's (it read `plug` 48 bytes early).
 */
__rust_helper struct blk_plug *rust_helper_blk_current_plug(void)
{
	return current->plug;
}
