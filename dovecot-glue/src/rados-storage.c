/* The mail storage "rados": storage and mailbox vfuncs. Mailboxes, mails,
   flags and UIDs live in RADOS; the local index (mail_location's INDEX=) is a
   cache this process can drop and rebuild from RADOS at any time. */

#include "lib.h"
#include "ioloop.h"
#include "unlink-directory.h"
#include "mail-index-alloc-cache.h"
#include "mail-index-modseq.h"
#include "mailbox-list-private.h"
#include "rados-connect.h"
#include "rados-storage.h"
#include "rados-push.h"
#include "mailbox-watch.h"
#include "mailbox-attribute.h"

extern struct mailbox rados_mailbox;

bool rados_storage_is_rados(const struct mail_storage *storage)
{
	return strcmp(storage->name, RADOS_STORAGE_NAME) == 0;
}

static struct mail_storage *rados_storage_alloc(void)
{
	struct rados_storage *storage;
	pool_t pool;

	pool = pool_alloconly_create("rados storage", 512 + 256);
	storage = p_new(pool, struct rados_storage, 1);
	storage->storage = rados_storage;
	storage->storage.pool = pool;
	return &storage->storage;
}

static int rados_storage_create(struct mail_storage *storage,
				struct mail_namespace *ns ATTR_UNUSED,
				const char **error_r)
{
	/* connect now; a cluster that doesn't answer is tried again at the
	   first use (rados_mailbox_user) */
	return rados_user_open(storage->user, storage->event, error_r);
}

static void
rados_storage_get_list_settings(const struct mail_namespace *ns ATTR_UNUSED,
				struct mailbox_list_settings *set)
{
	if (set->layout == NULL)
		set->layout = RADOS_LIST_NAME;
}

static struct mailbox *
rados_mailbox_alloc(struct mail_storage *storage, struct mailbox_list *list,
		    const char *vname, enum mailbox_flags flags)
{
	struct rados_mailbox *mbox;
	pool_t pool;

	pool = pool_alloconly_create("rados mailbox", 1024 * 3);
	mbox = p_new(pool, struct rados_mailbox, 1);
	mbox->box = rados_mailbox;
	mbox->box.pool = pool;
	mbox->box.storage = storage;
	mbox->box.list = list;
	mbox->box.mail_vfuncs = &rados_mail_vfuncs;
	mbox->storage = RADOS_STORAGE(storage);

	index_storage_mailbox_alloc(&mbox->box, vname, flags,
				    RADOS_INDEX_PREFIX);
	return &mbox->box;
}

bool rados_index_header_get(struct rados_mailbox *mbox,
			    struct mail_index_view *view,
			    struct rados_index_header *hdr_r)
{
	const void *data;
	size_t size;

	i_zero(hdr_r);
	mail_index_get_header_ext(view, mbox->ext_id, &data, &size);
	if (size < sizeof(*hdr_r))
		return FALSE;
	memcpy(hdr_r, data, sizeof(*hdr_r));
	return TRUE;
}

static void rados_mailbox_register_ext(struct rados_mailbox *mbox)
{
	mbox->ext_id = mail_index_ext_register(
		mbox->box.index, RADOS_EXT_NAME,
		sizeof(struct rados_index_header), sizeof(uint64_t),
		sizeof(uint64_t));
}

/* The local index belongs to another incarnation of this mailbox name (it was
   deleted and created again, or renamed, through another process): drop it,
   the sync rebuilds it from RADOS. Runs before the index is opened for use. */
