/* \Recent from C (rm_mailbox_take_recent, rm_changes_header.first_recent): included by
 * ffi_test.c, whose CHECK/RC harness and txn_put (ffi_test_txn.c) it uses. */

static void test_recent(rm_user *user)
{
	rm_mailbox *mb = NULL, *again = NULL;
	RC(RM_RESULT_OK, rm_user_mailbox_create(user, "Recent"));
	RC(RM_RESULT_OK, rm_mailbox_open(user, "Recent", &mb));
	if (mb == NULL)
		return;
	CHECK(txn_put(mb, "Subject: r1\n\none\n") == 1);
	CHECK(txn_put(mb, "Subject: r2\n\ntwo\n") == 2);

	/* Misuse: nothing written, nothing taken. */
	uint32_t first = 77, end = 88;
	RC(RM_RESULT_NULL_PARAMETER, rm_mailbox_take_recent(NULL, 3, &first, &end));
	RC(RM_RESULT_NULL_PARAMETER, rm_mailbox_take_recent(mb, 3, NULL, &end));
	RC(RM_RESULT_NULL_PARAMETER, rm_mailbox_take_recent(mb, 3, &first, NULL));
	CHECK(first == 77 && end == 88);

	/* Nobody took anything: every mail is recent (first recent UID 1). */
	rm_changes *c = NULL;
	rm_changes_header h;
	RC(RM_RESULT_OK, rm_changes_open(mb, 0, &c));
	RC(RM_RESULT_OK, rm_changes_mailbox(c, &h));
	rm_changes_free(c);
	CHECK(h.first_recent == 1 && h.uidnext == 3);
	uint64_t hms = h.highestmodseq;

	/* The first session takes them; the next one (any handle) gets none. */
	RC(RM_RESULT_OK, rm_mailbox_take_recent(mb, h.uidnext, &first, &end));
	CHECK(first == 1 && end == 3);
	RC(RM_RESULT_OK, rm_mailbox_open(user, "Recent", &again));
	RC(RM_RESULT_OK, rm_mailbox_take_recent(again, UINT32_MAX, &first, &end));
	CHECK(first == 3 && end == 3);

	/* Not above `upto`; taking changes no modseq; the header shows the boundary. */
	CHECK(txn_put(mb, "Subject: r3\n\nthree\n") == 3);
	RC(RM_RESULT_OK, rm_mailbox_take_recent(mb, 2, &first, &end));
	CHECK(first == end);
	RC(RM_RESULT_OK, rm_mailbox_take_recent(mb, UINT32_MAX, &first, &end));
	CHECK(first == 3 && end == 4);
	c = NULL;
	RC(RM_RESULT_OK, rm_changes_open(mb, 0, &c));
	RC(RM_RESULT_OK, rm_changes_mailbox(c, &h));
	rm_changes_free(c);
	CHECK(h.first_recent == 4 && h.uidnext == 4 && h.highestmodseq == hms + 1);

	/* Deleted meanwhile: NOT_FOUND, outputs untouched. */
	CHECK(txn_put(mb, "Subject: r4\n\nfour\n") == 4);
	RC(RM_RESULT_OK, rm_user_mailbox_delete(user, "Recent"));
	first = 77;
	end = 88;
	RC(RM_RESULT_NOT_FOUND, rm_mailbox_take_recent(mb, UINT32_MAX, &first, &end));
	CHECK(first == 77 && end == 88);
	rm_mailbox_free(again);
	rm_mailbox_free(mb);
}
