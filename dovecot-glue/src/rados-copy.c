/* COPY and MOVE between rados mailboxes of the same user: the body is shared
   in RADOS (rm_mailbox_copy_with adds a reference), nothing is re-read or
   re-written. Anything else falls back to Dovecot's copy by saving. */

#include "lib.h"
#include "mail-copy.h"
#include "rados-storage.h"

int rados_copy(struct mail_save_context *ctx, struct mail *mail)
{
	struct mailbox_transaction_context *t = ctx->transaction;
	struct rados_mailbox *dest = RADOS_MAILBOX(t->box);
	struct mail_keywords *keywords = ctx->data.keywords;
	enum mail_flags flags = ctx->data.flags & MAIL_FLAGS_NONRECENT;
	const ARRAY_TYPE(keywords) *names;
	struct rm_copy_options options;
	struct rados_mailbox *src;
	enum rm_result ret;
	uint32_t src_uid = mail->uid, dest_uid = 0;
	size_t count = 0;
	unsigned int i;

	if (!rados_storage_is_rados(mail->box->storage) ||
	    mail->box->storage->user != t->box->storage->user ||
	    RADOS_MAILBOX(mail->box)->rmb == NULL || mail->saving)
		return mail_storage_copy(ctx, mail);
	src = RADOS_MAILBOX(mail->box);

	/* The copy gets the flags and keywords the caller set (COPY sets the
	   source's with mailbox_save_copy_flags(), dsync its own), and the
	   UID asked for with mail_save_set_uid() when it is free (dsync
	   renumbers a mail with a move inside its mailbox). */
	i_zero(&options);
	options.set_flags = TRUE;
	options.flags = rados_flags_from_dovecot(flags);
	if (keywords != NULL && keywords->count > 0) {
		const char **kw = t_new(const char *, keywords->count);

		names = mail_index_get_keywords(keywords->index);
		for (i = 0; i < keywords->count; i++)
			kw[i] = array_idx_elem(names, keywords->idx[i]);
		options.keywords = kw;
		options.n_keywords = keywords->count;
	}
	if (ctx->data.uid != 0)
		options.dest_uids = &ctx->data.uid;

	/* A MOVE is a copy here too: Dovecot's mailbox_move() expunges the
	   source mail in the source transaction, whose commit removes it from
	   RADOS and tells quota and the other plugins of the expunge. */
	ret = rm_mailbox_copy_with(src->rmb, &src_uid, 1, dest->rmb, &options,
				   NULL, &dest_uid, &count);
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
	/* frees data.keywords */
	index_save_context_free(ctx);
	return ret == RM_RESULT_OK && count > 0 ? 0 : -1;
}
