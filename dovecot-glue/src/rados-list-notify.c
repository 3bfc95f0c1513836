/* NOTIFY (RFC 5465) for the mailbox list "rados": what changed is found by
   comparing snapshots of the user's mailboxes (names, GUIDs, status) and
   subscriptions taken from RADOS, so changes made through any backend are
   seen. A new snapshot is taken when RADOS pushes a change (rados-push.c:
   commits notify the mailbox head, list changes the mailbox list), at every
   mailbox_idle_check_interval as the fallback, and on flush. */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "guid.h"
#include "mail-storage-private.h"
#include "mailbox-list-private.h"
#include "mailbox-list-notify.h"
#include "rados-connect.h"
#include "rados-push.h"
#include "rados-storage.h"
#include "rados-list-notify.h"

/* One mailbox as a snapshot saw it. */
struct rados_notify_box {
	const char *name;
	guid_128_t guid;
	struct rm_status status;
	bool have_status;
	/* matched by the snapshot being compared with this one */
	bool seen;
};

/* The mailboxes and subscriptions at one moment. */
struct rados_notify_snapshot {
	pool_t pool;
	ARRAY(struct rados_notify_box) boxes;
	ARRAY_TYPE(const_string) subscriptions;
};

struct rados_list_notify {
	struct mailbox_list_notify notify;

	struct rados_notify_snapshot *snapshot;
	/* changes found and not yet handed out by notify_next */
	pool_t recs_pool;
	ARRAY(struct mailbox_list_notify_rec) recs;
	unsigned int next_rec;

	struct rm_user *user;
	unsigned int interval_secs;
	struct rados_push *push;
	mailbox_list_notify_callback_t *callback;
	void *context;
	/* notify_next fails once: an outage lost changes */
	bool failed:1;
	/* a wake-up came while nobody waited */
	bool pending:1;
	/* the last check saw mailboxes created, deleted or renamed */
	bool list_changed:1;
};

static void rados_notify_changed(struct rados_list_notify *rn);

#define RADOS_NOTIFY_WANTS_STATUS \
	(MAILBOX_LIST_NOTIFY_STATUS | MAILBOX_LIST_NOTIFY_UIDVALIDITY)
#define RADOS_NOTIFY_WANTS_SUBSCRIPTIONS \
	(MAILBOX_LIST_NOTIFY_SUBSCRIBE | MAILBOX_LIST_NOTIFY_UNSUBSCRIBE)

static void rados_notify_name_cb(void *userdata, const char *name,
				 size_t name_len)
{
	struct rados_notify_snapshot *snap = userdata;
	const char *dup = p_strndup(snap->pool, name, name_len);

	array_push_back(&snap->subscriptions, &dup);
}

struct rados_notify_names {
	pool_t pool;
	ARRAY_TYPE(const_string) names;
};

static void rados_notify_box_name_cb(void *userdata, const char *name,
				     size_t name_len)
{
	struct rados_notify_names *names = userdata;
	const char *dup = p_strndup(names->pool, name, name_len);

	array_push_back(&names->names, &dup);
}

static void rados_notify_snapshot_free(struct rados_notify_snapshot **_snap)
{
	struct rados_notify_snapshot *snap = *_snap;

	if (snap == NULL)
		return;
	*_snap = NULL;
	pool_unref(&snap->pool);
}

/* Reads one mailbox into snap; a mailbox gone meanwhile is left out. */
static int rados_notify_read_box(struct rados_list_notify *rn,
				 struct rm_user *user, const char *name,
				 struct rados_notify_snapshot *snap)
{
	struct mailbox_list *list = rn->notify.list;
	struct rados_notify_box *box;
	struct rm_mailbox *rmb;
	uint8_t guid[16];
	enum rm_result ret;

