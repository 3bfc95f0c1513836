/* mailbox_update(): what dsync carries over from another storage. UIDVALIDITY,
   UIDNEXT and HIGHESTMODSEQ change in RADOS (rm_user_mailbox_update), then a
   sync brings them into the local index; the GUID of a mailbox that never had
   a mail can change (rm_user_mailbox_change_guid); the first recent UID is
   raised in RADOS (rm_mailbox_take_recent) and in the index; cache decisions
   are the local index's own. */

#include "lib.h"
#include "rados-storage.h"

/* dsync adopts the GUID the mailbox has on the other side. RADOS names a
   mailbox's objects by its GUID, so only a mailbox that never had a mail can
   change it (INBOX is created on first use, then synced with the INBOX of
   another storage). The handle is opened again on the new GUID, and the local
   index (without mails) is synced anew, taking the new identity. */
static int rados_mailbox_change_guid(struct rados_mailbox *mbox,
				     const guid_128_t guid)
{
	struct mailbox *box = &mbox->box;
	struct rm_user *user = rados_mailbox_user(box);
	struct rm_mailbox *rmb;
	struct rm_status status;
	enum rm_result ret;

	if (user == NULL)
		return -1;
	ret = rm_user_mailbox_change_guid(user, box->name, guid);
	if (ret == RM_RESULT_INVALID_INPUT) {
		mail_storage_set_error(box->storage, MAIL_ERROR_NOTPOSSIBLE,
			"The GUID of a mailbox that has had mails "
			"can't be changed");
		return -1;
	}
	if (ret == RM_RESULT_OK)
		ret = rm_mailbox_open(user, box->name, &rmb);
	if (ret != RM_RESULT_OK) {
		rados_storage_set_error(box->storage, ret,
					"changing the mailbox GUID");
		return -1;
	}
	if ((ret = rm_mailbox_status(rmb, &status)) != RM_RESULT_OK) {
		rm_mailbox_free(rmb);
		rados_storage_set_error(box->storage, ret,
					"changing the mailbox GUID");
		return -1;
	}
	rm_mailbox_free(mbox->rmb);
	mbox->rmb = rmb;
	memcpy(mbox->guid, guid, sizeof(mbox->guid));
	mbox->uidvalidity = status.uidvalidity;
	mbox->incarnation = status.incarnation;
	return rados_sync(mbox, TRUE);
}

/* The first recent UID (dsync carries it over) is raised to min_uid, never
   above UIDNEXT: in RADOS, where every backend reads it (the mails below it
   are taken by nobody), and in the local index. */
static int rados_mailbox_update_first_recent(struct mailbox *box,
					     uint32_t min_uid)
{
	const struct mail_index_header *hdr;
	struct mail_index_transaction *trans;
	struct mail_index_view *view;
	uint32_t first_recent_uid, first, end;
	enum rm_result rret;
	int ret = 0;

	rret = rm_mailbox_take_recent(RADOS_MAILBOX(box)->rmb, min_uid,
				      &first, &end);
	if (rret != RM_RESULT_OK) {
		rados_storage_set_error(box->storage, rret,
					"raising the first recent UID");
		return -1;
	}
	(void)mail_index_refresh(box->index);
	view = mail_index_view_open(box->index);
	hdr = mail_index_get_header(view);
	first_recent_uid = I_MIN(min_uid, hdr->next_uid);
	if (hdr->first_recent_uid < first_recent_uid) {
		trans = mail_index_transaction_begin(view,
			MAIL_INDEX_TRANSACTION_FLAG_EXTERNAL);
		mail_index_update_header(trans,
			offsetof(struct mail_index_header, first_recent_uid),
			&first_recent_uid, sizeof(first_recent_uid), FALSE);
		if ((ret = mail_index_transaction_commit(&trans)) < 0)
			mailbox_set_index_error(box);
	}
	mail_index_view_close(&view);
	return ret;
}

int rados_mailbox_update(struct mailbox *box,
			 const struct mailbox_update *update)
{
	struct rados_mailbox *mbox = RADOS_MAILBOX(box);
	struct mailbox_update rest = *update;
	struct rm_mailbox_update rup;
	struct rm_user *user;
	enum rm_result ret;
	bool changed = FALSE;

	if (!box->opened && mailbox_open(box) < 0)
		return -1;
	if (!guid_128_is_empty(update->mailbox_guid) &&
	    !guid_128_equals(update->mailbox_guid, mbox->guid) &&
	    rados_mailbox_change_guid(mbox, update->mailbox_guid) < 0)
		return -1;
	/* UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ (what dsync carries over)
	   are RADOS's: they change there (UIDNEXT and HIGHESTMODSEQ only
	   upwards), then a sync brings them into the local index. A new
	   UIDVALIDITY keeps the UIDs, so the index keeps its records. */
	i_zero(&rup);
	if (update->uid_validity != mbox->uidvalidity)
		rup.uidvalidity = update->uid_validity;
	rup.min_uidnext = update->min_next_uid;
	rup.min_highestmodseq = update->min_highest_modseq;
	if (rup.uidvalidity != 0 || rup.min_uidnext != 0 ||
	    rup.min_highestmodseq != 0) {
		if ((user = rados_mailbox_user(box)) == NULL)
			return -1;
		ret = rm_user_mailbox_update(user, mbox->rmb, &rup, &changed);
		if (ret != RM_RESULT_OK) {
			rados_storage_set_error(box->storage, ret,
						"updating the mailbox");
			return -1;
		}
		if (changed && rados_sync(mbox, FALSE) < 0)
			return -1;
	}
	if (update->min_first_recent_uid != 0 &&
	    rados_mailbox_update_first_recent(box,
					      update->min_first_recent_uid) < 0)
		return -1;
	/* what is left for the index: cache decisions (and a private
	   index's modseq) */
	guid_128_empty(rest.mailbox_guid);
	rest.uid_validity = 0;
	rest.min_next_uid = 0;
	rest.min_first_recent_uid = 0;
	rest.min_highest_modseq = 0;
	return index_storage_mailbox_update_common(box, &rest);
}
