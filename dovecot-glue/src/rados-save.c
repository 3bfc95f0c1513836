/* Saving mails (IMAP APPEND, LMTP, doveadm save, dsync): streamed into an
   rm_append, committed to RADOS by rm_append_finish(), which assigns the UID
   (the one asked for with mail_save_set_uid() when it is free). Like imapc,
   each saved mail gets a temporary record in the index transaction (with its
   real UID, so the save's dest_mail can read it back from RADOS); the records
   are dropped at commit, where the UIDs are reported (APPENDUID), and the next
   sync brings the real records in. A rollback expunges what was saved. */

#include "lib.h"
#include "array.h"
#include "istream.h"
#include "seq-range-array.h"
#include "rados-storage.h"

struct rados_save_context {
	struct mail_save_context ctx;
	struct rados_mailbox *mbox;
	struct mail_index_transaction *trans;

	/* the mail being saved */
	struct rm_append *app;
	struct istream *input;
	bool failed;

	/* UIDs saved or copied in, in order (APPENDUID / COPYUID) */
	ARRAY_TYPE(uint32_t) saved_uids;
	/* the ones a rollback expunges (not those moved in) */
	ARRAY_TYPE(uint32_t) rollback_uids;
	/* temporary index records: first_temp_seq .. + temp_count - 1 */
	uint32_t first_temp_seq;
	unsigned int temp_count;
	bool committed;
};

#define RADOS_SAVE_CONTEXT(s) container_of(s, struct rados_save_context, ctx)

struct mail_save_context *
rados_save_alloc(struct mailbox_transaction_context *t)
{
	struct rados_save_context *ctx;

	if (t->save_ctx == NULL) {
		ctx = i_new(struct rados_save_context, 1);
		ctx->ctx.transaction = t;
		ctx->mbox = RADOS_MAILBOX(t->box);
		ctx->trans = t->itrans;
		i_array_init(&ctx->saved_uids, 16);
		i_array_init(&ctx->rollback_uids, 16);
		t->save_ctx = &ctx->ctx;
	}
	return t->save_ctx;
}

/* A mail above rados_max_mail_size: IMAP answers NO [LIMIT]. Dovecot's LMTP
   answers 451 (retry) to every storage error but a quota one, and retrying
   can't help this mail: delivery reports it as over quota, a permanent 552
   that bounces it at once with this text. */
static void rados_save_set_too_large(struct mail_storage *storage)
{
	const char *service = storage->user->service;
	bool delivery = service != NULL && (strcmp(service, "lmtp") == 0 ||
					    strcmp(service, "lda") == 0);

	mail_storage_set_error(storage, delivery ? MAIL_ERROR_NOQUOTA :
			       MAIL_ERROR_LIMIT,
			       "Mail is larger than this server accepts");
}

int rados_save_begin(struct mail_save_context *_ctx, struct istream *input)
{
	struct rados_save_context *ctx = RADOS_SAVE_CONTEXT(_ctx);
	struct mail_storage *storage = _ctx->transaction->box->storage;
	enum rm_result ret;

	i_assert(ctx->app == NULL);
	ctx->failed = FALSE;
	ret = rm_append_begin(ctx->mbox->rmb, &ctx->app);
	if (ret == RM_RESULT_OK && _ctx->data.received_date != (time_t)-1) {
		ret = rm_append_set_received(ctx->app,
					     (int64_t)_ctx->data.received_date);
	}
	/* dsync keeps UIDs and GUIDs: RADOS gives the UID when it is not
	   below UIDNEXT (else the next free one, as Dovecot's index does);
	   a GUID that isn't 128-bit hex is hashed, as sdbox does */
	if (ret == RM_RESULT_OK && _ctx->data.uid != 0)
		ret = rm_append_set_uid(ctx->app, _ctx->data.uid);
	if (ret == RM_RESULT_OK && _ctx->data.guid != NULL) {
		guid_128_t guid;

		mail_generate_guid_128_hash(_ctx->data.guid, guid);
		ret = rm_append_set_guid(ctx->app, guid);
	}
	if (ret != RM_RESULT_OK) {
		rados_storage_set_error(storage, ret, "starting to save");
		(void)rm_append_cancel(&ctx->app);
		ctx->failed = TRUE;
		return -1;
	}
	ctx->input = input;
	i_stream_ref(input);
	return 0;
}