static int rados_mailbox_drop_stale_index(struct rados_mailbox *mbox)
{
	struct mailbox *box = &mbox->box;
	struct index_mailbox_context *ibox = INDEX_STORAGE_CONTEXT(box);
	const struct mail_index_header *hdr;
	struct rados_index_header rhdr;
	struct mail_index_view *view;
	enum mail_index_open_flags open_flags;
	const char *dir, *error;
	bool have_ext, stale, in_use;

	if (index_storage_mailbox_alloc_index(box) < 0)
		return -1;
	rados_mailbox_register_ext(mbox);
	open_flags = ibox->index_flags &
		ENUM_NEGATE(MAIL_INDEX_OPEN_FLAG_CREATE);
	if (mail_index_open(box->index, open_flags) <= 0) {
		/* no index yet (or a broken one: the open proper reports) */
		return 0;
	}
	view = mail_index_view_open(box->index);
	hdr = mail_index_get_header(view);
	have_ext = rados_index_header_get(mbox, view, &rhdr);
	if (have_ext) {
		stale = rhdr.uidvalidity != mbox->uidvalidity ||
			rhdr.incarnation != mbox->incarnation ||
			memcmp(rhdr.mailbox_guid, mbox->guid,
			       sizeof(mbox->guid)) != 0;
	} else {
		stale = hdr->messages_count > 0;
	}
	if (hdr->uid_validity != 0 && hdr->uid_validity != mbox->uidvalidity)
		stale = TRUE;
	mail_index_view_close(&view);
	mail_index_close(box->index);
	if (!stale)
		return 0;

	dir = rados_list_index_dir(box->list, box->name);
	if (dir == NULL)
		return 0;
	if (box->index->open_count > 0) {
		/* Still open in this process: Dovecot keeps a closed index
		   open for a while to reuse it, and reusing this one would
		   bring the old mailbox back ("deleted under us"). Let the
		   cache go; the open that follows allocates a new index. */
		mail_index_alloc_cache_unref(&box->index);
		mail_index_alloc_cache_destroy_unrefed();
		in_use = mail_index_alloc_cache_find(dir) != NULL;
		if (index_storage_mailbox_alloc_index(box) < 0)
			return -1;
		rados_mailbox_register_ext(mbox);
		if (in_use) {
			/* another mailbox of this process really uses it:
			   let its sync complain instead of deleting files
			   under it */
			return 0;
		}
	}
	e_debug(box->event, "rados: dropping stale local index %s", dir);
	if (unlink_directory(dir, UNLINK_DIRECTORY_FLAG_FILES_ONLY,
			     &error) < 0) {
		mailbox_set_critical(box, "rados: dropping stale index: %s",
				     error);
		return -1;
	}
	return 0;
}

static int rados_mailbox_open_rados(struct rados_mailbox *mbox)
{
	struct mailbox *box = &mbox->box;
	struct rm_user *user = rados_mailbox_user(box);
	enum rm_result ret;

	if (user == NULL)
		return -1;
	/* a delivery (LMTP, LDA) only adds mails: a view of the mailbox this
	   process has cached is good enough, the commit's guard tells if
	   another process changed it meanwhile (one RADOS read less) */
	if (rados_unavailable_now())
		ret = RM_RESULT_UNAVAILABLE;
	else if ((box->flags & MAILBOX_FLAG_SAVEONLY) != 0)
		ret = rm_mailbox_open_to_append(user, box->name, &mbox->rmb);
	else
		ret = rm_mailbox_open(user, box->name, &mbox->rmb);
	if (ret == RM_RESULT_NOT_FOUND && box->inbox_user) {
		/* INBOX always exists: create it on first use */
		ret = rm_user_mailbox_create(user, box->name);
		if (ret == RM_RESULT_OK || ret == RM_RESULT_ALREADY_EXISTS)
			ret = rm_mailbox_open(user, box->name, &mbox->rmb);
	}
	if (ret == RM_RESULT_NOT_FOUND) {
		mail_storage_set_error(box->storage, MAIL_ERROR_NOTFOUND,
			T_MAIL_ERR_MAILBOX_NOT_FOUND(box->vname));
		return -1;
	}
	if (ret != RM_RESULT_OK) {
		rados_storage_set_error(box->storage, ret, "opening mailbox");
		return -1;
	}
	/* from the open's one read of the head: no further RADOS read */
	if ((ret = rm_mailbox_guid(mbox->rmb, &mbox->guid)) != RM_RESULT_OK ||
	    (ret = rm_mailbox_identity(mbox->rmb, &mbox->uidvalidity,
				       &mbox->incarnation)) != RM_RESULT_OK) {
		rados_storage_set_error(box->storage, ret, "opening mailbox");
		rm_mailbox_free(mbox->rmb);
		mbox->rmb = NULL;
		return -1;
	}
	return 0;
}

