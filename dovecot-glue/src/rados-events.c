/* Dovecot events with the RADOS cost of each storage operation: see
   rados-events.h. The mailbox and mail vfuncs are wrapped by storage hooks
   (as Dovecot's own plugins do), so the storage files stay as they are. */

#include "lib.h"
#include "mail-storage-private.h"
#include "mail-user.h"
#include "rados-connect.h"
#include "rados-events.h"

#include <rados_mail.h>

#define RADOS_EVENT_NAME "rados_mail_operation"

#define RADOS_EVENTS_BOX(obj) \
	MODULE_CONTEXT_REQUIRE(obj, rados_events_storage_module)
#define RADOS_EVENTS_MAIL(obj) \
	MODULE_CONTEXT_REQUIRE(obj, rados_events_mail_module)
#define RADOS_EVENTS_USER(obj) \
	MODULE_CONTEXT_REQUIRE(obj, rados_events_user_module)
static MODULE_CONTEXT_DEFINE_INIT(rados_events_storage_module,
				  &mail_storage_module_register);
static MODULE_CONTEXT_DEFINE_INIT(rados_events_mail_module,
				  &mail_module_register);
static MODULE_CONTEXT_DEFINE_INIT(rados_events_user_module,
				  &mail_user_module_register);

/* Operations in progress (nesting depth). */
static unsigned int rados_ops_running = 0;
/* The store's counters when the last operation ended, and the work done
   outside operations since the last "other" event. */
static struct rm_stats rados_ops_last, rados_ops_outside;

static void rados_stats_now(struct rm_stats *stats_r)
{
	struct rm_store *store = rados_connect_process_store();

	/* before the store is opened its counters are all 0 */
	if (store == NULL || rm_store_stats(store, stats_r) != RM_RESULT_OK)
		i_zero(stats_r);
}

/* a - b of the counters that only grow (a >= b); the gauges
   (cache_*_bytes) are not differences and stay 0. */
static void rados_stats_sub(const struct rm_stats *a, const struct rm_stats *b,
			    struct rm_stats *d)
{
	i_zero(d);
	d->cache_memory_hits = a->cache_memory_hits - b->cache_memory_hits;
	d->cache_disk_hits = a->cache_disk_hits - b->cache_disk_hits;
	d->cache_misses = a->cache_misses - b->cache_misses;
	d->cache_corrupt_dropped =
		a->cache_corrupt_dropped - b->cache_corrupt_dropped;
	d->rados_reads = a->rados_reads - b->rados_reads;
	d->rados_writes = a->rados_writes - b->rados_writes;
	d->rados_lists = a->rados_lists - b->rados_lists;
	d->guard_failures = a->guard_failures - b->guard_failures;
	d->retries_exhausted = a->retries_exhausted - b->retries_exhausted;
	d->notifies_sent = a->notifies_sent - b->notifies_sent;
	d->notify_failures = a->notify_failures - b->notify_failures;
	d->watch_errors = a->watch_errors - b->watch_errors;
	d->rewatches = a->rewatches - b->rewatches;
	d->rados_bytes_read = a->rados_bytes_read - b->rados_bytes_read;
	d->rados_bytes_written =
		a->rados_bytes_written - b->rados_bytes_written;
}

static void rados_stats_add(struct rm_stats *sum, const struct rm_stats *d)
{
	struct rm_stats zero, neg;

	/* sum + d == sum - (0 - d) in unsigned arithmetic */
	i_zero(&zero);
	rados_stats_sub(&zero, d, &neg);
	rados_stats_sub(sum, &neg, sum);
}

static void rados_event_add_stats(struct event *event,
				  const struct rm_stats *d)
{
	event_add_int(event, "rados_reads", d->rados_reads);
	event_add_int(event, "rados_writes", d->rados_writes);
	event_add_int(event, "rados_lists", d->rados_lists);
	event_add_int(event, "rados_notifies", d->notifies_sent);
	event_add_int(event, "rados_bytes_read", d->rados_bytes_read);
	event_add_int(event, "rados_bytes_written", d->rados_bytes_written);
	event_add_int(event, "conflicts", d->guard_failures);
	/* every lost race is retried but those of the operations that gave
	   up after their last attempt */
	event_add_int(event, "retries",
		      d->guard_failures >= d->retries_exhausted ?
		      d->guard_failures - d->retries_exhausted : 0);
	event_add_int(event, "retries_exhausted", d->retries_exhausted);
	event_add_int(event, "cache_hits",
		      d->cache_memory_hits + d->cache_disk_hits);
	event_add_int(event, "cache_misses", d->cache_misses);
}

