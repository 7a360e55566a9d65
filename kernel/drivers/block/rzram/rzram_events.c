// SPDX-License-Identifier: GPL-2.0
/*
 * The tracepoints of rzram, defined here for the Rust code to call
 * (through the rust_do_trace_* functions CREATE_RUST_TRACE_POINTS makes).
 */

#define CREATE_TRACE_POINTS
#define CREATE_RUST_TRACE_POINTS
#include <trace/events/rzram.h>
