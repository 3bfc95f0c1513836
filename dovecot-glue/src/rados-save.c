/* Saving mails (IMAP APPEND, LMTP, doveadm save, dsync) and copying them in
   (rados-copy.c): each mail's bytes stream into an rm_append and on to RADOS
   as chunks fill (nothing is spooled); the finished mail joins the mailbox
   transaction's rm_txn (rados-transaction.c), which commits every new mail,
   copy, flag change and expunge of the transaction in one RADOS write and
   gives the UIDs (the ones asked for with mail_save_set_uid() when free).

   Until the commit each new mail has a temporary index record without a UID,
   so that the save's dest_mail works: it is served from what this context
   knows (sizes, dates, GUID; the bytes of a small mail kept while they passed,
   else the body read from RADOS; a copy's source mail). At commit the records
   go, the UIDs are reported (APPENDUID / COPYUID), and the next sync brings the
   real records in. A rollback leaves nothing in RADOS.

   Mail plugins that transform mails (mail_crypt, zlib) wrap the save's
   data.output after rados_save_begin(), as they do sdbox's: the bytes stored
   are what comes out of that chain (it writes into a buffer that each step
   drains into the rm_append). The library then measures the plain mail, fed
   beside them (rm_append_write_plain), for the sizes, the header length and
   the delivery key: those are the plain mail's, as with sdbox. */

#include "lib.h"
#include "array.h"
#include "buffer.h"
#include "ioloop.h"
#include "istream.h"
#include "ostream.h"
#include "seq-range-array.h"
#include "rados-storage.h"

/* Mails up to this size are kept in memory while they pass, so that reading
   the mail being saved (LMTP's delivery log reads its headers) costs no
   RADOS read. */
#define RADOS_SAVE_KEEP_MAX (256 * 1024)

struct rados_pending {
	/* a copy (else a saved mail) */
	bool copy;
	/* among the transaction's saved mails, or its copies */
	unsigned int index;
	/* what dest_mail reports; uid 0 */
	struct rm_record rec;
	/* saved mails: the bytes, when small enough */
	buffer_t *data;
	/* copies: the source */
	struct rados_mailbox *src;
	uint32_t src_uid;
};

struct rados_save_context {
	struct mail_save_context ctx;
	struct rados_mailbox *mbox;
	struct mail_index_transaction *trans;

	/* the mail being saved */
	struct rm_append *app;
	struct istream *input;
	buffer_t *data;
	/* the end of the data.output chain: the bytes to store collect in
	   outbuf until rados_save_drain() hands them to app */
	struct ostream *output;
	buffer_t *outbuf;
	/* a plugin wrapped data.output: the bytes stored are not the mail */
	bool transformed;
	bool started;
	bool failed;

	/* in the order added; their temporary index records are
	   first_temp_seq .. + count - 1 */
	ARRAY(struct rados_pending) pending;
	unsigned int saves, copies;
	uint32_t first_temp_seq;
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
		i_array_init(&ctx->pending, 16);
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
	/* a size known in advance: refused before the bytes come */
	if (rados_save_check_size(_ctx->transaction->box, input) < 0) {
		ctx->failed = TRUE;
		return -1;
	}
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
	/* a delivery (LMTP, LDA: mail_deliver opens its mailboxes with
	   POST_SESSION): when its commit's reply is lost and LMTP answers
	   451, the sender's retry of the same mail is stored once (the key
	   is the mail's bytes without LMTP's own trace headers) */
	if (ret == RM_RESULT_OK &&
	    (_ctx->transaction->box->flags & MAILBOX_FLAG_POST_SESSION) != 0)
		ret = rm_append_deliver(ctx->app, NULL);
	if (ret != RM_RESULT_OK) {
		rados_storage_set_error(storage, ret, "starting to save");
		(void)rm_append_cancel(&ctx->app);
		ctx->failed = TRUE;
		return -1;
	}
	ctx->data = buffer_create_dynamic(default_pool, 4096);
	ctx->input = input;
	i_stream_ref(input);
	/* plugins (mail_crypt, zlib) replace data.output by a stream that
	   writes into this one once this returns */
	ctx->outbuf = buffer_create_dynamic(default_pool, 8192);
	ctx->output = o_stream_create_buffer(ctx->outbuf);
	o_stream_set_name(ctx->output, "rados save");
	_ctx->data.output = ctx->output;
	o_stream_ref(_ctx->data.output);
	ctx->started = FALSE;
	ctx->transformed = FALSE;
	return 0;
}

