/* Flag, keyword and expunge changes of a mailbox transaction. The mail vfuncs
   queue them here instead of writing the local index; the commit applies them
   to RADOS (as few rm_mailbox_store_flags calls as possible, then one
   rm_mailbox_expunge) and only then commits the local index transaction. The
   local index learns the changes, with RADOS's modseqs, from the next sync.
   A RADOS failure fails the commit: nothing is reported as done that isn't. */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "seq-range-array.h"
#include "mail-index-transaction-private.h"
#include "rados-storage.h"

struct rados_change {
	uint32_t uid;
	bool keywords;
	enum modify_type modify_type;
	/* RM_FLAG_* for flag changes */
	uint32_t flags;
	/* NULL-terminated, for keyword changes */
	const char *const *names;
};

struct rados_transaction_context {
	union mailbox_transaction_module_context module_ctx;
	pool_t pool;
	ARRAY(struct rados_change) changes;
	ARRAY_TYPE(uint32_t) expunges;
};

/* The net effect of a transaction's changes on one mail, per dimension:
   add these, remove those (for keywords also: replace with kw_add). */
struct rados_uid_state {
	uint32_t uid;
	bool flags_touched, flags_replace;
	uint32_t flags_add, flags_remove;
	bool kw_touched, kw_replace;
	ARRAY_TYPE(const_string) kw_add, kw_remove;
};

/* One rm_mailbox_store_flags call and the UIDs it applies to. */
struct rados_store_call {
	uint32_t mode, flags;
	ARRAY_TYPE(const_string) keywords;
	ARRAY_TYPE(uint32_t) uids;
	/* not the first call for its UIDs: applied unconditionally, and not
	   to the UIDs the first call left alone (UNCHANGEDSINCE) */
	bool second;
};
ARRAY_DEFINE_TYPE(rados_store_call, struct rados_store_call);

#define RADOS_TRANS_CONTEXT(obj) MODULE_CONTEXT(obj, rados_trans_module)
static MODULE_CONTEXT_DEFINE_INIT(rados_trans_module,
				  &mail_storage_module_register);

static struct rados_transaction_context *
rados_trans_get(struct mailbox_transaction_context *t)
{
	struct rados_transaction_context *rt = RADOS_TRANS_CONTEXT(t);
	pool_t pool;

	if (rt == NULL) {
		pool = pool_alloconly_create("rados transaction", 1024);
		rt = p_new(pool, struct rados_transaction_context, 1);
		rt->pool = pool;
		p_array_init(&rt->changes, pool, 32);
		p_array_init(&rt->expunges, pool, 32);
		MODULE_CONTEXT_SET(t, rados_trans_module, rt);
	}
	return rt;
}

static void rados_trans_free(struct mailbox_transaction_context *t)
{
	struct rados_transaction_context *rt = RADOS_TRANS_CONTEXT(t);

	if (rt == NULL)
		return;
	MODULE_CONTEXT_UNSET(t, rados_trans_module);
	pool_unref(&rt->pool);
}

void rados_transaction_update_flags(struct mail *mail,
				    enum modify_type modify_type,
				    enum mail_flags flags)
{
	struct rados_transaction_context *rt =
		rados_trans_get(mail->transaction);
	struct rados_change *change;

	change = array_append_space(&rt->changes);
	change->uid = mail->uid;
	change->modify_type = modify_type;
	change->flags = rados_flags_from_dovecot(flags);
}

void rados_transaction_update_keywords(struct mail *mail,
				       enum modify_type modify_type,
				       struct mail_keywords *keywords)
{
	struct rados_transaction_context *rt =
		rados_trans_get(mail->transaction);
	const ARRAY_TYPE(keywords) *all;
	struct rados_change *change;
	const char **names;
	unsigned int i, count = keywords == NULL ? 0 : keywords->count;

	names = p_new(rt->pool, const char *, count + 1);
	if (count > 0) {
		all = mail_index_get_keywords(keywords->index);
		for (i = 0; i < count; i++) {
			names[i] = p_strdup(rt->pool,
				array_idx_elem(all, keywords->idx[i]));
		}
	}
	change = array_append_space(&rt->changes);
	change->uid = mail->uid;
	change->keywords = TRUE;
	change->modify_type = modify_type;
	change->names = names;
}

