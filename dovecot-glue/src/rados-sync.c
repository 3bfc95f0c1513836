/* Syncing the local index (a cache) from RADOS: the changes since the RADOS
   modseq recorded in the "rados" extension header are applied with RADOS's
   UIDs, flags, keywords and modseqs. An empty or new index is filled from
   modseq 0 (and so is any index on doveadm force-resync).

   Modseqs: Dovecot's transaction log raises its modseq once per record type
   a transaction writes (appends, flag updates, each keyword, expunges), RADOS
   once per change set. A sync writes only real differences and raises every
   changed mail and the highest modseq to the RADOS values
   (mail_index_update_modseq(), mail_index_update_highest_modseq()). When a
   change set needs more log records than it used modseqs (flags and a
   keyword at once, several keywords, expunges), the log counts ahead; then a
   second transaction sets the mails' modseqs to the exact RADOS values
   (the "modseq" extension record, which SEARCH MODSEQ and CHANGEDSINCE read),
   and the exact highest modseq is kept in the "rados" extension header for
   STATUS / SELECT (rados_mailbox_get_status). What stays approximate is the
   log's position of a modseq, used only for QRESYNC's VANISHED (EARLIER):
   it may list UIDs the client already saw expunged, never fewer.

   Expunges are written after the other changes (in the second transaction):
   RADOS doesn't report the modseq of an expunge, and written last an expunge
   is never placed below a modseq a client may already have seen.

   \Recent is handed out once per mailbox, not once per backend: the first
   recent UID is RADOS's (rm_mailbox_take_recent decides). A session that may
   change the mailbox (MAILBOX_FLAG_DROP_RECENT: SELECT, not EXAMINE) takes
   the recent UIDs up to the UIDNEXT of its sync and marks exactly those; a
   read-only one (EXAMINE, STATUS) only copies RADOS's first recent UID into
   the index header, from which Dovecot marks them without taking them. */

#include "lib.h"
#include "array.h"
#include "mail-index-modseq.h"
#include "mailbox-recent-flags.h"
#include "rados-storage.h"

struct rados_sync_record {
	struct rm_record rec;
	/* keywords[kw_first .. kw_first + kw_count] */
	unsigned int kw_first, kw_count;
};

struct rados_sync_context {
	struct rados_mailbox *mbox;
	enum mail_index_sync_flags sync_flags;

	struct mail_index_sync_ctx *index_sync_ctx;
	struct mail_index_view *sync_view;
	struct mail_index_transaction *trans;

	/* what RADOS reported, read once per sync */
	struct rm_changes_header head;
	uint64_t since_modseq, highest_modseq;
	ARRAY(struct rados_sync_record) changed;
	ARRAY_TYPE(const_string) keywords;
	ARRAY_TYPE(uint32_t) expunged;

	/* UIDs appended in this sync */
	ARRAY_TYPE(uint32_t) appended;
	/* the UIDs recent_first .. recent_end-1 are this session's \Recent
	   (taken in RADOS; only with MAILBOX_FLAG_DROP_RECENT) */
	uint32_t recent_first, recent_end;
	bool index_broken;
};

static void rados_sync_keyword_cb(void *userdata, const char *name,
				  size_t name_len)
{
	struct rados_sync_context *ctx = userdata;
	const char *dup = t_strndup(name, name_len);

	array_push_back(&ctx->keywords, &dup);
}