	ret = rm_mailbox_open(user, name, &rmb);
	if (ret == RM_RESULT_NOT_FOUND)
		return 0;
	if (ret != RM_RESULT_OK) {
		rados_list_set_error(list, ret, "opening a mailbox for NOTIFY");
		return -1;
	}
	box = array_append_space(&snap->boxes);
	box->name = name;
	ret = rm_mailbox_guid(rmb, &guid);
	if (ret == RM_RESULT_OK)
		memcpy(box->guid, guid, sizeof(box->guid));
	if (ret == RM_RESULT_OK &&
	    (rn->notify.mask & RADOS_NOTIFY_WANTS_STATUS) != 0) {
		ret = rm_mailbox_status(rmb, &box->status);
		box->have_status = ret == RM_RESULT_OK;
	}
	rm_mailbox_free(rmb);
	if (ret == RM_RESULT_NOT_FOUND) {
		/* deleted between the list and the read */
		array_pop_back(&snap->boxes);
		return 0;
	}
	if (ret != RM_RESULT_OK) {
		rados_list_set_error(list, ret, "reading a mailbox for NOTIFY");
		return -1;
	}
	return 0;
}

/* The user's mailboxes and subscriptions now, from RADOS. */
static int rados_notify_snapshot_read(struct rados_list_notify *rn,
				      struct rados_notify_snapshot **snap_r)
{
	struct mailbox_list *list = rn->notify.list;
	struct rados_notify_snapshot *snap;
	struct rados_notify_names names;
	struct rm_user *user;
	const char *name;
	enum rm_result ret;
	pool_t pool;

	user = rn->user;
	pool = pool_alloconly_create("rados notify snapshot", 1024);
	snap = p_new(pool, struct rados_notify_snapshot, 1);
	snap->pool = pool;
	p_array_init(&snap->boxes, pool, 16);
	p_array_init(&snap->subscriptions, pool, 16);

	names.pool = pool;
	p_array_init(&names.names, pool, 16);
	ret = rm_user_mailbox_list(user, "*", rados_notify_box_name_cb,
				   &names);
	if (ret == RM_RESULT_OK &&
	    (rn->notify.mask & RADOS_NOTIFY_WANTS_SUBSCRIPTIONS) != 0) {
		ret = rm_user_subscriptions(user, "*", rados_notify_name_cb,
					    snap);
	}
	if (ret != RM_RESULT_OK) {
		rados_list_set_error(list, ret, "listing mailboxes for NOTIFY");
		pool_unref(&pool);
		return -1;
	}
	array_foreach_elem(&names.names, name) {
		if (rados_notify_read_box(rn, user, name, snap) < 0) {
			pool_unref(&pool);
			return -1;
		}
	}
	*snap_r = snap;
	return 0;
}

static struct mailbox_list_notify_rec *
rados_notify_rec_add(struct rados_list_notify *rn, const char *name,
		     enum mailbox_list_notify_event events)
{
	struct mailbox_list_notify_rec *rec;

	rec = array_append_space(&rn->recs);
	rec->events = events;
	rec->storage_name = p_strdup(rn->recs_pool, name);
	rec->vname = p_strdup(rn->recs_pool,
		mailbox_list_get_vname(rn->notify.list, name));
	return rec;
}

static struct rados_notify_box *
rados_notify_find_guid(struct rados_notify_snapshot *snap,
		       const guid_128_t guid)
{
	struct rados_notify_box *box;

	array_foreach_modifiable(&snap->boxes, box) {
		if (guid_128_equals(box->guid, guid))
			return box;
	}
	return NULL;
}

static enum mailbox_list_notify_event
rados_notify_status_events(const struct rm_status *old,
			   const struct rm_status *new)
{
	enum mailbox_list_notify_event events = 0;

	if (old->uidvalidity != new->uidvalidity ||
	    old->incarnation != new->incarnation)
		return MAILBOX_LIST_NOTIFY_UIDVALIDITY;
	if (new->uidnext != old->uidnext)
		events |= MAILBOX_LIST_NOTIFY_APPENDS;
	/* fewer mails than those before plus those added: some went */
	if (new->messages < old->messages + (new->uidnext - old->uidnext))
		events |= MAILBOX_LIST_NOTIFY_EXPUNGES;
	if (new->unseen != old->unseen)
		events |= MAILBOX_LIST_NOTIFY_SEEN_CHANGES;
	if (new->highestmodseq != old->highestmodseq)
		events |= MAILBOX_LIST_NOTIFY_MODSEQ_CHANGES;
	return events;
}