void rados_transaction_expunge(struct mail *mail)
{
	struct rados_transaction_context *rt =
		rados_trans_get(mail->transaction);

	array_push_back(&rt->expunges, &mail->uid);
}

static bool kw_array_has(const ARRAY_TYPE(const_string) *arr, const char *name)
{
	const char *s;

	array_foreach_elem(arr, s) {
		if (strcmp(s, name) == 0)
			return TRUE;
	}
	return FALSE;
}

static void kw_array_remove(ARRAY_TYPE(const_string) *arr, const char *name)
{
	unsigned int i, count = array_count(arr);

	for (i = 0; i < count; i++) {
		if (strcmp(array_idx_elem(arr, i), name) == 0) {
			array_delete(arr, i, 1);
			return;
		}
	}
}

static void kw_array_add(ARRAY_TYPE(const_string) *arr, const char *name)
{
	if (!kw_array_has(arr, name))
		array_push_back(arr, &name);
}

static void rados_uid_state_apply(struct rados_uid_state *st,
				  const struct rados_change *change)
{
	const char *const *name;

	if (!change->keywords) {
		st->flags_touched = TRUE;
		switch (change->modify_type) {
		case MODIFY_REPLACE:
			st->flags_replace = TRUE;
			st->flags_add = change->flags;
			st->flags_remove = RM_FLAG_ALL & ~change->flags;
			break;
		case MODIFY_ADD:
			st->flags_add |= change->flags;
			st->flags_remove &= ~change->flags;
			break;
		case MODIFY_REMOVE:
			st->flags_remove |= change->flags;
			st->flags_add &= ~change->flags;
			break;
		}
		return;
	}
	st->kw_touched = TRUE;
	if (change->modify_type == MODIFY_REPLACE) {
		st->kw_replace = TRUE;
		array_clear(&st->kw_add);
		array_clear(&st->kw_remove);
	}
	for (name = change->names; *name != NULL; name++) {
		if (change->modify_type == MODIFY_REMOVE) {
			kw_array_remove(&st->kw_add, *name);
			if (!st->kw_replace)
				kw_array_add(&st->kw_remove, *name);
		} else {
			kw_array_remove(&st->kw_remove, *name);
			kw_array_add(&st->kw_add, *name);
		}
	}
}

static int const_str_cmp(const char *const *a, const char *const *b)
{
	return strcmp(*a, *b);
}

static bool rados_call_matches(const struct rados_store_call *call,
			       uint32_t mode, uint32_t flags, bool second,
			       const ARRAY_TYPE(const_string) *keywords)
{
	unsigned int i, count = array_count(keywords);

	if (call->mode != mode || call->flags != flags ||
	    call->second != second || array_count(&call->keywords) != count)
		return FALSE;
	for (i = 0; i < count; i++) {
		if (strcmp(array_idx_elem(&call->keywords, i),
			   array_idx_elem(keywords, i)) != 0)
			return FALSE;
	}
	return TRUE;
}

static void rados_calls_add(ARRAY_TYPE(rados_store_call) *calls,
			    uint32_t uid, uint32_t mode, uint32_t flags,
			    bool second, ARRAY_TYPE(const_string) *keywords)
{
	struct rados_store_call *call;

	array_sort(keywords, const_str_cmp);
	array_foreach_modifiable(calls, call) {
		if (rados_call_matches(call, mode, flags, second, keywords)) {
			array_push_back(&call->uids, &uid);
			return;
		}
	}
	call = array_append_space(calls);
	call->mode = mode;
	call->flags = flags;
	call->second = second;
	t_array_init(&call->keywords, array_count(keywords) + 1);
	array_append_array(&call->keywords, keywords);
	t_array_init(&call->uids, 32);
	array_push_back(&call->uids, &uid);
}

static void rados_keywords_cb(void *userdata, const char *name,
			      size_t name_len)
{
	ARRAY_TYPE(const_string) *arr = userdata;
	const char *dup = t_strndup(name, name_len);

	array_push_back(arr, &dup);
}