/* Ends the data.output chain: finished (a plugin writes its trailer) when
   finish, else abandoned. */
static void rados_save_close_output(struct rados_save_context *ctx,
				    bool finish)
{
	struct mail_save_context *_ctx = &ctx->ctx;
	struct mail_storage *storage = _ctx->transaction->box->storage;

	if (ctx->output == NULL)
		return;
	if (finish && o_stream_finish(_ctx->data.output) < 0) {
		mail_storage_set_critical(storage,
			"rados: write(%s) failed while saving: %s",
			o_stream_get_name(_ctx->data.output),
			o_stream_get_error(_ctx->data.output));
		ctx->failed = TRUE;
	} else if (!finish) {
		o_stream_abort(_ctx->data.output);
	}
	o_stream_unref(&_ctx->data.output);
	o_stream_unref(&ctx->output);
}

/* Keeps a small mail's bytes while they pass. */
static void rados_save_keep(struct rados_save_context *ctx,
			    const unsigned char *data, size_t size)
{
	if (ctx->data == NULL)
		return;
	if (ctx->data->used + size > RADOS_SAVE_KEEP_MAX)
		buffer_free(&ctx->data);
	else
		buffer_append(ctx->data, data, size);
}

/* A failed rm_append_write*(): -1 with the storage's error set. */
static int rados_save_write_failed(struct rados_save_context *ctx,
				   enum rm_result ret)
{
	struct mail_storage *storage = ctx->ctx.transaction->box->storage;

	if (ret == RM_RESULT_TOO_LARGE)
		rados_save_set_too_large(storage);
	else
		rados_storage_set_error(storage, ret, "saving");
	ctx->failed = TRUE;
	return -1;
}

/* Hands what came out of the data.output chain to the rm_append (and keeps
   it while small: dest_mail reads it back through the plugins). */
static int rados_save_drain(struct rados_save_context *ctx)
{
	enum rm_result ret;

	if (ctx->outbuf->used == 0)
		return 0;
	ret = rm_append_write(ctx->app, ctx->outbuf->data, ctx->outbuf->used);
	if (ret != RM_RESULT_OK)
		return rados_save_write_failed(ctx, ret);
	rados_save_keep(ctx, ctx->outbuf->data, ctx->outbuf->used);
	buffer_set_used_size(ctx->outbuf, 0);
	return 0;
}

/* Passes a piece of the mail down the data.output chain; a transformed
   mail's plain bytes go to the library beside it. */
static int rados_save_send(struct rados_save_context *ctx,
			   const unsigned char *data, size_t size)
{
	struct mail_save_context *_ctx = &ctx->ctx;
	enum rm_result ret;

	if (!ctx->started) {
		/* the plugins wrapped data.output (or not) by now */
		ctx->started = TRUE;
		ctx->transformed = _ctx->data.output != ctx->output;
		if (ctx->transformed &&
		    (ret = rm_append_transformed(ctx->app)) != RM_RESULT_OK)
			return rados_save_write_failed(ctx, ret);
	}
	if (ctx->transformed &&
	    (ret = rm_append_write_plain(ctx->app, data, size)) != RM_RESULT_OK)
		return rados_save_write_failed(ctx, ret);
	if (o_stream_send(_ctx->data.output, data, size) != (ssize_t)size) {
		mail_storage_set_critical(_ctx->transaction->box->storage,
			"rados: write(%s) failed while saving: %s",
			o_stream_get_name(_ctx->data.output),
			o_stream_get_error(_ctx->data.output));
		ctx->failed = TRUE;
		return -1;
	}
	return rados_save_drain(ctx);
}