void rados_op_begin(struct rados_op *op, struct event *parent,
		    const char *operation)
{
	struct rm_stats now, outside;

	i_zero(op);
	if (rados_ops_running++ > 0)
		return;
	op->active = TRUE;
	rados_stats_now(&now);
	rados_stats_sub(&now, &rados_ops_last, &outside);
	rados_stats_add(&rados_ops_outside, &outside);
	op->before = now;
	op->event = event_create(parent);
	event_set_name(op->event, RADOS_EVENT_NAME);
	event_add_str(op->event, "operation", operation);
}

void rados_op_end(struct rados_op *op, int ret)
{
	struct rm_stats now, d;

	i_assert(rados_ops_running > 0);
	rados_ops_running--;
	if (!op->active)
		return;
	rados_stats_now(&now);
	rados_stats_sub(&now, &op->before, &d);
	rados_ops_last = now;
	rados_event_add_stats(op->event, &d);
	if (ret < 0)
		event_add_str(op->event, "error", "yes");
	e_debug(op->event, "rados-mail: %s: %llu reads, %llu writes",
		event_find_field_recursive_str(op->event, "operation"),
		(unsigned long long)d.rados_reads,
		(unsigned long long)d.rados_writes);
	event_unref(&op->event);
}

/* --- mailbox vfuncs ----------------------------------------------------- */

static int rados_events_open(struct mailbox *box)
{
	union mailbox_module_context *mbox = RADOS_EVENTS_BOX(box);
	struct rados_op op;
	int ret;

	rados_op_begin(&op, box->event, "mailbox_open");
	ret = mbox->super.open(box);
	rados_op_end(&op, ret);
	return ret;
}

static struct mailbox_sync_context *
rados_events_sync_init(struct mailbox *box, enum mailbox_sync_flags flags)
{
	union mailbox_module_context *mbox = RADOS_EVENTS_BOX(box);
	struct mailbox_sync_context *ctx;
	struct rados_op op;

	rados_op_begin(&op, box->event, "mailbox_sync");
	ctx = mbox->super.sync_init(box, flags);
	rados_op_end(&op, 0);
	return ctx;
}

static int rados_events_get_status(struct mailbox *box,
				   enum mailbox_status_items items,
				   struct mailbox_status *status_r)
{
	union mailbox_module_context *mbox = RADOS_EVENTS_BOX(box);
	struct rados_op op;
	int ret;

	rados_op_begin(&op, box->event, "mailbox_status");
	ret = mbox->super.get_status(box, items, status_r);
	rados_op_end(&op, ret);
	return ret;
}

static int rados_events_create_box(struct mailbox *box,
				   const struct mailbox_update *update,
				   bool directory)
{
	union mailbox_module_context *mbox = RADOS_EVENTS_BOX(box);
	struct rados_op op;
	int ret;

	rados_op_begin(&op, box->event, "mailbox_create");
	ret = mbox->super.create_box(box, update, directory);
	rados_op_end(&op, ret);
	return ret;
}

static int rados_events_delete_box(struct mailbox *box)
{
	union mailbox_module_context *mbox = RADOS_EVENTS_BOX(box);
	struct rados_op op;
	int ret;

	rados_op_begin(&op, box->event, "mailbox_delete");
	ret = mbox->super.delete_box(box);
	rados_op_end(&op, ret);
	return ret;
}

static int rados_events_rename_box(struct mailbox *src, struct mailbox *dest)
{
	union mailbox_module_context *mbox = RADOS_EVENTS_BOX(src);
	struct rados_op op;
	int ret;

	rados_op_begin(&op, src->event, "mailbox_rename");
	ret = mbox->super.rename_box(src, dest);
	rados_op_end(&op, ret);
	return ret;
}