static int rados_mailbox_open(struct mailbox *box)
{
	struct rados_mailbox *mbox = RADOS_MAILBOX(box);

	if (rados_mailbox_open_rados(mbox) < 0)
		return -1;
	if (rados_mailbox_drop_stale_index(mbox) < 0 ||
	    index_storage_mailbox_open(box, FALSE) < 0) {
		rm_mailbox_free(mbox->rmb);
		mbox->rmb = NULL;
		return -1;
	}
	/* modseqs are always tracked: they mirror RADOS's */
	mail_index_modseq_enable(box->index);
	return 0;
}

static void rados_mailbox_close(struct mailbox *box)
{
	struct rados_mailbox *mbox = RADOS_MAILBOX(box);

	rados_push_deinit(&mbox->push);
	rm_mailbox_free(mbox->rmb);
	mbox->rmb = NULL;
	index_storage_mailbox_close(box);
}

static void rados_mailbox_free(struct mailbox *box)
{
	struct rados_mailbox *mbox = RADOS_MAILBOX(box);

	rados_push_deinit(&mbox->push);
	rm_mailbox_free(mbox->rmb);
	mbox->rmb = NULL;
	index_storage_mailbox_free(box);
}

static void rados_name_found_cb(void *userdata, const char *name ATTR_UNUSED,
				size_t name_len ATTR_UNUSED)
{
	bool *found = userdata;

	*found = TRUE;
}

static int rados_mailbox_exists(struct mailbox *box, bool auto_boxes,
				enum mailbox_existence *existence_r)
{
	struct rm_user *user;
	enum rm_result ret;
	bool found = FALSE;

	if (box->inbox_user || (auto_boxes && mailbox_is_autocreated(box))) {
		*existence_r = MAILBOX_EXISTENCE_SELECT;
		return 0;
	}
	if (strpbrk(box->name, "*%") != NULL || box->name[0] == '\0') {
		/* not a valid name in RADOS (and a LIST pattern) */
		*existence_r = MAILBOX_EXISTENCE_NONE;
		return 0;
	}
	user = rados_mailbox_user(box);
	if (user == NULL)
		return -1;
	ret = rm_user_mailbox_list(user, box->name, rados_name_found_cb,
				   &found);
	if (ret == RM_RESULT_OK && !found) {
		ret = rm_user_mailbox_list(user, t_strdup_printf("%s%c*",
					   box->name, RADOS_LIST_SEP),
					   rados_name_found_cb, &found);
		*existence_r = found ? MAILBOX_EXISTENCE_NOSELECT :
			MAILBOX_EXISTENCE_NONE;
	} else {
		*existence_r = MAILBOX_EXISTENCE_SELECT;
	}
	if (ret != RM_RESULT_OK) {
		rados_storage_set_error(box->storage, ret, "listing mailboxes");
		return -1;
	}
	return 0;
}

static int rados_mailbox_create(struct mailbox *box,
				const struct mailbox_update *update,
				bool directory ATTR_UNUSED)
{
	struct rm_user *user = rados_mailbox_user(box);
	const uint8_t *guid = NULL;
	uint32_t uidvalidity = 0;
	enum rm_result ret;

	/* RADOS has no directories: "CREATE a/" creates the mailbox "a".
	   A given GUID and UIDVALIDITY (dsync keeps those it had) are
	   RADOS's from the start; the rest of update is for existing
	   mailboxes (rados_mailbox_update). */
	if (user == NULL)
		return -1;
	if (update != NULL) {
		if (!guid_128_is_empty(update->mailbox_guid))
			guid = update->mailbox_guid;
		uidvalidity = update->uid_validity;
	}
	ret = rm_user_mailbox_create_with(user, box->name, guid, uidvalidity);
	if (ret == RM_RESULT_ALREADY_EXISTS) {
		/* the name, or (with a given GUID) another mailbox has it */
		mail_storage_set_error(box->storage, MAIL_ERROR_EXISTS,
				       guid == NULL ? "Mailbox already exists" :
				       rados_last_error(ret));
		return -1;
	}
	if (ret != RM_RESULT_OK) {
		rados_storage_set_error(box->storage, ret, "creating mailbox");
		return -1;
	}
	return 0;
}

