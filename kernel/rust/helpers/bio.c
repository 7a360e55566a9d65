// SPDX-License-Identifier: GPL-2.0

#include <linux/bio.h>
#include <linux/highmem.h>
#include <linux/workqueue.h>

__rust_helper enum req_op rust_helper_bio_op(const struct bio *bio)
{
	return bio_op(bio);
}

__rust_helper struct bio_vec rust_helper_bio_iter_iovec(struct bio *bio,
							struct bvec_iter iter)
{
	return bio_iter_iovec(bio, iter);
}

__rust_helper void rust_helper_bio_advance_iter_single(const struct bio *bio,
							struct bvec_iter *iter,
							unsigned int bytes)
{
	bio_advance_iter_single(bio, iter, bytes);
}

__rust_helper void rust_helper_bio_inc_remaining(struct bio *bio)
{
	bio_inc_remaining(bio);
}

__rust_helper void rust_helper_destroy_work_on_stack(struct work_struct *work)
{
	destroy_work_on_stack(work);
}

__rust_helper void rust_helper_flush_dcache_page(struct page *page)
{
	flush_dcache_page(page);
}
