/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tracepoints of rzram (drivers/block/rzram): slot accesses and writeback
 * to the backing device, for tools that decide what to write back.
 */

#undef TRACE_SYSTEM
#define TRACE_SYSTEM rzram

#if !defined(_TRACE_RZRAM_H) || defined(TRACE_HEADER_MULTI_READ)
#define _TRACE_RZRAM_H

#include <linux/tracepoint.h>
#include <linux/types.h>

/* rzram_slot_access op values */
#define RZRAM_ACCESS_READ	0
#define RZRAM_ACCESS_WRITE	1
#define RZRAM_ACCESS_FREE	2

TRACE_EVENT(rzram_slot_access,
	TP_PROTO(dev_t dev, u64 index, u32 op),
	TP_ARGS(dev, index, op),
	TP_STRUCT__entry(
		__field(dev_t, dev)
		__field(u64, index)
		__field(u32, op)
	),
	TP_fast_assign(
		__entry->dev = dev;
		__entry->index = index;
		__entry->op = op;
	),
	TP_printk("dev=%d,%d index=%llu op=%s",
		  MAJOR(__entry->dev), MINOR(__entry->dev), __entry->index,
		  __print_symbolic(__entry->op, { 0, "read" }, { 1, "write" },
				   { 2, "free" }))
);

TRACE_EVENT(rzram_wb_submit,
	TP_PROTO(dev_t dev, u64 index, u64 block),
	TP_ARGS(dev, index, block),
	TP_STRUCT__entry(
		__field(dev_t, dev)
		__field(u64, index)
		__field(u64, block)
	),
	TP_fast_assign(
		__entry->dev = dev;
		__entry->index = index;
		__entry->block = block;
	),
	TP_printk("dev=%d,%d index=%llu block=%llu",
		  MAJOR(__entry->dev), MINOR(__entry->dev), __entry->index,
		  __entry->block)
);

DECLARE_EVENT_CLASS(rzram_bd_io,
	TP_PROTO(dev_t dev, u64 index, u64 block, u64 latency_ns, int status),
	TP_ARGS(dev, index, block, latency_ns, status),
	TP_STRUCT__entry(
		__field(dev_t, dev)
		__field(u64, index)
		__field(u64, block)
		__field(u64, latency_ns)
		__field(int, status)
	),
	TP_fast_assign(
		__entry->dev = dev;
		__entry->index = index;
		__entry->block = block;
		__entry->latency_ns = latency_ns;
		__entry->status = status;
	),
	TP_printk("dev=%d,%d index=%llu block=%llu latency_ns=%llu status=%d",
		  MAJOR(__entry->dev), MINOR(__entry->dev), __entry->index,
		  __entry->block, __entry->latency_ns, __entry->status)
);

/* A page written back (status 0) or not (negative errno). */
DEFINE_EVENT(rzram_bd_io, rzram_wb_complete,
	TP_PROTO(dev_t dev, u64 index, u64 block, u64 latency_ns, int status),
	TP_ARGS(dev, index, block, latency_ns, status)
);

/* A written-back page read from the backing device. */
DEFINE_EVENT(rzram_bd_io, rzram_bd_read,
	TP_PROTO(dev_t dev, u64 index, u64 block, u64 latency_ns, int status),
	TP_ARGS(dev, index, block, latency_ns, status)
);

#endif /* _TRACE_RZRAM_H */

/* This part must be outside protection */
#include <trace/define_trace.h>