/* Unsets every attribute of `type` of the mailbox (IMAP METADATA lives in
   mail_attribute_dict, apart from the mailbox), as Dovecot's own storages do
   when a mailbox is deleted; INBOX keeps the server attributes stored on it. */
static int rados_mailbox_delete_attributes(struct mailbox_transaction_context *t,
					   enum mail_attribute_type type)
{
	struct mailbox_attribute_iter *iter;
	const char *key;
	int ret = 0;

	iter = mailbox_attribute_iter_init(t->box, type, "");
	while ((key = mailbox_attribute_iter_next(iter)) != NULL) {
		if (t->box->inbox_any &&
		    str_begins(key, MAILBOX_ATTRIBUTE_PREFIX_DOVECOT_PVT_SERVER))
			continue;
		if (mailbox_attribute_unset(t, type, key) < 0 &&
		    mailbox_get_last_mail_error(t->box) != MAIL_ERROR_NOTPOSSIBLE) {
			ret = -1;
			break;
		}
	}
	if (mailbox_attribute_iter_deinit(&iter) < 0)
		ret = -1;
	return ret;
}

static int rados_mailbox_delete_all_attributes(struct mailbox *box)
{
	struct mailbox_transaction_context *t;

	t = mailbox_transaction_begin(box, 0, "rados mailbox delete");
	if (rados_mailbox_delete_attributes(t, MAIL_ATTRIBUTE_TYPE_PRIVATE) < 0 ||
	    rados_mailbox_delete_attributes(t, MAIL_ATTRIBUTE_TYPE_SHARED) < 0) {
		mailbox_transaction_rollback(&t);
		return -1;
	}
	return mailbox_transaction_commit(&t);
}

static int rados_mailbox_delete(struct mailbox *box)
{
	struct rados_mailbox *mbox = RADOS_MAILBOX(box);
	struct rm_status status;
	enum rm_result ret;

	if (box->deleting_must_be_empty && mbox->rmb != NULL) {
		ret = rm_mailbox_status(mbox->rmb, &status);
		if (ret != RM_RESULT_OK) {
			rados_storage_set_error(box->storage, ret,
						"reading mailbox status");
			return -1;
		}
		if (status.messages > 0) {
			mail_storage_set_error(box->storage, MAIL_ERROR_EXISTS,
					       "Mailbox isn't empty");
			return -1;
		}
	}
	if (mbox->rmb != NULL && rados_mailbox_delete_all_attributes(box) < 0)
		return -1;
	/* close the local index before its files go */
	mailbox_close(box);
	mail_index_alloc_cache_destroy_unrefed();
	if (box->list->v.delete_mailbox(box->list, box->name) < 0) {
		mail_storage_copy_list_error(box->storage, box->list);
		return -1;
	}
	return 0;
}

static int rados_mailbox_get_status(struct mailbox *box,
				    enum mailbox_status_items items,
				    struct mailbox_status *status_r)
{
	struct rados_mailbox *mbox = RADOS_MAILBOX(box);
	struct rados_index_header rhdr;

	/* an unopened mailbox is opened and synced first: the index is
	   only a cache */
	if (index_storage_get_status(box, items, status_r) < 0)
		return -1;
	if ((items & STATUS_HIGHESTMODSEQ) != 0 &&
	    rados_index_header_get(mbox, box->view, &rhdr) &&
	    rhdr.highest_modseq != 0) {
		/* the local index may count a few more modseqs than RADOS
		   (its log bumps once per record type): report RADOS's */
		status_r->highest_modseq = rhdr.highest_modseq;
	}
	return 0;
}

static int rados_mailbox_get_metadata(struct mailbox *box,
				      enum mailbox_metadata_items items,
				      struct mailbox_metadata *metadata_r)
{
	struct rados_mailbox *mbox = RADOS_MAILBOX(box);

	if ((items & MAILBOX_METADATA_GUID) != 0) {
		if (!box->opened && mailbox_open(box) < 0)
			return -1;
		memcpy(metadata_r->guid, mbox->guid, sizeof(metadata_r->guid));
		items &= ENUM_NEGATE(MAILBOX_METADATA_GUID);
	}
	return index_mailbox_get_metadata(box, items, metadata_r);
}