static void rados_calls_add_one(ARRAY_TYPE(rados_store_call) *calls,
				uint32_t uid, uint32_t mode, uint32_t flags,
				const char *keyword, bool *first_done)
{
	ARRAY_TYPE(const_string) keywords;

	t_array_init(&keywords, 1);
	if (keyword != NULL)
		array_push_back(&keywords, &keyword);
	rados_calls_add(calls, uid, mode, flags, *first_done, &keywords);
	*first_done = TRUE;
}

/* Turns one mail's net change into calls that each change one thing: the
   flags (added, removed), or a single keyword (added, removed). RADOS gives
   each call its own modseq, just as Dovecot's log counts one modseq per flag
   update record and per keyword record: so the local index, which learns
   the changes from the next sync, counts exactly the modseqs RADOS counted. */
static int rados_uid_state_calls(struct rados_mailbox *mbox,
				 struct rados_uid_state *st,
				 ARRAY_TYPE(rados_store_call) *calls)
{
	ARRAY_TYPE(const_string) current, kw_remove;
	const char *name;
	enum rm_result ret;
	bool first_done = FALSE;

	t_array_init(&kw_remove, 8);
	if (st->kw_replace) {
		/* the keywords the mail has in RADOS that are not wanted */
		t_array_init(&current, 8);
		ret = rm_mailbox_keywords(mbox->rmb, st->uid,
					  rados_keywords_cb, &current);
		if (ret == RM_RESULT_NOT_FOUND)
			return 0;
		if (ret != RM_RESULT_OK) {
			rados_storage_set_error(mbox->box.storage, ret,
						"reading keywords");
			return -1;
		}
		array_foreach_elem(&current, name) {
			if (!kw_array_has(&st->kw_add, name))
				array_push_back(&kw_remove, &name);
		}
	} else {
		array_append_array(&kw_remove, &st->kw_remove);
	}
	if (st->flags_add != 0) {
		rados_calls_add_one(calls, st->uid, RM_STORE_MODE_ADD,
				    st->flags_add, NULL, &first_done);
	}
	if (st->flags_remove != 0) {
		rados_calls_add_one(calls, st->uid, RM_STORE_MODE_REMOVE,
				    st->flags_remove, NULL, &first_done);
	}
	array_foreach_elem(&st->kw_add, name) {
		rados_calls_add_one(calls, st->uid, RM_STORE_MODE_ADD, 0,
				    name, &first_done);
	}
	array_foreach_elem(&kw_remove, name) {
		rados_calls_add_one(calls, st->uid, RM_STORE_MODE_REMOVE, 0,
				    name, &first_done);
	}
	return 0;
}

static int rados_store_call(struct mailbox_transaction_context *t,
			    struct rados_store_call *call,
			    ARRAY_TYPE(seq_range) *conflicts)
{
	struct rados_mailbox *mbox = RADOS_MAILBOX(t->box);
	uint64_t unchanged_since = t->itrans->max_modseq == 0 ?
		RM_UNCHANGED_SINCE_ANY : t->itrans->max_modseq;
	struct rm_flags_outcome out;
	const char **keywords;
	ARRAY_TYPE(uint32_t) uids;
	uint32_t *modified, uid, seq;
	enum rm_result ret;
	unsigned int i;

	t_array_init(&uids, array_count(&call->uids));
	array_foreach_elem(&call->uids, uid) {
		/* a second call skips what the first left alone */
		if (!call->second || !seq_range_exists(conflicts, uid))
			array_push_back(&uids, &uid);
	}
	if (array_count(&uids) == 0)
		return 0;
	if (call->second)
		unchanged_since = RM_UNCHANGED_SINCE_ANY;

	keywords = t_new(const char *, array_count(&call->keywords) + 1);
	for (i = 0; i < array_count(&call->keywords); i++)
		keywords[i] = array_idx_elem(&call->keywords, i);
	modified = t_new(uint32_t, array_count(&uids));
	ret = rm_mailbox_store_flags(mbox->rmb, array_front(&uids),
				     array_count(&uids), call->mode,
				     call->flags, keywords,
				     array_count(&call->keywords),
				     unchanged_since, modified, &out);
	if (ret != RM_RESULT_OK) {
		rados_storage_set_error(t->box->storage, ret,
					"storing flags");
		return -1;
	}
	for (i = 0; i < out.modified; i++) {
		seq_range_array_add(conflicts, modified[i]);
		if (t->itrans->conflict_seqs != NULL &&
		    mail_index_lookup_seq(t->view, modified[i], &seq))
			seq_range_array_add(t->itrans->conflict_seqs, seq);
	}
	return 0;
}

