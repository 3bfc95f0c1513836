/* COPY and MOVE between rados mailboxes of the same user: the copy joins the
   destination transaction's rm_txn, whose commit takes a reference on each
   body (many in flight at once) and adds every copy in one RADOS write:
   nothing is re-read or re-written, and N mails cost no N sequential round
   trips. Anything else falls back to Dovecot's copy by saving. */

#include "lib.h"
#include "mail-copy.h"
#include "rados-storage.h"

int rados_copy(struct mail_save_context *ctx, struct mail *mail)
{
	struct mailbox_transaction_context *t = ctx->transaction;
	struct mail_keywords *keywords = ctx->data.keywords;
	enum mail_flags flags = ctx->data.flags & MAIL_FLAGS_NONRECENT;
	struct rados_pending_info info;
	const char *const *names;
	struct rados_mailbox *src;
	enum rm_result ret;
	struct rm_txn *txn;
	unsigned int count;
	bool found = FALSE, synced;

	if (!rados_storage_is_rados(mail->box->storage) ||
	    rados_ns_owner(mail->box->list->ns) !=
	    rados_ns_owner(t->box->list->ns) ||
	    RADOS_MAILBOX(mail->box)->rmb == NULL || mail->saving)
		return mail_storage_copy(ctx, mail);
	src = RADOS_MAILBOX(mail->box);
	txn = rados_transaction_txn(t);
	if (txn == NULL) {
		index_save_context_free(ctx);
		return -1;
	}

	/* The copy gets the flags and keywords the caller set (COPY sets the
	   source's with mailbox_save_copy_flags(), dsync its own), and the
	   UID asked for with mail_save_set_uid() when it is free (dsync
	   renumbers a mail with a move inside its mailbox). A MOVE is a copy
	   here too: Dovecot's mailbox_move() expunges the source mail in the
	   source transaction, whose commit removes it from RADOS and tells
	   quota and the other plugins of the expunge. */
	T_BEGIN {
		names = rados_keyword_names(keywords, &count);
		ret = rm_txn_copy(txn, src->rmb, mail->uid, ctx->data.uid,
				  TRUE, rados_flags_from_dovecot(flags),
				  names, count, &found);
		/* the local index may be ahead of this handle's RADOS view
		   (another process of this host synced it) */
		if (ret == RM_RESULT_OK && !found &&
		    rm_mailbox_sync(src->rmb, &synced) == RM_RESULT_OK) {
			ret = rm_txn_copy(txn, src->rmb, mail->uid,
					  ctx->data.uid, TRUE,
					  rados_flags_from_dovecot(flags),
					  names, count, &found);
		}
	} T_END;
	if (ret != RM_RESULT_OK) {
		rados_transaction_failed(t, ret,
					 ctx->moving ? "moving" : "copying");
	} else if (!found) {
		mail_storage_set_error(t->box->storage, MAIL_ERROR_EXPUNGED,
			"Some of the requested messages no longer exist");
	} else {
		i_zero(&info);
		info.flags = flags;
		info.keywords = keywords;
		info.rec.flags = rados_flags_from_dovecot(flags);
		info.src = src;
		info.src_uid = mail->uid;
		rados_save_add_pending(ctx, &info);
	}
	/* frees data.keywords */
	index_save_context_free(ctx);
	return ret == RM_RESULT_OK && found ? 0 : -1;
}