static bool rados_notify_name_in(const ARRAY_TYPE(const_string) *names,
				 const char *name)
{
	const char *n;

	array_foreach_elem(names, n) {
		if (strcmp(n, name) == 0)
			return TRUE;
	}
	return FALSE;
}

/* Queues what changed from old to new. */
static void rados_notify_diff(struct rados_list_notify *rn,
			      struct rados_notify_snapshot *old,
			      struct rados_notify_snapshot *new)
{
	struct mailbox_list_notify_rec *rec;
	struct rados_notify_box *nbox, *obox;
	enum mailbox_list_notify_event events;
	const char *name;

	/* deletions first: a name deleted and created again is reported
	   in that order */
	array_foreach_modifiable(&old->boxes, obox) {
		nbox = rados_notify_find_guid(new, obox->guid);
		if (nbox != NULL) {
			nbox->seen = TRUE;
			continue;
		}
		rn->list_changed = TRUE;
		rec = rados_notify_rec_add(rn, obox->name,
					   MAILBOX_LIST_NOTIFY_DELETE);
		memcpy(rec->guid, obox->guid, sizeof(rec->guid));
	}
	array_foreach_modifiable(&new->boxes, nbox) {
		if (!nbox->seen) {
			rn->list_changed = TRUE;
			rec = rados_notify_rec_add(rn, nbox->name,
						   MAILBOX_LIST_NOTIFY_CREATE);
			memcpy(rec->guid, nbox->guid, sizeof(rec->guid));
			continue;
		}
		obox = rados_notify_find_guid(old, nbox->guid);
		i_assert(obox != NULL);
		events = 0;
		if (strcmp(obox->name, nbox->name) != 0) {
			events |= MAILBOX_LIST_NOTIFY_RENAME;
			rn->list_changed = TRUE;
		}
		if (obox->have_status && nbox->have_status) {
			events |= rados_notify_status_events(&obox->status,
							     &nbox->status);
		}
		events &= rn->notify.mask;
		if (events == 0)
			continue;
		rec = rados_notify_rec_add(rn, nbox->name, events);
		memcpy(rec->guid, nbox->guid, sizeof(rec->guid));
		if ((events & MAILBOX_LIST_NOTIFY_RENAME) != 0) {
			rec->old_vname = p_strdup(rn->recs_pool,
				mailbox_list_get_vname(rn->notify.list,
						       obox->name));
		}
	}
	if ((rn->notify.mask & RADOS_NOTIFY_WANTS_SUBSCRIPTIONS) == 0)
		return;
	array_foreach_elem(&new->subscriptions, name) {
		if (!rados_notify_name_in(&old->subscriptions, name)) {
			(void)rados_notify_rec_add(rn, name,
				MAILBOX_LIST_NOTIFY_SUBSCRIBE);
		}
	}
	array_foreach_elem(&old->subscriptions, name) {
		if (!rados_notify_name_in(&new->subscriptions, name)) {
			(void)rados_notify_rec_add(rn, name,
				MAILBOX_LIST_NOTIFY_UNSUBSCRIBE);
		}
	}
}

/* Takes a new snapshot and queues the changes since the last one. Returns
   1 if something changed, 0 if not, -1 on failure. */
static int rados_notify_check(struct rados_list_notify *rn)
{
	struct rados_notify_snapshot *snap;
	unsigned int queued;
	int ret;

	if (rn->next_rec >= array_count(&rn->recs)) {
		/* everything handed out: start a new batch */
		array_clear(&rn->recs);
		rn->next_rec = 0;
		p_clear(rn->recs_pool);
		p_array_init(&rn->recs, rn->recs_pool, 8);
	}
	queued = array_count(&rn->recs);
	T_BEGIN {
		ret = rados_notify_snapshot_read(rn, &snap);
	} T_END;
	if (ret < 0) {
		rn->failed = TRUE;
		return -1;
	}
	if (rn->snapshot != NULL)
		rados_notify_diff(rn, rn->snapshot, snap);
	rados_notify_snapshot_free(&rn->snapshot);
	rn->snapshot = snap;
	return array_count(&rn->recs) > queued ? 1 : 0;
}

