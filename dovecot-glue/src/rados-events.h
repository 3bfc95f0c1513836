#ifndef RADOS_EVENTS_H
#define RADOS_EVENTS_H

#include <rados_mail.h>

struct event;
struct module;

/* One operation being measured (on the caller's stack). */
struct rados_op {
	struct event *event;
	struct rm_stats before;
	/* FALSE for an operation inside another one: the outer one counts */
	bool active;
};

/* Metrics: every storage operation on a rados mailbox (open, sync, status,
   create/delete/rename, save, copy, transaction commit, body fetch; dict
   commit, see rados-dict.c) sends a
   Dovecot event "rados_mail_operation" (a child of the mailbox's event; its
   duration is the operation's latency) with the field "operation" and the
   differences of the process store's counters (rm_store_stats) around it:
   rados_reads, rados_writes, rados_lists, rados_notifies, rados_bytes_read,
   rados_bytes_written, conflicts, retries, retries_exhausted, cache_hits,
   cache_misses, and "error" = yes when it failed. RADOS work between
   operations (the store's own threads, calls made outside these vfuncs) is
   sent as operation "other" when the user is deinitialized, so the sum over
   the events of a process equals the store's counters; these are logged then
   as a debug line "rados-mail: store stats: ..." (see dovecot-glue/README.md,
   Metrics). */
void rados_events_init(struct module *module);
/* Measures one operation of the process store by hand (the mailbox and mail
   vfuncs are measured by the hooks): begin before it, end after it with its
   result (< 0: failed), which sends the event, a child of parent. */
void rados_op_begin(struct rados_op *op, struct event *parent,
		    const char *operation);
void rados_op_end(struct rados_op *op, int ret);
void rados_events_deinit(void);

#endif
