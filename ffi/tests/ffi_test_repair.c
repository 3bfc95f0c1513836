/* Repair from C (rm_user_repair_mailbox, what doveadm force-resync runs): included by
 * ffi_test.c, whose CHECK/RC harness and txn_put (ffi_test_txn.c) it uses. On a cluster,
 * damage is planted with librados itself: a mail's body object removed, as an operator
 * or a bug would. */

#include <rados/librados.h>

struct repair_items {
	int actions, unrepaired, calls;
	/* every line, each ending with '\n' (truncated when long) */
	char text[2048];
};

static void collect_repair_item(void *userdata, rm_repair_item item, const char *text,
				size_t text_len)
{
	struct repair_items *r = userdata;
	r->calls++;
	if (item == RM_REPAIR_ITEM_ACTION)
		r->actions++;
	else
		r->unrepaired++;
	CHECK(strlen(text) == text_len && text_len > 0);
	size_t used = strlen(r->text);
	snprintf(r->text + used, sizeof r->text - used, "%s\n", text);
}

/* Removes the body object of `rec` from the user's namespace (the store's namespace
 * prefix is empty here); 0 on success. */
static int remove_body_object(const char *username, const rm_record *rec)
{
	const char *conf = getenv("CEPH_CONF");
	const char *pool = getenv("RADOS_MAIL_POOL");
	rados_t cluster;
	rados_ioctx_t io;
	char oid[5 + 32 + 1] = "mail.";
	int ret;

	for (int i = 0; i < 16; i++)
		snprintf(oid + 5 + 2 * i, 3, "%02x", rec->guid[i]);
	if (rados_create(&cluster, NULL) < 0)
		return -1;
	ret = rados_conf_read_file(cluster, conf);
	if (ret == 0)
		ret = rados_connect(cluster);
	if (ret == 0)
		ret = rados_ioctx_create(cluster, pool != NULL ? pool : "mail", &io);
	if (ret == 0) {
		rados_ioctx_set_namespace(io, username);
		ret = rados_remove(io, oid);
		rados_ioctx_destroy(io);
	}
	rados_shutdown(cluster);
	return ret;
}

static void test_repair(rm_user *user, const char *username, bool on_rados)
{
	struct rm_repair_counts counts = {77, 88};
	struct repair_items items;
	rm_mailbox *mb = NULL;

	/* Misuse: nothing written, no callback. */
	memset(&items, 0, sizeof items);
	RC(RM_RESULT_NULL_PARAMETER,
	   rm_user_repair_mailbox(NULL, "INBOX", false, collect_repair_item, &items, &counts));
	RC(RM_RESULT_NULL_PARAMETER,
	   rm_user_repair_mailbox(user, NULL, false, collect_repair_item, &items, &counts));
	RC(RM_RESULT_NULL_PARAMETER,
	   rm_user_repair_mailbox(user, "INBOX", false, collect_repair_item, &items, NULL));
	RC(RM_RESULT_INVALID_INPUT,
	   rm_user_repair_mailbox(user, "\xff", false, collect_repair_item, &items, &counts));
	RC(RM_RESULT_NOT_FOUND,
	   rm_user_repair_mailbox(user, "NoSuchBox", false, collect_repair_item, &items, &counts));
	CHECK(counts.actions == 77 && counts.unrepaired == 88 && items.calls == 0);

	/* A clean mailbox: nothing to do, nothing reported. */
	RC(RM_RESULT_OK, rm_user_mailbox_create(user, "Repair"));
	RC(RM_RESULT_OK, rm_mailbox_open(user, "Repair", &mb));
	if (mb == NULL)
		return;
	uint32_t keep = txn_put(mb, "Subject: keep\n\nkept\n");
	uint32_t lost = txn_put(mb, "Subject: lost\n\nits body object goes\n");
	CHECK(keep == 1 && lost == 2);
	RC(RM_RESULT_OK, rm_user_repair_mailbox(user, "Repair", false, collect_repair_item, &items, &counts));
	CHECK(counts.actions == 0 && counts.unrepaired == 0 && items.calls == 0);
	/* The callback is optional. */
	RC(RM_RESULT_OK, rm_user_repair_mailbox(user, "Repair", true, NULL, NULL, &counts));
	CHECK(counts.actions == 0 && counts.unrepaired == 0);

	rm_record rec;
	RC(RM_RESULT_OK, rm_mailbox_record(mb, lost, &rec));
	if (!on_rados || remove_body_object(username, &rec) != 0) {
		CHECK(!on_rados);
		rm_mailbox_free(mb);
		RC(RM_RESULT_OK, rm_user_mailbox_delete(user, "Repair"));
		return;
	}
	/* The body is gone while its record points to it: damage, not an expunge. */
	rm_body *body = NULL;
	RC(RM_RESULT_CORRUPTED, rm_body_open(mb, lost, &body));
	rm_body_free(body);

	/* A dry run reports the move to lost+found and writes nothing. */
	memset(&items, 0, sizeof items);
	RC(RM_RESULT_OK, rm_user_repair_mailbox(user, "Repair", true, collect_repair_item, &items, &counts));
	CHECK(counts.actions >= 1 && counts.unrepaired == 0);
	CHECK(items.actions == (int)counts.actions && items.unrepaired == 0);
	CHECK(strncmp(items.text, "(dry run, not done) ", 20) == 0);
	CHECK(strstr(items.text, "UID 2 from mailbox \"Repair\" (body missing") != NULL);
	rm_record again;
	RC(RM_RESULT_OK, rm_mailbox_sync(mb, &(bool){false}));
	RC(RM_RESULT_OK, rm_mailbox_record(mb, lost, &again));

	/* The repair moves the record out; the other mail stays; a second run finds
	 * nothing. */
	memset(&items, 0, sizeof items);
	RC(RM_RESULT_OK, rm_user_repair_mailbox(user, "Repair", false, collect_repair_item, &items, &counts));
	CHECK(counts.actions >= 1 && counts.unrepaired == 0 && items.actions == (int)counts.actions);
	CHECK(strstr(items.text, "UID 2 from mailbox \"Repair\" (body missing") != NULL);
	CHECK(strstr(items.text, "(dry run") == NULL);
	RC(RM_RESULT_OK, rm_mailbox_sync(mb, &(bool){false}));
	RC(RM_RESULT_NOT_FOUND, rm_mailbox_record(mb, lost, &again));
	RC(RM_RESULT_OK, rm_mailbox_record(mb, keep, &again));
	memset(&items, 0, sizeof items);
	RC(RM_RESULT_OK, rm_user_repair_mailbox(user, "Repair", false, collect_repair_item, &items, &counts));
	CHECK(counts.actions == 0 && counts.unrepaired == 0 && items.calls == 0);

	rm_mailbox_free(mb);
	RC(RM_RESULT_OK, rm_user_mailbox_delete(user, "Repair"));
	RC(RM_RESULT_OK, rm_user_mailbox_delete(user, "lost+found"));
}