/* Watches the mailbox list and every mailbox of the snapshot (after a
   change of the list, the new set: a watch made after the snapshot would miss
   what changed in between, so the caller takes another one). */
static void rados_notify_watch(struct rados_list_notify *rn)
{
	const struct rados_notify_box *box;

	rados_push_deinit(&rn->push);
	rn->push = rados_push_init(rn->user, rn->interval_secs,
				   rados_notify_changed, rn);
	(void)rados_push_add_list(rn->push);
	if ((rn->notify.mask & RADOS_NOTIFY_WANTS_STATUS) == 0 ||
	    rn->snapshot == NULL)
		return;
	array_foreach(&rn->snapshot->boxes, box) {
		if (rados_push_add_mailbox_name(rn->push, box->name) < 0)
			break;
	}
}

static void rados_notify_changed(struct rados_list_notify *rn)
{
	int ret;

	if (rn->callback == NULL) {
		/* nobody waits: looked at when somebody does */
		rn->pending = TRUE;
		return;
	}
	rn->pending = FALSE;
	ret = rados_notify_check(rn);
	if (ret > 0 && rn->list_changed) {
		rn->list_changed = FALSE;
		rados_notify_watch(rn);
		(void)rados_notify_check(rn);
	}
	if (ret != 0)
		rn->callback(rn->context);
}

int rados_list_notify_init(struct mailbox_list *list,
			   enum mailbox_list_notify_event mask,
			   struct mailbox_list_notify **notify_r)
{
	struct rados_list_notify *rn;
	struct mail_storage *storage;
	struct rm_user *user;
	int ret;

	user = rados_list_user(list);
	if (user == NULL)
		return -1;
	storage = mail_namespace_get_default_storage(list->ns);
	rn = i_new(struct rados_list_notify, 1);
	rn->notify.list = list;
	rn->notify.mask = mask;
	rn->user = user;
	rn->interval_secs = storage->set->mailbox_idle_check_interval;
	rn->recs_pool = pool_alloconly_create("rados notify recs", 1024);
	p_array_init(&rn->recs, rn->recs_pool, 8);
	T_BEGIN {
		ret = rados_notify_snapshot_read(rn, &rn->snapshot);
	} T_END;
	if (ret < 0) {
		/* an outage: retried at the next wake-up (the client is
		   told some events may have got lost) */
		rn->failed = TRUE;
	}
	rados_notify_watch(rn);
	/* a change between the snapshot and the watch */
	rn->pending = TRUE;
	*notify_r = &rn->notify;
	return 0;
}

static struct rados_list_notify *
rados_list_notify(struct mailbox_list_notify *notify)
{
	return container_of(notify, struct rados_list_notify, notify);
}

int rados_list_notify_next(struct mailbox_list_notify *notify,
			   const struct mailbox_list_notify_rec **rec_r)
{
	struct rados_list_notify *rn = rados_list_notify(notify);

	if (rn->failed) {
		rn->failed = FALSE;
		return -1;
	}
	if (rn->next_rec >= array_count(&rn->recs))
		return 0;
	*rec_r = array_idx(&rn->recs, rn->next_rec++);
	return 1;
}

void rados_list_notify_deinit(struct mailbox_list_notify *notify)
{
	struct rados_list_notify *rn = rados_list_notify(notify);

	rados_push_deinit(&rn->push);
	rados_notify_snapshot_free(&rn->snapshot);
	pool_unref(&rn->recs_pool);
	i_free(rn);
}

void rados_list_notify_wait(struct mailbox_list_notify *notify,
			    mailbox_list_notify_callback_t *callback,
			    void *context)
{
	struct rados_list_notify *rn = rados_list_notify(notify);

	rn->callback = callback;
	rn->context = context;
	if (callback != NULL && rn->pending)
		rados_notify_changed(rn);
}

void rados_list_notify_flush(struct mailbox_list_notify *notify)
{
	rados_notify_changed(rados_list_notify(notify));
}
