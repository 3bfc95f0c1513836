/* A Dovecot mailbox transaction is one RADOS transaction (rm_txn): the mail
   vfuncs hand over flag, keyword and expunge changes, the save context its
   new mails and copies, and the commit applies all of it to RADOS in one
   guarded write (rm_txn_commit) before the local index transaction commits.
   Planning, keyword REPLACE against the current state, UNCHANGEDSINCE and the
   modseq numbering that keeps Dovecot's log in step are the library's
   (RM_MODSEQ_STEPS_DOVECOT). The local index learns the changes, with RADOS's
   modseqs, from the next sync. A failure fails the commit: nothing is
   reported as done that isn't, and nothing of it is visible in RADOS. */

#include "lib.h"
#include "array.h"
#include "seq-range-array.h"
#include "mail-index-transaction-private.h"
#include "rados-storage.h"

struct rados_transaction_context {
	union mailbox_transaction_module_context module_ctx;
	struct rm_txn *txn;
	/* a change could not be handed over: the commit fails */
	enum rm_result failure;
	const char *failed_what;
};

#define RADOS_TRANS_CONTEXT(obj) MODULE_CONTEXT(obj, rados_trans_module)
static MODULE_CONTEXT_DEFINE_INIT(rados_trans_module,
				  &mail_storage_module_register);

struct rm_txn *rados_transaction_txn(struct mailbox_transaction_context *t)
{
	struct rados_transaction_context *rt = RADOS_TRANS_CONTEXT(t);
	struct rados_mailbox *mbox = RADOS_MAILBOX(t->box);
	enum rm_result ret;

	if (rt == NULL) {
		rt = i_new(struct rados_transaction_context, 1);
		MODULE_CONTEXT_SET(t, rados_trans_module, rt);
	}
	if (rt->txn == NULL && rt->failure == RM_RESULT_OK) {
		ret = rm_txn_begin(mbox->rmb, RM_MODSEQ_STEPS_DOVECOT,
				   &rt->txn);
		if (ret != RM_RESULT_OK)
			rados_transaction_failed(t, ret, "starting a transaction");
	}
	return rt->txn;
}

void rados_transaction_failed(struct mailbox_transaction_context *t,
			      enum rm_result ret, const char *what)
{
	struct rados_transaction_context *rt = RADOS_TRANS_CONTEXT(t);

	if (rt == NULL) {
		rt = i_new(struct rados_transaction_context, 1);
		MODULE_CONTEXT_SET(t, rados_trans_module, rt);
	}
	if (rt->failure == RM_RESULT_OK) {
		rt->failure = ret;
		rt->failed_what = what;
		rados_storage_set_error(t->box->storage, ret, what);
	}
}

static void rados_trans_free(struct mailbox_transaction_context *t)
{
	struct rados_transaction_context *rt = RADOS_TRANS_CONTEXT(t);

	if (rt == NULL)
		return;
	MODULE_CONTEXT_UNSET(t, rados_trans_module);
	rm_txn_free(rt->txn);
	i_free(rt);
}

static uint32_t rados_store_mode(enum modify_type modify_type)
{
	switch (modify_type) {
	case MODIFY_ADD:
		return RM_STORE_MODE_ADD;
	case MODIFY_REMOVE:
		return RM_STORE_MODE_REMOVE;
	case MODIFY_REPLACE:
		break;
	}
	return RM_STORE_MODE_REPLACE;
}

void rados_transaction_update_flags(struct mail *mail,
				    enum modify_type modify_type,
				    enum mail_flags flags)
{
	struct rm_txn *txn = rados_transaction_txn(mail->transaction);
	enum rm_result ret;

	if (txn == NULL)
		return;
	ret = rm_txn_update_flags(txn, &mail->uid, 1,
				  rados_store_mode(modify_type),
				  rados_flags_from_dovecot(flags));
	if (ret != RM_RESULT_OK)
		rados_transaction_failed(mail->transaction, ret, "storing flags");
}

/* The names of keywords (data stack), NULL-terminated; *count_r of them. */
const char *const *
rados_keyword_names(struct mail_keywords *keywords, unsigned int *count_r)
{
	const ARRAY_TYPE(keywords) *all;
	const char **names;
	unsigned int i, count = keywords == NULL ? 0 : keywords->count;

	names = t_new(const char *, count + 1);
	if (count > 0) {
		all = mail_index_get_keywords(keywords->index);
		for (i = 0; i < count; i++)
			names[i] = array_idx_elem(all, keywords->idx[i]);
	}
	*count_r = count;
	return names;
}