/* The last transactions that got a copy or an expunge (compared, never
   dereferenced): a commit is named after what it carries, since saves,
   copies, expunges and flag or keyword updates all reach RADOS in it. */
static const struct mailbox_transaction_context *rados_events_copy_txn;
static const struct mailbox_transaction_context *rados_events_expunge_txn;

static const char *
rados_events_commit_name(struct mailbox_transaction_context *t)
{
	const char *name = "update_commit";

	if (t == rados_events_copy_txn)
		name = "copy_commit";
	else if (t->save_count > 0)
		name = "save_commit";
	else if (t == rados_events_expunge_txn)
		name = "expunge_commit";
	return name;
}

static void rados_events_forget_txn(struct mailbox_transaction_context *t)
{
	if (t == rados_events_copy_txn)
		rados_events_copy_txn = NULL;
	if (t == rados_events_expunge_txn)
		rados_events_expunge_txn = NULL;
}

static int
rados_events_transaction_commit(
	struct mailbox_transaction_context *t,
	struct mail_transaction_commit_changes *changes_r)
{
	union mailbox_module_context *mbox = RADOS_EVENTS_BOX(t->box);
	struct rados_op op;
	int ret;

	rados_op_begin(&op, t->box->event, rados_events_commit_name(t));
	rados_events_forget_txn(t);
	ret = mbox->super.transaction_commit(t, changes_r);
	rados_op_end(&op, ret);
	return ret;
}

static void
rados_events_transaction_rollback(struct mailbox_transaction_context *t)
{
	union mailbox_module_context *mbox = RADOS_EVENTS_BOX(t->box);

	rados_events_forget_txn(t);
	mbox->super.transaction_rollback(t);
}

static int rados_events_save_finish(struct mail_save_context *ctx)
{
	union mailbox_module_context *mbox =
		RADOS_EVENTS_BOX(ctx->transaction->box);
	struct rados_op op;
	int ret;

	rados_op_begin(&op, ctx->transaction->box->event, "save");
	ret = mbox->super.save_finish(ctx);
	rados_op_end(&op, ret);
	return ret;
}

static int rados_events_copy(struct mail_save_context *ctx, struct mail *mail)
{
	union mailbox_module_context *mbox =
		RADOS_EVENTS_BOX(ctx->transaction->box);
	struct rados_op op;
	bool save;
	int ret;

	/* lmtp and doveadm import deliver by copying from another storage
	   (raw): that is a save */
	save = strcmp(mail->box->storage->name, "rados") != 0;
	if (!save)
		rados_events_copy_txn = ctx->transaction;
	rados_op_begin(&op, ctx->transaction->box->event,
		       save ? "save" : "copy");
	ret = mbox->super.copy(ctx, mail);
	rados_op_end(&op, ret);
	return ret;
}

static void rados_events_mailbox_allocated(struct mailbox *box)
{
	struct mailbox_vfuncs *v = box->vlast;
	union mailbox_module_context *mbox;

	if (strcmp(box->storage->name, "rados") != 0)
		return;
	mbox = p_new(box->pool, union mailbox_module_context, 1);
	mbox->super = *v;
	box->vlast = &mbox->super;
	v->open = rados_events_open;
	v->sync_init = rados_events_sync_init;
	v->get_status = rados_events_get_status;
	v->create_box = rados_events_create_box;
	v->delete_box = rados_events_delete_box;
	v->rename_box = rados_events_rename_box;
	v->transaction_commit = rados_events_transaction_commit;
	v->transaction_rollback = rados_events_transaction_rollback;
	v->save_finish = rados_events_save_finish;
	v->copy = rados_events_copy;
	MODULE_CONTEXT_SET_SELF(box, rados_events_storage_module, mbox);
}

/* --- mail vfuncs -------------------------------------------------------- */