static int rados_transaction_apply(struct mailbox_transaction_context *t,
				   struct rados_transaction_context *rt)
{
	struct rados_mailbox *mbox = RADOS_MAILBOX(t->box);
	HASH_TABLE(void *, struct rados_uid_state *) states;
	ARRAY(struct rados_uid_state *) order;
	ARRAY_TYPE(rados_store_call) calls;
	ARRAY_TYPE(seq_range) conflicts;
	const struct rados_change *change;
	struct rados_uid_state *st;
	struct rados_store_call *call;
	enum rm_result ret;
	size_t expunged;
	int result = 0;

	hash_table_create_direct(&states, pool_datastack_create(), 0);
	t_array_init(&order, 32);
	array_foreach(&rt->changes, change) {
		st = hash_table_lookup(states, POINTER_CAST(change->uid));
		if (st == NULL) {
			st = t_new(struct rados_uid_state, 1);
			st->uid = change->uid;
			t_array_init(&st->kw_add, 4);
			t_array_init(&st->kw_remove, 4);
			hash_table_insert(states, POINTER_CAST(change->uid),
					  st);
			array_push_back(&order, &st);
		}
		rados_uid_state_apply(st, change);
	}
	hash_table_destroy(&states);

	t_array_init(&calls, 4);
	array_foreach_elem(&order, st) {
		if (rados_uid_state_calls(mbox, st, &calls) < 0)
			return -1;
	}
	t_array_init(&conflicts, 8);
	array_foreach_modifiable(&calls, call) {
		if (!call->second && rados_store_call(t, call, &conflicts) < 0)
			return -1;
	}
	array_foreach_modifiable(&calls, call) {
		if (call->second && rados_store_call(t, call, &conflicts) < 0)
			return -1;
	}

	if (array_count(&rt->expunges) > 0) {
		unsigned int n = array_count(&rt->expunges);
		uint32_t *gone = t_new(uint32_t, n);
		size_t i;

		ret = rm_mailbox_expunge_uids(mbox->rmb,
					      array_front(&rt->expunges), n,
					      gone, &expunged);
		if (ret != RM_RESULT_OK) {
			rados_storage_set_error(t->box->storage, ret,
						"expunging");
			result = -1;
		} else {
			/* Plugins (quota, fts, ...) hear of each expunge
			   once: from the process whose call removed it. */
			for (i = 0; i < expunged; i++) {
				mailbox_sync_notify(t->box, gone[i],
						    MAILBOX_SYNC_TYPE_EXPUNGE);
			}
			mailbox_sync_notify(t->box, 0, 0);
		}
	}
	return result;
}

int rados_transaction_commit(struct mailbox_transaction_context *t,
			     struct mail_transaction_commit_changes *changes_r)
{
	struct rados_transaction_context *rt = RADOS_TRANS_CONTEXT(t);
	struct rados_mailbox *mbox = RADOS_MAILBOX(t->box);
	int ret = 0;

	if (rt != NULL) {
		if (array_count(&rt->changes) > 0 ||
		    array_count(&rt->expunges) > 0) {
			/* even a partial failure may have changed something */
			mbox->sync_pending = TRUE;
			T_BEGIN {
				ret = rados_transaction_apply(t, rt);
			} T_END;
		}
		rados_trans_free(t);
		if (ret < 0) {
			index_transaction_rollback(t);
			return -1;
		}
	}
	return index_transaction_commit(t, changes_r);
}

void rados_transaction_rollback(struct mailbox_transaction_context *t)
{
	rados_trans_free(t);
	index_transaction_rollback(t);
}