static void rados_notify_pushed(struct mailbox *box)
{
	box->notify_callback(box, box->notify_context);
}

static void rados_notify_changes(struct mailbox *box)
{
	struct rados_mailbox *mbox = RADOS_MAILBOX(box);
	struct rm_user *user;

	/* RADOS changes made elsewhere leave no local trace to watch: RADOS
	   pushes them (rados-push.c), and a poll every
	   mailbox_idle_check_interval is the fallback */
	mailbox_watch_remove_all(box);
	rados_push_deinit(&mbox->push);
	if (box->notify_callback == NULL)
		return;
	user = rados_mailbox_user(box);
	if (user == NULL)
		return;
	mbox->push = rados_push_init(user,
		box->storage->set->mailbox_idle_check_interval,
		rados_notify_pushed, box);
	if (mbox->rmb != NULL)
		(void)rados_push_add_mailbox(mbox->push, mbox->rmb);
}

struct mail_storage rados_storage = {
	.name = RADOS_STORAGE_NAME,
	.class_flags = MAIL_STORAGE_CLASS_FLAG_NO_ROOT |
		MAIL_STORAGE_CLASS_FLAG_HAVE_MAIL_GUIDS |
		MAIL_STORAGE_CLASS_FLAG_HAVE_MAIL_GUID128 |
		/* mails may be stored transformed: zlib and mail_crypt only
		   wrap a storage's streams with this flag */
		MAIL_STORAGE_CLASS_FLAG_BINARY_DATA,

	.v = {
		.alloc = rados_storage_alloc,
		.create = rados_storage_create,
		.destroy = index_storage_destroy,
		.get_list_settings = rados_storage_get_list_settings,
		.mailbox_alloc = rados_mailbox_alloc,
	},
};

struct mailbox rados_mailbox = {
	.v = {
		.is_readonly = index_storage_is_readonly,
		.enable = index_storage_mailbox_enable,
		.exists = rados_mailbox_exists,
		.open = rados_mailbox_open,
		.close = rados_mailbox_close,
		.free = rados_mailbox_free,
		.create_box = rados_mailbox_create,
		.update_box = rados_mailbox_update,
		.delete_box = rados_mailbox_delete,
		.rename_box = index_storage_mailbox_rename,
		.get_status = rados_mailbox_get_status,
		.get_metadata = rados_mailbox_get_metadata,
		.set_subscribed = index_storage_set_subscribed,
		.attribute_set = index_storage_attribute_set,
		.attribute_get = index_storage_attribute_get,
		.attribute_iter_init = index_storage_attribute_iter_init,
		.attribute_iter_next = index_storage_attribute_iter_next,
		.attribute_iter_deinit = index_storage_attribute_iter_deinit,
		.list_index_has_changed = index_storage_list_index_has_changed,
		.list_index_update_sync = index_storage_list_index_update_sync,
		.sync_init = rados_storage_sync_init,
		.sync_next = index_mailbox_sync_next,
		.sync_deinit = index_mailbox_sync_deinit,
		.notify_changes = rados_notify_changes,
		.transaction_begin = index_transaction_begin,
		.transaction_commit = rados_transaction_commit,
		.transaction_rollback = rados_transaction_rollback,
		.mail_alloc = rados_mail_alloc,
		.search_init = index_storage_search_init,
		.search_deinit = index_storage_search_deinit,
		.search_next_nonblock = index_storage_search_next_nonblock,
		.search_next_update_seq = index_storage_search_next_update_seq,
		.search_next_match_mail = index_storage_search_next_match_mail,
		.save_alloc = rados_save_alloc,
		.save_begin = rados_save_begin,
		.save_continue = rados_save_continue,
		.save_finish = rados_save_finish,
		.save_cancel = rados_save_cancel,
		.copy = rados_copy,
		.transaction_save_commit_pre =
			rados_transaction_save_commit_pre,
		.transaction_save_commit_post =
			rados_transaction_save_commit_post,
		.transaction_save_rollback = rados_transaction_save_rollback,
		.is_inconsistent = index_storage_is_inconsistent,
	},
};