static int rados_sync_read_changes(struct rados_sync_context *ctx)
{
	struct mailbox *box = &ctx->mbox->box;
	struct rm_changes *changes = NULL;
	struct rados_sync_record *srec;
	struct rm_record rec;
	enum rm_result ret;
	uint32_t uid;
	bool has;

	/* one read: the changes and the header values they go with */
	ret = rados_unavailable_now() ? RM_RESULT_UNAVAILABLE :
		rm_changes_open(ctx->mbox->rmb, ctx->since_modseq, &changes);
	if (ret == RM_RESULT_OK)
		(void)rm_changes_mailbox(changes, &ctx->head);
	if (ret == RM_RESULT_NOT_FOUND) {
		/* deleted (or renamed) through another process */
		mailbox_set_deleted(box);
		return -1;
	}
	if (ret == RM_RESULT_OK &&
	    ctx->head.incarnation != ctx->mbox->incarnation) {
		/* deleted and created again with the same GUID: another
		   mailbox, which the next open brings in */
		rm_changes_free(changes);
		mailbox_set_deleted(box);
		return -1;
	}
	if (ret != RM_RESULT_OK) {
		rados_storage_set_error(box->storage, ret, "syncing mailbox");
		return -1;
	}
	/* a new UIDVALIDITY set through another process (the UIDs stay) goes
	   to the index header (rados_sync_header) */
	ctx->mbox->uidvalidity = ctx->head.uidvalidity;
	ctx->highest_modseq = ctx->head.highestmodseq;
	/* the mailbox's keyword limit reached: PERMANENTFLAGS without \*,
	   and Dovecot refuses new keywords ("Can't create new keywords") */
	box->disallow_new_keywords = ctx->head.keyword_room == 0;
	for (;;) {
		(void)rm_changes_next_changed(changes, &rec, &has);
		if (!has)
			break;
		srec = array_append_space(&ctx->changed);
		srec->rec = rec;
		srec->kw_first = array_count(&ctx->keywords);
		(void)rm_changes_keywords(changes, rados_sync_keyword_cb, ctx);
		srec->kw_count = array_count(&ctx->keywords) - srec->kw_first;
	}
	for (;;) {
		(void)rm_changes_next_expunged(changes, &uid, &has);
		if (!has)
			break;
		array_push_back(&ctx->expunged, &uid);
	}
	rm_changes_free(changes);
	return 0;
}

/* A session that may change the mailbox takes the mails still \Recent, up to
   the UIDNEXT this sync read: no other session, on any backend, gets them. */
static int rados_sync_take_recent(struct rados_sync_context *ctx)
{
	struct mailbox *box = &ctx->mbox->box;
	enum rm_result ret;

	if ((box->flags & MAILBOX_FLAG_DROP_RECENT) == 0)
		return 0;
	ret = rm_mailbox_take_recent(ctx->mbox->rmb, ctx->head.uidnext,
				     &ctx->recent_first, &ctx->recent_end);
	if (ret == RM_RESULT_NOT_FOUND) {
		mailbox_set_deleted(box);
		return -1;
	}
	if (ret != RM_RESULT_OK) {
		rados_storage_set_error(box->storage, ret,
					"taking the recent mails");
		return -1;
	}
	return 0;
}

static int rados_sync_begin_index(struct rados_sync_context *ctx)
{
	struct mailbox *box = &ctx->mbox->box;
	int ret;

	ret = mail_index_sync_begin(box->index, &ctx->index_sync_ctx,
				    &ctx->sync_view, &ctx->trans,
				    ctx->sync_flags);
	if (ret < 0)
		mailbox_set_index_error(box);
	i_assert(ret != 0);
	return ret < 0 ? -1 : 0;
}

static int rados_sync_commit_index(struct rados_sync_context *ctx)
{
	if (mail_index_sync_commit(&ctx->index_sync_ctx) < 0) {
		mailbox_set_index_error(&ctx->mbox->box);
		return -1;
	}
	return 0;
}

/* Expunge requests written to the local index (normally none: expunges go
   through the transaction to RADOS) are applied to RADOS. */
static int rados_sync_local_requests(struct rados_sync_context *ctx)
{
	struct mail_index_sync_rec sync_rec;
	ARRAY_TYPE(uint32_t) uids;
	uint32_t seq, seq1, seq2, uid;
	enum rm_result ret;
	size_t count;

	t_array_init(&uids, 16);
	while (mail_index_sync_next(ctx->index_sync_ctx, &sync_rec)) {
		if (sync_rec.type != MAIL_INDEX_SYNC_TYPE_EXPUNGE)
			continue;
		if (!mail_index_lookup_seq_range(ctx->sync_view, sync_rec.uid1,
						 sync_rec.uid2, &seq1, &seq2))
			continue;
		for (seq = seq1; seq <= seq2; seq++) {
			mail_index_lookup_uid(ctx->sync_view, seq, &uid);
			array_push_back(&uids, &uid);
		}
	}
	if (array_count(&uids) == 0)
		return 0;
	ret = rm_mailbox_expunge(ctx->mbox->rmb, array_front(&uids),
				 array_count(&uids), &count);
	if (ret != RM_RESULT_OK) {
		rados_storage_set_error(ctx->mbox->box.storage, ret,
					"expunging");
		return -1;
	}
	return 0;
}