int rados_save_continue(struct mail_save_context *_ctx)
{
	struct rados_save_context *ctx = RADOS_SAVE_CONTEXT(_ctx);
	struct mail_storage *storage = _ctx->transaction->box->storage;
	const unsigned char *data;
	enum rm_result ret;
	size_t size;
	int rret;

	if (ctx->failed)
		return -1;
	/* pass on whatever is there now, never the whole mail at once */
	while ((rret = i_stream_read_more(ctx->input, &data, &size)) > 0) {
		ret = rm_append_write(ctx->app, data, size);
		if (ret != RM_RESULT_OK) {
			if (ret == RM_RESULT_TOO_LARGE) {
				rados_save_set_too_large(storage);
			} else {
				rados_storage_set_error(storage, ret, "saving");
			}
			ctx->failed = TRUE;
			return -1;
		}
		i_stream_skip(ctx->input, size);
	}
	if (rret == -1 && ctx->input->stream_errno != 0) {
		if (ctx->input->stream_errno == ENOENT) {
			/* copying (via save) a mail that got expunged */
			mail_storage_set_error(storage, MAIL_ERROR_EXPUNGED,
				"The mail being copied was expunged");
		} else {
			mail_storage_set_critical(storage,
				"rados: read(%s) failed while saving: %s",
				i_stream_get_name(ctx->input),
				i_stream_get_error(ctx->input));
		}
		ctx->failed = TRUE;
		return -1;
	}
	return 0;
}

void rados_save_add_saved(struct mail_save_context *_ctx, uint32_t uid,
			  enum mail_flags flags, struct mail_keywords *keywords,
			  bool moved)
{
	struct rados_save_context *ctx = RADOS_SAVE_CONTEXT(_ctx);
	struct index_mail *imail;
	uint32_t seq;

	mail_index_append(ctx->trans, uid, &seq);
	mail_index_update_flags(ctx->trans, seq, MODIFY_REPLACE,
				flags & MAIL_FLAGS_NONRECENT);
	if (keywords != NULL && keywords->count > 0) {
		mail_index_update_keywords(ctx->trans, seq, MODIFY_REPLACE,
					   keywords);
	}
	if (ctx->temp_count++ == 0)
		ctx->first_temp_seq = seq;
	array_push_back(&ctx->saved_uids, &uid);
	if (!moved)
		array_push_back(&ctx->rollback_uids, &uid);

	if (_ctx->dest_mail != NULL) {
		mail_set_seq_saving(_ctx->dest_mail, seq);
		/* the record goes away at commit: cache nothing for it */
		imail = INDEX_MAIL(_ctx->dest_mail);
		imail->data.no_caching = TRUE;
		imail->data.forced_no_caching = TRUE;
	}
}

/* Keywords are stored after the append, one change each: the local index
   writes one log record per keyword, and so each has its own RADOS modseq
   (see rados-sync.c). */
static int rados_save_keywords(struct rados_save_context *ctx, uint32_t uid,
			       struct mail_keywords *kw)
{
	const ARRAY_TYPE(keywords) *names = mail_index_get_keywords(kw->index);
	struct rm_flags_outcome out;
	enum rm_result ret = RM_RESULT_OK;
	const char *name;
	unsigned int i;
	size_t count;

	for (i = 0; i < kw->count && ret == RM_RESULT_OK; i++) {
		name = array_idx_elem(names, kw->idx[i]);
		ret = rm_mailbox_store_flags(ctx->mbox->rmb, &uid, 1,
					     RM_STORE_MODE_ADD, 0, &name, 1,
					     RM_UNCHANGED_SINCE_ANY, NULL,
					     &out);
	}
	if (ret == RM_RESULT_OK)
		return 0;
	rados_storage_set_error(ctx->ctx.transaction->box->storage, ret,
				"storing keywords");
	/* not half-saved: take the mail out again */
	(void)rm_mailbox_expunge(ctx->mbox->rmb, &uid, 1, &count);
	return -1;
}