static int rados_events_get_stream(struct mail *_mail, bool get_body,
				   struct message_size *hdr_size,
				   struct message_size *body_size,
				   struct istream **stream_r)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	union mail_module_context *rmail = RADOS_EVENTS_MAIL(mail);
	struct rados_op op;
	int ret;

	rados_op_begin(&op, _mail->box->event, "body_fetch");
	ret = rmail->super.get_stream(_mail, get_body, hdr_size, body_size,
				      stream_r);
	rados_op_end(&op, ret);
	return ret;
}

static void rados_events_expunge(struct mail *_mail)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	union mail_module_context *rmail = RADOS_EVENTS_MAIL(mail);

	rados_events_expunge_txn = _mail->transaction;
	rmail->super.expunge(_mail);
}

static void rados_events_mail_allocated(struct mail *_mail)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	struct mail_vfuncs *v = mail->vlast;
	union mail_module_context *rmail;

	if (strcmp(_mail->box->storage->name, "rados") != 0)
		return;
	rmail = p_new(mail->pool, union mail_module_context, 1);
	rmail->super = *v;
	mail->vlast = &rmail->super;
	v->get_stream = rados_events_get_stream;
	v->expunge = rados_events_expunge;
	MODULE_CONTEXT_SET_SELF(mail, rados_events_mail_module, rmail);
}

/* --- user deinit: the rest, and the store's counters ---------------------- */

static void rados_events_user_deinit(struct mail_user *user)
{
	union mail_user_module_context *ruser = RADOS_EVENTS_USER(user);
	struct rm_stats now, outside;
	struct event *event;

	ruser->super.deinit(user);
	if (rados_connect_process_store() == NULL || rados_ops_running > 0)
		return;
	rados_stats_now(&now);
	rados_stats_sub(&now, &rados_ops_last, &outside);
	rados_stats_add(&rados_ops_outside, &outside);
	rados_ops_last = now;

	event = event_create(user->event);
	event_set_name(event, RADOS_EVENT_NAME);
	event_add_str(event, "operation", "other");
	rados_event_add_stats(event, &rados_ops_outside);
	e_debug(event,
		"rados-mail: work outside operations: %llu reads, %llu writes",
		(unsigned long long)rados_ops_outside.rados_reads,
		(unsigned long long)rados_ops_outside.rados_writes);
	event_unref(&event);
	i_zero(&rados_ops_outside);

	e_debug(user->event, "rados-mail: store stats: rados_reads=%llu "
		"rados_writes=%llu rados_lists=%llu rados_notifies=%llu "
		"rados_notify_failures=%llu rados_bytes_read=%llu "
		"rados_bytes_written=%llu "
		"conflicts=%llu retries_exhausted=%llu cache_hits=%llu "
		"cache_misses=%llu",
		(unsigned long long)now.rados_reads,
		(unsigned long long)now.rados_writes,
		(unsigned long long)now.rados_lists,
		(unsigned long long)now.notifies_sent,
		(unsigned long long)now.notify_failures,
		(unsigned long long)now.rados_bytes_read,
		(unsigned long long)now.rados_bytes_written,
		(unsigned long long)now.guard_failures,
		(unsigned long long)now.retries_exhausted,
		(unsigned long long)(now.cache_memory_hits +
				     now.cache_disk_hits),
		(unsigned long long)now.cache_misses);
}

static void rados_events_user_created(struct mail_user *user)
{
	struct mail_user_vfuncs *v = user->vlast;
	union mail_user_module_context *ruser;

	ruser = p_new(user->pool, union mail_user_module_context, 1);
	ruser->super = *v;
	user->vlast = &ruser->super;
	v->deinit = rados_events_user_deinit;
	MODULE_CONTEXT_SET_SELF(user, rados_events_user_module, ruser);
}

static struct mail_storage_hooks rados_events_hooks = {
	.mail_user_created = rados_events_user_created,
	.mailbox_allocated = rados_events_mailbox_allocated,
	.mail_allocated = rados_events_mail_allocated,
};

void rados_events_init(struct module *module)
{
	mail_storage_hooks_add(module, &rados_events_hooks);
}

void rados_events_deinit(void)
{
	mail_storage_hooks_remove(&rados_events_hooks);
}
