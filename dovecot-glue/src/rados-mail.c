/* Mails of the rados storage: index_mail with the body, sizes, dates, GUID
   and modseq from RADOS. Header and body parsing (ENVELOPE, BODYSTRUCTURE,
   SEARCH) is index_mail's generic code over the stream. */

#include "lib.h"
#include "istream.h"
#include "time-util.h"
#include "rados-storage.h"

struct mail *rados_mail_alloc(struct mailbox_transaction_context *t,
			      enum mail_fetch_field wanted_fields,
			      struct mailbox_header_lookup_ctx *wanted_headers)
{
	struct rados_mail *mail;
	pool_t pool;

	pool = pool_alloconly_create("mail", 2048);
	mail = p_new(pool, struct rados_mail, 1);
	index_mail_init(&mail->imail, t, wanted_fields, wanted_headers, pool,
			NULL);
	return &mail->imail.mail.mail;
}

int rados_mail_get_record(struct mail *_mail, const struct rm_record **rec_r)
{
	struct rados_mail *mail = RADOS_MAIL(_mail);
	struct rados_mailbox *mbox = RADOS_MAILBOX(_mail->box);
	enum rm_result ret;
	bool changed;

	if (mail->rec_uid == _mail->uid && _mail->uid != 0) {
		*rec_r = &mail->rec;
		return 0;
	}
	if (_mail->saving) {
		/* being saved: not in RADOS's index yet */
		switch (rados_save_pending_record(_mail, &mail->rec)) {
		case 1:
			mail->rec_uid = 0;
			*rec_r = &mail->rec;
			return 0;
		case -1:
			return -1;
		default:
			break;
		}
	}
	if (_mail->uid == 0) {
		mail_set_expunged(_mail);
		return -1;
	}
	ret = rados_unavailable_now() ? RM_RESULT_UNAVAILABLE :
		rm_mailbox_record(mbox->rmb, _mail->uid, &mail->rec);
	if (ret == RM_RESULT_NOT_FOUND) {
		/* the index may have been synced to a newer state than the
		   RADOS view of this handle */
		ret = rm_mailbox_sync(mbox->rmb, &changed);
		if (ret == RM_RESULT_OK) {
			ret = rm_mailbox_record(mbox->rmb, _mail->uid,
						&mail->rec);
		}
	}
	if (ret == RM_RESULT_NOT_FOUND) {
		mail_set_expunged(_mail);
		return -1;
	}
	if (ret == RM_RESULT_CORRUPTED) {
		/* this mail's record only: the others read normally */
		rados_mail_set_damaged(_mail, "reading the mail record",
				       rados_last_error(ret));
		return -1;
	}
	if (ret != RM_RESULT_OK) {
		rados_mail_set_read_error(_mail, ret,
					  "reading the mail record");
		return -1;
	}
	mail->rec_uid = _mail->uid;
	*rec_r = &mail->rec;
	return 0;
}

static uint64_t rados_mail_get_modseq(struct mail *_mail)
{
	struct rados_mailbox *mbox = RADOS_MAILBOX(_mail->box);
	const void *data;
	uint64_t modseq = 0;
	bool expunged;

	/* the exact RADOS modseq the sync recorded (the index's own modseq
	   is never below it, but may be above) */
	mail_index_lookup_ext(_mail->transaction->view, _mail->seq,
			      mbox->ext_id, &data, &expunged);
	if (data != NULL)
		memcpy(&modseq, data, sizeof(modseq));
	return modseq != 0 ? modseq : index_mail_get_modseq(_mail);
}

static int rados_mail_get_received_date(struct mail *_mail, time_t *date_r)
{
	struct index_mail *mail = INDEX_MAIL(_mail);
	const struct rm_record *rec;

	if (rados_mail_get_record(_mail, &rec) < 0)
		return -1;
	mail->data.received_date = (time_t)rec->received;
	*date_r = mail->data.received_date;
	return 0;
}

static int rados_mail_get_save_date(struct mail *_mail, time_t *date_r)
{
	/* RADOS keeps no separate save date: a mail is saved when received
	   (copies keep the original's date) */
	if (index_mail_get_save_date(_mail, date_r) > 0)
		return 1;
	return rados_mail_get_received_date(_mail, date_r) < 0 ? -1 : 1;
}

static int rados_mail_get_physical_size(struct mail *_mail, uoff_t *size_r)
{
	struct index_mail *mail = INDEX_MAIL(_mail);
	const struct rm_record *rec;

	if (rados_mail_get_record(_mail, &rec) < 0)
		return -1;
	mail->data.physical_size = rec->psize;
	*size_r = rec->psize;
	return 0;
}