static bool rados_sync_uid_changed(struct rados_sync_context *ctx,
				   uint32_t uid)
{
	const struct rados_sync_record *recs;
	unsigned int lo = 0, hi;

	recs = array_get(&ctx->changed, &hi);
	while (lo < hi) {
		unsigned int mid = (lo + hi) / 2;

		if (recs[mid].rec.uid == uid)
			return TRUE;
		if (recs[mid].rec.uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return FALSE;
}

/* Expunges (if apply) what RADOS no longer has; returns the number of
   mails concerned. */
static unsigned int rados_sync_expunges(struct rados_sync_context *ctx,
					bool apply)
{
	uint32_t seq, count, uid;
	unsigned int n = 0;

	if (ctx->since_modseq == 0) {
		/* a full sync: RADOS listed every mail it has */
		count = mail_index_view_get_messages_count(ctx->sync_view);
		for (seq = 1; seq <= count; seq++) {
			mail_index_lookup_uid(ctx->sync_view, seq, &uid);
			if (!rados_sync_uid_changed(ctx, uid)) {
				if (apply)
					mail_index_expunge(ctx->trans, seq);
				n++;
			}
		}
		return n;
	}
	array_foreach_elem(&ctx->expunged, uid) {
		if (mail_index_lookup_seq(ctx->sync_view, uid, &seq)) {
			if (apply)
				mail_index_expunge(ctx->trans, seq);
			n++;
		}
	}
	return n;
}

static void
rados_sync_update_keywords(struct rados_sync_context *ctx, uint32_t seq,
			   const struct rados_sync_record *srec, bool is_new)
{
	const char *const *wanted = srec->kw_count == 0 ? NULL :
		array_idx(&ctx->keywords, srec->kw_first);

	rados_keywords_sync(ctx->mbox->box.index, ctx->sync_view, ctx->trans,
			    seq, wanted, srec->kw_count, is_new);
}

static void rados_sync_record(struct rados_sync_context *ctx,
			      const struct rados_sync_record *srec,
			      uint32_t *next_uid)
{
	struct rados_mailbox *mbox = ctx->mbox;
	const struct rm_record *rec = &srec->rec;
	const struct mail_index_record *irec;
	enum mail_flags flags = rados_flags_to_dovecot(rec->flags);
	const void *data;
	uint64_t ext_modseq = 0;
	uint32_t seq;
	bool expunged, is_new = FALSE;

	if (mail_index_lookup_seq(ctx->sync_view, rec->uid, &seq)) {
		irec = mail_index_lookup(ctx->sync_view, seq);
		if ((irec->flags & MAIL_FLAGS_NONRECENT) != flags) {
			mail_index_update_flags(ctx->trans, seq,
						MODIFY_REPLACE, flags);
		}
		mail_index_lookup_ext(ctx->sync_view, seq, mbox->ext_id,
				      &data, &expunged);
		if (data != NULL)
			memcpy(&ext_modseq, data, sizeof(ext_modseq));
	} else if (rec->uid >= *next_uid) {
		mail_index_append(ctx->trans, rec->uid, &seq);
		mail_index_update_flags(ctx->trans, seq, MODIFY_REPLACE, flags);
		*next_uid = rec->uid + 1;
		array_push_back(&ctx->appended, &rec->uid);
		is_new = TRUE;
	} else {
		/* a UID below next_uid that the index never saw: this cache
		   can't take it any more. Mark it stale; the next open drops
		   it and rebuilds it from RADOS. */
		ctx->index_broken = TRUE;
		return;
	}
	rados_sync_update_keywords(ctx, seq, srec, is_new);
	if (is_new || mail_index_modseq_lookup(ctx->sync_view, seq) <
	    rec->modseq)
		mail_index_update_modseq(ctx->trans, seq, rec->modseq);
	if (ext_modseq != rec->modseq) {
		mail_index_update_ext(ctx->trans, seq, mbox->ext_id,
				      &rec->modseq, NULL);
	}
}

static void rados_sync_header(struct rados_sync_context *ctx,
			      uint32_t next_uid, uint64_t log_highest)
{
	struct rados_mailbox *mbox = ctx->mbox;
	const struct mail_index_header *hdr =
		mail_index_get_header(ctx->sync_view);
	struct rados_index_header old, new;
	uint32_t uidnext = ctx->head.uidnext;

	uint32_t first_recent = ctx->head.first_recent;

	if (hdr->uid_validity != mbox->uidvalidity) {
		mail_index_update_header(ctx->trans,
			offsetof(struct mail_index_header, uid_validity),
			&mbox->uidvalidity, sizeof(mbox->uidvalidity), TRUE);
	}
	if (uidnext > next_uid) {
		/* the last mails were expunged before this index saw them */
		mail_index_update_header(ctx->trans,
			offsetof(struct mail_index_header, next_uid),
			&uidnext, sizeof(uidnext), FALSE);
	}
	/* a read-only session shows RADOS's \Recent (the commit of a session
	   that took them raises the index's to its next UID) */
	if ((mbox->box.flags & MAILBOX_FLAG_DROP_RECENT) == 0 &&
	    first_recent != 0 && hdr->first_recent_uid != first_recent) {
		mail_index_update_header(ctx->trans,
			offsetof(struct mail_index_header, first_recent_uid),
			&first_recent, sizeof(first_recent), FALSE);
	}

	i_zero(&new);
	new.uidvalidity = ctx->index_broken ? 0 : mbox->uidvalidity;
	new.incarnation = mbox->incarnation;
	new.highest_modseq = ctx->highest_modseq;
	memcpy(new.mailbox_guid, mbox->guid, sizeof(new.mailbox_guid));
	if (!rados_index_header_get(mbox, ctx->sync_view, &old) ||
	    memcmp(&old, &new, sizeof(old)) != 0) {
		mail_index_update_header_ext(ctx->trans, mbox->ext_id, 0,
					     &new, sizeof(new));
	}
	if (mail_index_modseq_get_highest(ctx->sync_view) < log_highest)
		mail_index_update_highest_modseq(ctx->trans, log_highest);
}

static int rados_sync_apply(struct rados_sync_context *ctx)
{
	struct mailbox *box = &ctx->mbox->box;
	const struct mail_index_header *hdr =
		mail_index_get_header(ctx->sync_view);
	const struct rados_sync_record *srec;
	uint32_t next_uid = hdr->next_uid, seq1, seq2, uid;
	uint64_t max_modseq = 0, log_highest;

	/* the session's \Recent mails the index has already */
	if (ctx->recent_first < ctx->recent_end &&
	    mail_index_lookup_seq_range(ctx->sync_view, ctx->recent_first,
					ctx->recent_end - 1, &seq1, &seq2))
		mailbox_recent_flags_set_seqs(box, ctx->sync_view, seq1, seq2);

	array_foreach(&ctx->changed, srec) {
		rados_sync_record(ctx, srec, &next_uid);
		if (srec->rec.modseq > max_modseq)
			max_modseq = srec->rec.modseq;
	}
	/* The expunges follow in a transaction of their own, which raises the
	   log's modseq by one: when they are RADOS's last changes, stop one
	   short of its highest modseq here */
	log_highest = ctx->highest_modseq;
	if (max_modseq < log_highest && rados_sync_expunges(ctx, FALSE) > 0)
		log_highest--;
	rados_sync_header(ctx, next_uid, log_highest);
	if (ctx->index_broken) {
		e_warning(box->event, "rados: the local index cache missed "
			  "mails; it is rebuilt from RADOS on the next open");
	}
	if (rados_sync_commit_index(ctx) < 0)
		return -1;
	array_foreach_elem(&ctx->appended, uid) {
		if (uid >= ctx->recent_first && uid < ctx->recent_end)
			mailbox_recent_flags_set_uid(box, uid);
	}
	return 0;
}

/* Sets the modseqs the log counted ahead back to RADOS's. Returns the number
   of mails changed. */
static unsigned int rados_sync_exact_modseqs(struct rados_sync_context *ctx)
{
	uint32_t ext_id = ctx->mbox->box.index->modseq_ext_id;
	const struct rados_sync_record *srec;
	unsigned int n = 0;
	uint32_t seq;

	if (ext_id == 0)
		return 0;
	array_foreach(&ctx->changed, srec) {
		if (mail_index_lookup_seq(ctx->sync_view, srec->rec.uid,
					  &seq) &&
		    mail_index_modseq_lookup(ctx->sync_view, seq) !=
		    srec->rec.modseq) {
			mail_index_update_ext(ctx->trans, seq, ext_id,
					      &srec->rec.modseq, NULL);
			n++;
		}
	}
	return n;
}

static int rados_sync_second_pass(struct rados_sync_context *ctx)
{
	struct mail_index_sync_rec sync_rec;
	unsigned int n;

	if (rados_sync_begin_index(ctx) < 0)
		return -1;
	while (mail_index_sync_next(ctx->index_sync_ctx, &sync_rec)) {
		/* nothing local to apply any more */
	}
	n = rados_sync_exact_modseqs(ctx);
	n += rados_sync_expunges(ctx, TRUE);
	if (n == 0) {
		mail_index_sync_rollback(&ctx->index_sync_ctx);
		return 0;
	}
	return rados_sync_commit_index(ctx);
}

static int rados_sync_run(struct rados_sync_context *ctx, bool force_resync)
{
	struct rados_mailbox *mbox = ctx->mbox;
	struct rados_index_header rhdr;

	if (rados_sync_begin_index(ctx) < 0)
		return -1;
	if (rados_sync_local_requests(ctx) < 0) {
		mail_index_sync_rollback(&ctx->index_sync_ctx);
		return -1;
	}
	if (rados_index_header_get(mbox, ctx->sync_view, &rhdr) &&
	    rhdr.uidvalidity != 0 && !force_resync) {
		if (rhdr.incarnation != mbox->incarnation ||
		    memcmp(rhdr.mailbox_guid, mbox->guid,
			   sizeof(mbox->guid)) != 0) {
			/* another mailbox's cache: dropped at the next open */
			mail_index_sync_rollback(&ctx->index_sync_ctx);
			mailbox_set_deleted(&mbox->box);
			return -1;
		}
		ctx->since_modseq = rhdr.highest_modseq;
	}
	if (rados_sync_read_changes(ctx) < 0 ||
	    rados_sync_take_recent(ctx) < 0) {
		mail_index_sync_rollback(&ctx->index_sync_ctx);
		return -1;
	}
	if (rados_sync_apply(ctx) < 0)
		return -1;
	if (array_count(&ctx->changed) == 0 &&
	    array_count(&ctx->expunged) == 0 && ctx->since_modseq != 0)
		return 0;
	return rados_sync_second_pass(ctx);
}

int rados_sync(struct rados_mailbox *mbox, bool force_resync)
{
	struct rados_sync_context ctx;
	int ret;

	i_zero(&ctx);
	ctx.mbox = mbox;
	ctx.sync_flags = index_storage_get_sync_flags(&mbox->box) |
		MAIL_INDEX_SYNC_FLAG_AVOID_FLAG_UPDATES;
	T_BEGIN {
		t_array_init(&ctx.changed, 64);
		t_array_init(&ctx.keywords, 16);
		t_array_init(&ctx.expunged, 16);
		t_array_init(&ctx.appended, 16);
		ret = rados_sync_run(&ctx, force_resync);
	} T_END;
	return ret;
}

struct mailbox_sync_context *
rados_storage_sync_init(struct mailbox *box, enum mailbox_sync_flags flags)
{
	struct rados_mailbox *mbox = RADOS_MAILBOX(box);
	bool force = (flags & MAILBOX_SYNC_FLAG_FORCE_RESYNC) != 0;
	size_t unrepaired = 0;
	int ret = 0;

	if (!box->opened) {
		if (mailbox_open(box) < 0)
			ret = -1;
	}
	/* doveadm force-resync repairs RADOS first (rados-damage.c), then
	   rebuilds the index from it */
	if (ret == 0 && force)
		ret = rados_mailbox_repair(mbox, &unrepaired);
	if (ret == 0 &&
	    (force || mbox->sync_pending ||
	     index_mailbox_want_full_sync(box, flags))) {
		mbox->sync_pending = FALSE;
		ret = rados_sync(mbox, force);
	}
	if (ret == 0 && unrepaired > 0) {
		rados_mailbox_set_unrepaired(mbox, unrepaired);
		ret = -1;
	}
	return index_mailbox_sync_init(box, flags, ret < 0);
}