int rados_save_finish(struct mail_save_context *_ctx)
{
	struct rados_save_context *ctx = RADOS_SAVE_CONTEXT(_ctx);
	struct mail_storage *storage = _ctx->transaction->box->storage;
	enum rm_result ret;
	uint32_t uid = 0;

	if (!ctx->failed) {
		ret = rm_append_finish(&ctx->app,
				rados_flags_from_dovecot(_ctx->data.flags),
				&uid);
		if (ret == RM_RESULT_TOO_LARGE) {
			rados_save_set_too_large(storage);
			ctx->failed = TRUE;
		} else if (ret != RM_RESULT_OK) {
			rados_storage_set_error(storage, ret, "saving");
			ctx->failed = TRUE;
		} else if (_ctx->data.keywords != NULL &&
			   rados_save_keywords(ctx, uid,
					       _ctx->data.keywords) < 0) {
			ctx->failed = TRUE;
		}
	}
	/* a no-op unless the append wasn't consumed */
	(void)rm_append_cancel(&ctx->app);
	if (!ctx->failed) {
		rados_save_add_saved(_ctx, uid, _ctx->data.flags,
				     _ctx->data.keywords, FALSE);
	}
	if (ctx->input != NULL)
		i_stream_unref(&ctx->input);
	index_save_context_free(_ctx);
	return ctx->failed ? -1 : 0;
}

void rados_save_cancel(struct mail_save_context *_ctx)
{
	struct rados_save_context *ctx = RADOS_SAVE_CONTEXT(_ctx);

	ctx->failed = TRUE;
	(void)rados_save_finish(_ctx);
}

int rados_transaction_save_commit_pre(struct mail_save_context *_ctx)
{
	struct rados_save_context *ctx = RADOS_SAVE_CONTEXT(_ctx);
	struct mail_transaction_commit_changes *changes =
		_ctx->transaction->changes;
	unsigned int i;
	uint32_t uid;

	i_assert(ctx->app == NULL);

	/* the temporary records go (last first: only the last append can
	   be expunged within a transaction); the sync brings the real ones */
	for (i = ctx->temp_count; i > 0; i--)
		mail_index_expunge(ctx->trans, ctx->first_temp_seq + i - 1);

	if (array_count(&ctx->saved_uids) > 0) {
		changes->uid_validity = ctx->mbox->uidvalidity;
		array_foreach_elem(&ctx->saved_uids, uid)
			seq_range_array_add(&changes->saved_uids, uid);
	}
	ctx->committed = TRUE;
	return 0;
}

static void rados_save_free(struct rados_save_context *ctx)
{
	array_free(&ctx->saved_uids);
	array_free(&ctx->rollback_uids);
	i_free(ctx);
}

void rados_transaction_save_commit_post(
	struct mail_save_context *_ctx,
	struct mail_index_transaction_commit_result *result ATTR_UNUSED)
{
	struct rados_save_context *ctx = RADOS_SAVE_CONTEXT(_ctx);

	_ctx->transaction = NULL;
	ctx->mbox->sync_pending = TRUE;
	rados_save_free(ctx);
}

void rados_transaction_save_rollback(struct mail_save_context *_ctx)
{
	struct rados_save_context *ctx = RADOS_SAVE_CONTEXT(_ctx);
	enum rm_result ret;
	size_t count;

	(void)rm_append_cancel(&ctx->app);
	if (ctx->input != NULL)
		i_stream_unref(&ctx->input);
	if (!ctx->committed && array_count(&ctx->rollback_uids) > 0) {
		/* they are already in RADOS: take them out again */
		ret = rm_mailbox_expunge(ctx->mbox->rmb,
					 array_front(&ctx->rollback_uids),
					 array_count(&ctx->rollback_uids),
					 &count);
		if (ret != RM_RESULT_OK) {
			i_warning("rados: rolling back saved mails failed, "
				  "%u mail(s) stay in %s: %s",
				  array_count(&ctx->rollback_uids),
				  ctx->mbox->box.vname, rados_last_error(ret));
		}
		ctx->mbox->sync_pending = TRUE;
	}
	rados_save_free(ctx);
}