static int rados_mail_get_virtual_size(struct mail *_mail, uoff_t *size_r)
{
	struct index_mail *mail = INDEX_MAIL(_mail);
	const struct rm_record *rec;

	if (rados_mail_get_record(_mail, &rec) < 0)
		return -1;
	mail->data.virtual_size = rec->vsize;
	*size_r = rec->vsize;
	return 0;
}

static int rados_mail_get_special(struct mail *_mail,
				  enum mail_fetch_field field,
				  const char **value_r)
{
	struct index_mail *mail = INDEX_MAIL(_mail);
	const struct rm_record *rec;

	if (field != MAIL_FETCH_GUID)
		return index_mail_get_special(_mail, field, value_r);
	if (mail->data.guid == NULL) {
		if (rados_mail_get_record(_mail, &rec) < 0)
			return -1;
		mail->data.guid = p_strdup(mail->mail.data_pool,
					   guid_128_to_string(rec->guid));
	}
	*value_r = mail->data.guid;
	return 0;
}

/* Reads the bodies of the queued UIDs into the library's cache at once
   (read_in_flight RADOS reads in flight). A failure is only logged: each
   mail's own read then goes to RADOS and reports it. */
static void rados_mail_prefetch_flush(struct rados_mailbox *mbox)
{
	enum rm_result ret;
	uint64_t start;

	if (mbox->prefetch_count == 0)
		return;
	start = i_microseconds();
	ret = rm_mailbox_prefetch(mbox->rmb, mbox->prefetch_uids,
				  mbox->prefetch_count);
	if (ret == RM_RESULT_OK) {
		e_debug(mbox->box.event, "rados: read ahead %u bodies in %llu us",
			mbox->prefetch_count,
			(unsigned long long)(i_microseconds() - start));
	} else {
		e_debug(mbox->box.event, "rados: reading ahead %u bodies failed: %s",
			mbox->prefetch_count, rados_last_error(ret));
	}
	mbox->prefetch_count = 0;
}

/* Dovecot's search (FETCH of a range) calls this for up to
   mail_prefetch_count mails before it returns the first of them. A mail
   whose body will be read is queued, and FALSE tells the search to go on
   queueing; the first body read of a queued mail reads them all. */
static bool rados_mail_prefetch(struct mail *_mail)
{
	struct index_mail *mail = INDEX_MAIL(_mail);
	struct rados_mailbox *mbox = RADOS_MAILBOX(_mail->box);
	const enum index_mail_access_part body_parts =
		READ_HDR | READ_BODY | PARSE_HDR | PARSE_BODY;

	if ((mail->data.access_part & body_parts) == 0 ||
	    mail->data.stream != NULL || _mail->uid == 0 || mbox->rmb == NULL) {
		/* nothing to read ahead */
		return TRUE;
	}
	if (mbox->prefetch_count == N_ELEMENTS(mbox->prefetch_uids))
		rados_mail_prefetch_flush(mbox);
	mbox->prefetch_uids[mbox->prefetch_count++] = _mail->uid;
	return FALSE;
}

/* Reads the queued bodies if uid is one of them. */
static void rados_mail_prefetch_wait(struct rados_mailbox *mbox, uint32_t uid)
{
	unsigned int i;

	for (i = 0; i < mbox->prefetch_count; i++) {
		if (mbox->prefetch_uids[i] == uid) {
			rados_mail_prefetch_flush(mbox);
			return;
		}
	}
}

/* A body that could not be opened or read (ret, with the library's message
   detail): -1 with the mail's error set. A body object missing is damage
   while the mail's record still points to it (after a sync), an expunge
   only when the record is gone too. */
static int rados_mail_body_failed(struct mail *_mail, enum rm_result ret,
				  const char *detail)
{
	struct rados_mail *mail = RADOS_MAIL(_mail);
	struct rados_mailbox *mbox = RADOS_MAILBOX(_mail->box);
	struct rm_record rec;
	bool changed;

	if (ret == RM_RESULT_NOT_FOUND) {
		/* a body too large for the cache is streamed, and its
		   object found missing by the first read: was the mail
		   expunged meanwhile? */
		mail->rec_uid = 0;
		ret = rm_mailbox_sync(mbox->rmb, &changed);
		if (ret == RM_RESULT_OK)
			ret = rm_mailbox_record(mbox->rmb, _mail->uid, &rec);
		if (ret == RM_RESULT_NOT_FOUND) {
			mail_set_expunged(_mail);
			return -1;
		}
		if (ret == RM_RESULT_OK) {
			rados_mail_set_damaged(_mail, "opening the mail body",
				t_strdup_printf("corrupted data: body object "
						"missing; the record of UID "
						"%u points to it (%s)",
						_mail->uid, detail));
			return -1;
		}
		detail = rados_last_error(ret);
	}
	if (ret == RM_RESULT_CORRUPTED) {
		rados_mail_set_damaged(_mail, "opening the mail body", detail);
		return -1;
	}
	rados_mail_set_read_error(_mail, ret, "opening the mail body");
	return -1;
}

