/* COPY and MOVE between rados mailboxes of the same user: the body is shared
   in RADOS (rm_mailbox_copy adds a reference), nothing is re-read or
   re-written. Anything else falls back to Dovecot's copy by saving. */

#include "lib.h"
#include "mail-copy.h"
#include "rados-storage.h"

int rados_copy(struct mail_save_context *ctx, struct mail *mail)
{
	struct mailbox_transaction_context *t = ctx->transaction;
	struct rados_mailbox *dest = RADOS_MAILBOX(t->box);
	struct rados_mailbox *src;
	struct mail_keywords *keywords;
	enum mail_flags flags;
	enum rm_result ret;
	uint32_t src_uid = mail->uid, dest_uid = 0;
	size_t count = 0;

	if (!rados_storage_is_rados(mail->box->storage) ||
	    mail->box->storage->user != t->box->storage->user ||
	    RADOS_MAILBOX(mail->box)->rmb == NULL || mail->saving)
		return mail_storage_copy(ctx, mail);
	src = RADOS_MAILBOX(mail->box);

	/* for the temporary record that dest_mail shows until commit */
	flags = mail_get_flags(mail);
	keywords = mailbox_keywords_create_valid(t->box,
						 mail_get_keywords(mail));

	/* A MOVE is a copy here too: Dovecot's mailbox_move() expunges the
	   source mail in the source transaction, whose commit removes it from
	   RADOS and tells quota and the other plugins of the expunge. */
	ret = rm_mailbox_copy(src->rmb, &src_uid, 1, dest->rmb, NULL,
			      &dest_uid, &count);
	if (ret != RM_RESULT_OK) {
		rados_storage_set_error(t->box->storage, ret,
					ctx->moving ? "moving" : "copying");
	} else if (count == 0) {
		mail_storage_set_error(t->box->storage, MAIL_ERROR_EXPUNGED,
			"Some of the requested messages no longer exist");
	} else {
		rados_save_add_saved(ctx, dest_uid, flags, keywords,
				     ctx->moving);
	}
	mailbox_keywords_unref(&keywords);
	index_save_context_free(ctx);
	return ret == RM_RESULT_OK && count > 0 ? 0 : -1;
}