void rados_transaction_update_keywords(struct mail *mail,
				       enum modify_type modify_type,
				       struct mail_keywords *keywords)
{
	struct rm_txn *txn = rados_transaction_txn(mail->transaction);
	const char *const *names;
	unsigned int count;
	enum rm_result ret;

	if (txn == NULL)
		return;
	T_BEGIN {
		names = rados_keyword_names(keywords, &count);
		ret = rm_txn_update_keywords(txn, &mail->uid, 1,
					     rados_store_mode(modify_type),
					     names, count);
	} T_END;
	if (ret != RM_RESULT_OK) {
		rados_transaction_failed(mail->transaction, ret,
					 "storing keywords");
	}
}

void rados_transaction_expunge(struct mail *mail)
{
	struct rm_txn *txn = rados_transaction_txn(mail->transaction);
	enum rm_result ret;

	if (txn == NULL)
		return;
	ret = rm_txn_expunge(txn, &mail->uid, 1);
	if (ret != RM_RESULT_OK)
		rados_transaction_failed(mail->transaction, ret, "expunging");
}

/* Hands the commit's outcome to Dovecot: UNCHANGEDSINCE conflicts, and the
   expunges (plugins such as quota hear of each once: from the process whose
   commit removed it). */
static void rados_transaction_report(struct mailbox_transaction_context *t,
				     const struct rm_txn_result *result)
{
	struct rm_txn_summary sum;
	uint32_t *uids, seq;
	size_t i, n;

	if (rm_txn_result_summary(result, &sum) != RM_RESULT_OK)
		return;
	if (sum.modified > 0 && t->itrans->conflict_seqs != NULL) {
		uids = t_new(uint32_t, sum.modified);
		(void)rm_txn_result_uids(result, RM_TXN_MODIFIED, uids,
					 sum.modified, &n);
		for (i = 0; i < n && i < sum.modified; i++) {
			if (mail_index_lookup_seq(t->view, uids[i], &seq))
				seq_range_array_add(t->itrans->conflict_seqs,
						    seq);
		}
	}
	if (sum.expunged > 0) {
		uids = t_new(uint32_t, sum.expunged);
		(void)rm_txn_result_uids(result, RM_TXN_EXPUNGED, uids,
					 sum.expunged, &n);
		for (i = 0; i < n && i < sum.expunged; i++) {
			mailbox_sync_notify(t->box, uids[i],
					    MAILBOX_SYNC_TYPE_EXPUNGE);
		}
		mailbox_sync_notify(t->box, 0, 0);
	}
}

int rados_transaction_commit(struct mailbox_transaction_context *t,
			     struct mail_transaction_commit_changes *changes_r)
{
	struct rados_transaction_context *rt = RADOS_TRANS_CONTEXT(t);
	struct rados_mailbox *mbox = RADOS_MAILBOX(t->box);
	struct rm_txn_result *result = NULL;
	enum rm_result ret = RM_RESULT_OK;
	int iret;

	if (rt != NULL && rt->failure != RM_RESULT_OK) {
		/* the error was set when the change was refused */
		rados_trans_free(t);
		index_transaction_rollback(t);
		return -1;
	}
	if (rt != NULL && rt->txn != NULL) {
		/* even an unknown outcome may have changed something */
		mbox->sync_pending = TRUE;
		if (t->itrans->max_modseq != 0)
			(void)rm_txn_unchanged_since(rt->txn,
						     t->itrans->max_modseq);
		ret = rados_unavailable_now() ? RM_RESULT_UNAVAILABLE :
			rm_txn_commit(&rt->txn, &result);
		if (ret != RM_RESULT_OK) {
			rados_storage_set_error(t->box->storage, ret,
						"committing");
			rados_trans_free(t);
			index_transaction_rollback(t);
			return -1;
		}
		T_BEGIN {
			rados_transaction_report(t, result);
		} T_END;
	}
	rados_trans_free(t);
	/* for the save context's commit_pre (APPENDUID / COPYUID) */
	mbox->commit_result = result;
	iret = index_transaction_commit(t, changes_r);
	mbox->commit_result = NULL;
	rm_txn_result_free(result);
	return iret;
}

void rados_transaction_rollback(struct mailbox_transaction_context *t)
{
	/* nothing was written to RADOS but the bodies of saved mails, which
	   go with the rm_txn */
	rados_trans_free(t);
	index_transaction_rollback(t);
}