/* The body of the mail from RADOS, in *input_r; -1 with the mail's error set. */
static int rados_mail_open_stream(struct mail *_mail, struct istream **input_r)
{
	struct rados_mailbox *mbox = RADOS_MAILBOX(_mail->box);
	struct rm_body *body = NULL;
	enum rm_result ret;
	uint64_t size = 0;
	uint8_t first;
	size_t n;

	rados_mail_prefetch_wait(mbox, _mail->uid);
	ret = rados_unavailable_now() ? RM_RESULT_UNAVAILABLE :
		rm_body_open(mbox->rmb, _mail->uid, &body);
	if (ret == RM_RESULT_OK)
		ret = rm_body_size(body, &size);
	if (ret == RM_RESULT_OK && size > 0) {
		/* The first read now, not once IMAP has started sending the
		   mail: a body object that is gone is told here (a streamed
		   body's first chunk is read next anyway, and seeking back
		   into it reads nothing) */
		ret = rm_body_read(body, &first, 1, &n);
		if (ret == RM_RESULT_OK)
			ret = rm_body_seek(body, 0);
	}
	if (ret != RM_RESULT_OK) {
		const char *detail = rados_last_error(ret);

		rm_body_free(body);
		return rados_mail_body_failed(_mail, ret, detail);
	}
	*input_r = rados_istream_create(body, size);
	i_stream_set_name(*input_r, t_strdup_printf("rados:%s/%u",
			  _mail->box->vname, _mail->uid));
	return 0;
}

static int rados_mail_get_stream(struct mail *_mail, bool get_body ATTR_UNUSED,
				 struct message_size *hdr_size,
				 struct message_size *body_size,
				 struct istream **stream_r)
{
	struct index_mail *mail = INDEX_MAIL(_mail);
	const struct rm_record *rec;
	struct istream *input;
	int ret = 0;

	if (mail->data.stream == NULL) {
		if (!mail_stream_access_start(_mail))
			return -1;
		/* the record first: it syncs the RADOS view if needed and
		   tells an expunged mail apart */
		if (rados_mail_get_record(_mail, &rec) < 0)
			return -1;
		/* a mail being saved comes from what the save knows */
		if (_mail->saving)
			ret = rados_save_pending_stream(_mail, &input);
		if (ret == 0)
			ret = rados_mail_open_stream(_mail, &input) < 0 ? -1 : 1;
		if (ret < 0)
			return -1;
		mail->data.stream = input;
		index_mail_set_read_buffer_size(_mail, input);
		/* mail plugins turn the stored bytes back into the mail
		   (mail_crypt decrypts, zlib decompresses) */
		ret = mail->mail.v.istream_opened(_mail, &mail->data.stream);
		if (ret < 0) {
			i_stream_unref(&mail->data.stream);
			return -1;
		}
	}
	return index_mail_init_stream(mail, hdr_size, body_size, stream_r);
}

struct mail_vfuncs rados_mail_vfuncs = {
	.close = index_mail_close,
	.free = index_mail_free,
	.set_seq = index_mail_set_seq,
	.set_uid = index_mail_set_uid,
	.set_uid_cache_updates = index_mail_set_uid_cache_updates,
	.prefetch = rados_mail_prefetch,
	.precache = index_mail_precache,
	.add_temp_wanted_fields = index_mail_add_temp_wanted_fields,

	.get_flags = index_mail_get_flags,
	.get_keywords = index_mail_get_keywords,
	.get_keyword_indexes = index_mail_get_keyword_indexes,
	.get_modseq = rados_mail_get_modseq,
	.get_pvt_modseq = index_mail_get_pvt_modseq,
	.get_parts = index_mail_get_parts,
	.get_date = index_mail_get_date,
	.get_received_date = rados_mail_get_received_date,
	.get_save_date = rados_mail_get_save_date,
	.get_virtual_size = rados_mail_get_virtual_size,
	.get_physical_size = rados_mail_get_physical_size,
	.get_first_header = index_mail_get_first_header,
	.get_headers = index_mail_get_headers,
	.get_header_stream = index_mail_get_header_stream,
	.get_stream = rados_mail_get_stream,
	.get_binary_stream = index_mail_get_binary_stream,
	.get_special = rados_mail_get_special,
	.get_backend_mail = index_mail_get_backend_mail,

	/* changes go to RADOS at commit (rados-transaction.c) */
	.update_flags = rados_transaction_update_flags,
	.update_keywords = rados_transaction_update_keywords,
	.update_modseq = index_mail_update_modseq,
	.update_pvt_modseq = index_mail_update_pvt_modseq,
	.expunge = rados_transaction_expunge,
	.set_cache_corrupted = index_mail_set_cache_corrupted,
	.istream_opened = index_mail_opened,
};