int rados_save_continue(struct mail_save_context *_ctx)
{
	struct rados_save_context *ctx = RADOS_SAVE_CONTEXT(_ctx);
	struct mail_storage *storage = _ctx->transaction->box->storage;
	const unsigned char *data;
	size_t size;
	int rret;

	if (ctx->failed)
		return -1;
	/* pass on whatever is there now, never the whole mail at once */
	while ((rret = i_stream_read_more(ctx->input, &data, &size)) > 0) {
		if (rados_save_send(ctx, data, size) < 0)
			return -1;
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

void rados_save_add_pending(struct mail_save_context *_ctx,
			    const struct rados_pending_info *info)
{
	struct rados_save_context *ctx = RADOS_SAVE_CONTEXT(_ctx);
	struct rados_pending *p;
	struct index_mail *imail;
	uint32_t seq;

	mail_index_append(ctx->trans, 0, &seq);
	mail_index_update_flags(ctx->trans, seq, MODIFY_REPLACE,
				info->flags & MAIL_FLAGS_NONRECENT);
	if (info->keywords != NULL && info->keywords->count > 0) {
		mail_index_update_keywords(ctx->trans, seq, MODIFY_REPLACE,
					   info->keywords);
	}
	if (array_count(&ctx->pending) == 0)
		ctx->first_temp_seq = seq;
	i_assert(seq == ctx->first_temp_seq + array_count(&ctx->pending));
	p = array_append_space(&ctx->pending);
	p->copy = info->src != NULL;
	p->index = p->copy ? ctx->copies++ : ctx->saves++;
	p->rec = info->rec;
	p->data = info->data;
	p->src = info->src;
	p->src_uid = info->src_uid;

	if (_ctx->dest_mail != NULL) {
		mail_set_seq_saving(_ctx->dest_mail, seq);
		/* the record goes away at commit: cache nothing for it */
		imail = INDEX_MAIL(_ctx->dest_mail);
		imail->data.no_caching = TRUE;
		imail->data.forced_no_caching = TRUE;
	}
}

/* Hands the finished mail to the transaction. */
static int rados_save_to_txn(struct rados_save_context *ctx)
{
	struct mail_save_context *_ctx = &ctx->ctx;
	struct mailbox_transaction_context *t = _ctx->transaction;
	struct rados_pending_info info;
	const char *const *names;
	enum rm_result ret = RM_RESULT_OK;
	struct rm_txn *txn;
	unsigned int i, count;

	txn = rados_transaction_txn(t);
	if (txn == NULL)
		return -1;
	i_zero(&info);
	info.flags = _ctx->data.flags;
	info.keywords = _ctx->data.keywords;
	info.rec.flags = rados_flags_from_dovecot(_ctx->data.flags);
	ret = rm_append_sizes(ctx->app, &info.rec.psize, &info.rec.vsize);
	info.rec.received = _ctx->data.received_date != (time_t)-1 ?
		(int64_t)_ctx->data.received_date : (int64_t)ioloop_time;
	if (_ctx->data.guid != NULL)
		mail_generate_guid_128_hash(_ctx->data.guid, info.rec.guid);
	else if (ret == RM_RESULT_OK)
		ret = rm_append_guid(ctx->app, &info.rec.guid);
	T_BEGIN {
		names = rados_keyword_names(_ctx->data.keywords, &count);
		for (i = 0; i < count && ret == RM_RESULT_OK; i++)
			ret = rm_append_add_keyword(ctx->app, names[i]);
	} T_END;
	if (ret == RM_RESULT_OK) {
		ret = rm_append_finish_into(&ctx->app, txn,
				rados_flags_from_dovecot(_ctx->data.flags));
	}
	if (ret == RM_RESULT_TOO_LARGE) {
		rados_save_set_too_large(t->box->storage);
		return -1;
	}
	if (ret != RM_RESULT_OK) {
		rados_storage_set_error(t->box->storage, ret, "saving");
		return -1;
	}
	info.data = ctx->data;
	ctx->data = NULL;
	rados_save_add_pending(_ctx, &info);
	return 0;
}

int rados_save_finish(struct mail_save_context *_ctx)
{
	struct rados_save_context *ctx = RADOS_SAVE_CONTEXT(_ctx);

	/* an empty mail still goes through the plugins (a header, a trailer) */
	if (!ctx->failed && !ctx->started && ctx->output != NULL &&
	    rados_save_send(ctx, (const unsigned char *)"", 0) < 0)
		ctx->failed = TRUE;
	rados_save_close_output(ctx, !ctx->failed);
	if (!ctx->failed && rados_save_drain(ctx) < 0)
		ctx->failed = TRUE;
	if (ctx->outbuf != NULL)
		buffer_free(&ctx->outbuf);
	if (!ctx->failed && rados_save_to_txn(ctx) < 0)
		ctx->failed = TRUE;
	/* a no-op unless the append wasn't consumed */
	(void)rm_append_cancel(&ctx->app);
	if (ctx->data != NULL)
		buffer_free(&ctx->data);
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

/* The temporary record of dest_mail, or NULL. */
static const struct rados_pending *rados_save_pending(struct mail *mail)
{
	struct mail_save_context *_ctx = mail->transaction->save_ctx;
	struct rados_save_context *ctx;
	unsigned int i;

	if (_ctx == NULL || !mail->saving)
		return NULL;
	ctx = RADOS_SAVE_CONTEXT(_ctx);
	if (mail->seq < ctx->first_temp_seq)
		return NULL;
	i = mail->seq - ctx->first_temp_seq;
	return i < array_count(&ctx->pending) ?
		array_idx(&ctx->pending, i) : NULL;
}

int rados_save_pending_record(struct mail *mail, struct rm_record *rec_r)
{
	const struct rados_pending *p = rados_save_pending(mail);
	enum rm_result ret;

	if (p == NULL)
		return 0;
	if (!p->copy) {
		*rec_r = p->rec;
		return 1;
	}
	ret = rm_mailbox_record(p->src->rmb, p->src_uid, rec_r);
	if (ret != RM_RESULT_OK) {
		rados_storage_set_error(mail->box->storage, ret,
					"reading the mail being copied");
		return -1;
	}
	rec_r->uid = 0;
	rec_r->flags = p->rec.flags;
	return 1;
}

int rados_save_pending_stream(struct mail *mail, struct istream **input_r)
{
	const struct rados_pending *p = rados_save_pending(mail);
	struct rm_txn *txn;
	struct rm_body *body = NULL;
	enum rm_result ret;
	uint64_t size;

	if (p == NULL)
		return 0;
	if (p->data != NULL) {
		*input_r = i_stream_create_copy_from_data(p->data->data,
							  p->data->used);
		return 1;
	}
	if (p->copy) {
		ret = rm_body_open(p->src->rmb, p->src_uid, &body);
	} else {
		txn = rados_transaction_txn(mail->transaction);
		ret = txn == NULL ? RM_RESULT_STORE :
			rm_txn_saved_body(txn, p->index, &body);
	}
	if (ret != RM_RESULT_OK) {
		rados_storage_set_error(mail->box->storage, ret,
					"reading the mail being saved");
		return -1;
	}
	/* the bytes as stored (a transformed mail's differ from its psize) */
	ret = rm_body_size(body, &size);
	if (ret != RM_RESULT_OK) {
		rm_body_free(body);
		rados_storage_set_error(mail->box->storage, ret,
					"reading the mail being saved");
		return -1;
	}
	*input_r = rados_istream_create(body, size);
	return 1;
}

int rados_transaction_save_commit_pre(struct mail_save_context *_ctx)
{
	struct rados_save_context *ctx = RADOS_SAVE_CONTEXT(_ctx);
	struct mail_transaction_commit_changes *changes =
		_ctx->transaction->changes;
	const struct rm_txn_result *result = ctx->mbox->commit_result;
	const struct rados_pending *p;
	uint32_t *saved = NULL, *copied = NULL;
	size_t n_saved = 0, n_copied = 0;
	unsigned int i, count = array_count(&ctx->pending);

	i_assert(ctx->app == NULL);
	/* the temporary records go (last first: only the last append can
	   be expunged within a transaction); the sync brings the real ones */
	for (i = count; i > 0; i--)
		mail_index_expunge(ctx->trans, ctx->first_temp_seq + i - 1);
	if (result == NULL || count == 0)
		return 0;

	saved = t_new(uint32_t, ctx->saves + 1);
	copied = t_new(uint32_t, ctx->copies + 1);
	(void)rm_txn_result_uids(result, RM_TXN_SAVED, saved, ctx->saves,
				 &n_saved);
	(void)rm_txn_result_copies(result, NULL, copied, ctx->copies,
				   &n_copied);
	changes->uid_validity = ctx->mbox->uidvalidity;
	array_foreach(&ctx->pending, p) {
		if (!p->copy && p->index < n_saved)
			seq_range_array_add(&changes->saved_uids,
					    saved[p->index]);
		else if (p->copy && p->index < n_copied &&
			 copied[p->index] != 0)
			seq_range_array_add(&changes->saved_uids,
					    copied[p->index]);
	}
	return 0;
}

static void rados_save_free(struct rados_save_context *ctx)
{
	struct rados_pending *p;

	array_foreach_modifiable(&ctx->pending, p) {
		if (p->data != NULL)
			buffer_free(&p->data);
	}
	array_free(&ctx->pending);
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

	/* nothing is in RADOS: the saved bodies go with the rm_txn */
	rados_save_close_output(ctx, FALSE);
	if (ctx->outbuf != NULL)
		buffer_free(&ctx->outbuf);
	(void)rm_append_cancel(&ctx->app);
	if (ctx->data != NULL)
		buffer_free(&ctx->data);
	if (ctx->input != NULL)
		i_stream_unref(&ctx->input);
	rados_save_free(ctx);
}
