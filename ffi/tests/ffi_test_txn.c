/* Transactions from C (rm_txn_*, rm_append_finish_into): included by ffi_test.c, whose
 * CHECK/RC harness and helpers it uses (one translation unit, one binary). */

/* Appends `text` to `mb` as one committed mail; returns its UID (0 on failure). */
static uint32_t txn_put(rm_mailbox *mb, const char *text)
{
	rm_append *app = NULL;
	uint32_t uid = 0;
	RC(RM_RESULT_OK, rm_append_begin(mb, &app));
	RC(RM_RESULT_OK, rm_append_write(app, (const uint8_t *)text, strlen(text)));
	RC(RM_RESULT_OK, rm_append_finish(&app, 0, &uid));
	return uid;
}

static void test_txn(rm_user *user)
{
	rm_mailbox *mb = NULL, *src = NULL;
	RC(RM_RESULT_OK, rm_user_mailbox_create(user, "Txn"));
	RC(RM_RESULT_OK, rm_user_mailbox_create(user, "TxnSrc"));
	RC(RM_RESULT_OK, rm_mailbox_open(user, "Txn", &mb));
	RC(RM_RESULT_OK, rm_mailbox_open(user, "TxnSrc", &src));
	if (mb == NULL || src == NULL) {
		rm_mailbox_free(mb);
		rm_mailbox_free(src);
		return;
	}
	uint32_t s1 = txn_put(src, "Subject: s1\n\none\n");
	CHECK(s1 == 1);

	/* Misuse. */
	rm_txn *t = NULL;
	RC(RM_RESULT_INVALID_INPUT, rm_txn_begin(mb, 7, &t));
	RC(RM_RESULT_NULL_PARAMETER, rm_txn_begin(NULL, RM_MODSEQ_STEPS_ONE, &t));
	RC(RM_RESULT_NULL_PARAMETER, rm_txn_begin(mb, RM_MODSEQ_STEPS_ONE, NULL));
	CHECK(t == NULL);
	rm_txn_free(NULL);
	rm_txn_result_free(NULL);
	rm_txn_result *res = NULL;
	RC(RM_RESULT_NULL_PARAMETER, rm_txn_commit(NULL, &res));
	RC(RM_RESULT_NULL_PARAMETER, rm_txn_commit(&t, &res));

	/* A new mail with keywords and a copy in: one commit, Dovecot's modseq steps. */
	rm_status before;
	RC(RM_RESULT_OK, rm_mailbox_status(mb, &before));
	RC(RM_RESULT_OK, rm_txn_begin(mb, RM_MODSEQ_STEPS_DOVECOT, &t));
	RC(RM_RESULT_INVALID_INPUT, rm_txn_update_flags(t, NULL, 0, 9, 0));
	RC(RM_RESULT_INVALID_INPUT, rm_txn_update_flags(t, NULL, 0, RM_STORE_MODE_ADD, 1u << 9));
	const char *bad_kw[] = {"has space"};
	RC(RM_RESULT_INVALID_INPUT, rm_txn_update_keywords(t, NULL, 0, RM_STORE_MODE_ADD, bad_kw, 1));
	RC(RM_RESULT_NULL_PARAMETER, rm_txn_expunge(t, NULL, 1));
	rm_append *app = NULL;
	const char mail[] = "Subject: new\n\nnew body\n";
	RC(RM_RESULT_OK, rm_append_begin(mb, &app));
	RC(RM_RESULT_OK, rm_append_write(app, (const uint8_t *)mail, sizeof mail - 1));
	RC(RM_RESULT_OK, rm_append_add_keyword(app, "$b"));
	RC(RM_RESULT_OK, rm_append_add_keyword(app, "$a"));
	uint8_t body_guid[16] = {0}, zero[16] = {0};
	RC(RM_RESULT_OK, rm_append_guid(app, &body_guid));
	CHECK(memcmp(body_guid, zero, 16) != 0);
	RC(RM_RESULT_NULL_PARAMETER, rm_append_guid(app, NULL));
	uint64_t psize = 0, vsize = 0;
	RC(RM_RESULT_OK, rm_append_sizes(app, &psize, &vsize));
	CHECK(psize == sizeof mail - 1 && vsize == psize + 3); /* 3 bare LFs */
	RC(RM_RESULT_NULL_PARAMETER, rm_append_sizes(app, NULL, &vsize));
	rm_txn *other = NULL;
	RC(RM_RESULT_OK, rm_txn_begin(src, RM_MODSEQ_STEPS_ONE, &other));
	RC(RM_RESULT_INVALID_INPUT, rm_append_finish_into(&app, other, 0));
	CHECK(app != NULL); /* refused: still ours */
	rm_txn_free(other);
	RC(RM_RESULT_INVALID_INPUT, rm_append_finish_into(&app, t, 1u << 9));
	RC(RM_RESULT_NULL_PARAMETER, rm_append_finish_into(&app, NULL, 0));
	RC(RM_RESULT_OK, rm_append_finish_into(&app, t, RM_FLAG_SEEN));
	CHECK(app == NULL);
	/* The saved mail can be read before the commit (a server reads what it saves). */
	rm_body *body = NULL;
	RC(RM_RESULT_NOT_FOUND, rm_txn_saved_body(t, 1, &body));
	RC(RM_RESULT_NULL_PARAMETER, rm_txn_saved_body(NULL, 0, &body));
	RC(RM_RESULT_OK, rm_txn_saved_body(t, 0, &body));
	char got[64] = {0};
	size_t got_len = 0;
	RC(RM_RESULT_OK, rm_body_read(body, (uint8_t *)got, sizeof got, &got_len));
	CHECK(got_len == sizeof mail - 1 && memcmp(got, mail, got_len) == 0);
	rm_body_free(body);
	bool found = false;
	RC(RM_RESULT_OK, rm_txn_copy(t, src, s1, 0, false, 0, NULL, 0, &found));
	CHECK(found);
	RC(RM_RESULT_OK, rm_txn_copy(t, src, 999, 0, false, 0, NULL, 0, &found));
	CHECK(!found);
	RC(RM_RESULT_TOO_LARGE, rm_txn_copy(t, src, s1, 4294967295u, false, 0, NULL, 0, &found));
	RC(RM_RESULT_NULL_PARAMETER, rm_txn_copy(t, NULL, s1, 0, false, 0, NULL, 0, &found));
	RC(RM_RESULT_NULL_PARAMETER, rm_txn_commit(&t, NULL));
	CHECK(t != NULL);
	RC(RM_RESULT_OK, rm_txn_commit(&t, &res));
	CHECK(t == NULL);
	rm_txn_summary sum;
	memset(&sum, 0, sizeof sum);
	RC(RM_RESULT_OK, rm_txn_result_summary(res, &sum));
	CHECK(sum.saved == 1 && sum.copies == 1 && sum.changed == 0 && sum.expunged == 0);
	/* append, then $a and $b each a step of their own */
	CHECK(sum.first_modseq == before.highestmodseq + 1);
	CHECK(sum.last_modseq == before.highestmodseq + 3);
	uint32_t uids[4] = {0};
	size_t n = 0;
	RC(RM_RESULT_OK, rm_txn_result_uids(res, RM_TXN_SAVED, uids, 4, &n));
	CHECK(n == 1 && uids[0] == 1);
	RC(RM_RESULT_OK, rm_txn_result_uids(res, RM_TXN_SAVED, NULL, 0, &n));
	CHECK(n == 1);
	RC(RM_RESULT_INVALID_INPUT, rm_txn_result_uids(res, 42, uids, 4, &n));
	RC(RM_RESULT_NULL_PARAMETER, rm_txn_result_uids(res, RM_TXN_SAVED, NULL, 4, &n));
	uint32_t from[2] = {0}, to[2] = {0};
	RC(RM_RESULT_OK, rm_txn_result_copies(res, from, to, 2, &n));
	CHECK(n == 1 && from[0] == s1 && to[0] == 2);
	RC(RM_RESULT_NULL_PARAMETER, rm_txn_result_summary(NULL, &sum));
	rm_txn_result_free(res);
	res = NULL;
	struct names kws = {{0}, 0};
	RC(RM_RESULT_OK, rm_mailbox_keywords(mb, 1, collect_name, &kws));
	CHECK(strcmp(kws.buf, "$a,$b") == 0);

	/* Flags, a keyword replace, an expunge and UNCHANGEDSINCE in one commit. */
	RC(RM_RESULT_OK, rm_mailbox_status(mb, &before));
	RC(RM_RESULT_OK, rm_txn_begin(mb, RM_MODSEQ_STEPS_ONE, &t));
	uint32_t both[2] = {1, 2};
	RC(RM_RESULT_OK, rm_txn_update_flags(t, both, 2, RM_STORE_MODE_ADD, RM_FLAG_FLAGGED));
	const char *r_kw[] = {"$r"};
	RC(RM_RESULT_OK, rm_txn_update_keywords(t, both, 1, RM_STORE_MODE_REPLACE, r_kw, 1));
	uint32_t gone = 2;
	RC(RM_RESULT_OK, rm_txn_expunge(t, &gone, 1));
	RC(RM_RESULT_OK, rm_txn_unchanged_since(t, before.highestmodseq));
	RC(RM_RESULT_OK, rm_txn_commit(&t, &res));
	memset(&sum, 0, sizeof sum);
	RC(RM_RESULT_OK, rm_txn_result_summary(res, &sum));
	CHECK(sum.changed == 2 && sum.expunged == 1 && sum.modified == 0);
	CHECK(sum.first_modseq == sum.last_modseq && sum.last_modseq == before.highestmodseq + 1);
	RC(RM_RESULT_OK, rm_txn_result_uids(res, RM_TXN_EXPUNGED, uids, 4, &n));
	CHECK(n == 1 && uids[0] == 2);
	rm_txn_result_free(res);
	res = NULL;
	rm_record rec;
	RC(RM_RESULT_OK, rm_mailbox_record(mb, 1, &rec));
	CHECK(rec.flags == (RM_FLAG_SEEN | RM_FLAG_FLAGGED));
	CHECK(memcmp(rec.guid, body_guid, 16) == 0);
	memset(&kws, 0, sizeof kws);
	RC(RM_RESULT_OK, rm_mailbox_keywords(mb, 1, collect_name, &kws));
	CHECK(strcmp(kws.buf, "$r") == 0);
	RC(RM_RESULT_NOT_FOUND, rm_mailbox_record(mb, 2, &rec));

	/* UNCHANGEDSINCE below the mail's modseq: left alone, nothing written. */
	RC(RM_RESULT_OK, rm_txn_begin(mb, RM_MODSEQ_STEPS_DOVECOT, &t));
	uint32_t one = 1;
	RC(RM_RESULT_OK, rm_txn_update_flags(t, &one, 1, RM_STORE_MODE_REMOVE, RM_FLAG_SEEN));
	RC(RM_RESULT_OK, rm_txn_unchanged_since(t, 1));
	RC(RM_RESULT_OK, rm_txn_commit(&t, &res));
	memset(&sum, 0, sizeof sum);
	RC(RM_RESULT_OK, rm_txn_result_summary(res, &sum));
	CHECK(sum.modified == 1 && sum.changed == 0 && sum.last_modseq == 0);
	rm_txn_result_free(res);

	/* Opened to append (a delivery): the cached view serves; a mail saved through it. */
	rm_mailbox *deliver = NULL;
	RC(RM_RESULT_NOT_FOUND, rm_mailbox_open_to_append(user, "NoSuchBox", &deliver));
	RC(RM_RESULT_NULL_PARAMETER, rm_mailbox_open_to_append(user, NULL, &deliver));
	RC(RM_RESULT_NULL_PARAMETER, rm_mailbox_open_to_append(NULL, "Txn", &deliver));
	RC(RM_RESULT_OK, rm_mailbox_open_to_append(user, "Txn", &deliver));
	if (deliver != NULL) {
		uint32_t got = txn_put(deliver, "Subject: delivered\n\nx\n");
		RC(RM_RESULT_OK, rm_mailbox_status(mb, &before));
		CHECK(got != 0 && got + 1 == before.uidnext);
		rm_mailbox_free(deliver);
	}

	/* Identity from the view, no RADOS operation. */
	uint32_t uv = 0, inc = 0;
	RC(RM_RESULT_OK, rm_mailbox_identity(mb, &uv, &inc));
	RC(RM_RESULT_OK, rm_mailbox_status(mb, &before));
	CHECK(uv == before.uidvalidity && inc == before.incarnation && inc != 0);
	RC(RM_RESULT_NULL_PARAMETER, rm_mailbox_identity(mb, NULL, &inc));
	RC(RM_RESULT_NULL_PARAMETER, rm_mailbox_identity(NULL, &uv, &inc));

	/* Abandoned: the saved mail goes away with it. */
	RC(RM_RESULT_OK, rm_mailbox_status(mb, &before));
	RC(RM_RESULT_OK, rm_txn_begin(mb, RM_MODSEQ_STEPS_ONE, &t));
	RC(RM_RESULT_OK, rm_append_begin(mb, &app));
	RC(RM_RESULT_OK, rm_append_write(app, (const uint8_t *)mail, sizeof mail - 1));
	RC(RM_RESULT_OK, rm_append_finish_into(&app, t, 0));
	rm_txn_free(t);
	rm_status after;
	RC(RM_RESULT_OK, rm_mailbox_status(mb, &after));
	CHECK(after.messages == before.messages && after.uidnext == before.uidnext);

	rm_mailbox_free(mb);
	rm_mailbox_free(src);
	RC(RM_RESULT_OK, rm_user_mailbox_delete(user, "Txn"));
	RC(RM_RESULT_OK, rm_user_mailbox_delete(user, "TxnSrc"));
}

/* Delivers `text` (with `trace` on top, as a receiving server adds) as a delivery
   whose key is computed from the mail, or is `key`; returns its UID (0 on failure). */
static uint32_t deliver(rm_mailbox *mb, const char *trace, const char *text,
			const uint8_t *key)
{
	rm_append *app = NULL;
	uint32_t uid = 0;
	RC(RM_RESULT_OK, rm_append_begin(mb, &app));
	RC(RM_RESULT_OK, rm_append_deliver(app, key));
	RC(RM_RESULT_OK, rm_append_write(app, (const uint8_t *)trace, strlen(trace)));
	RC(RM_RESULT_OK, rm_append_write(app, (const uint8_t *)text, strlen(text)));
	RC(RM_RESULT_OK, rm_append_finish(&app, 0, &uid));
	return uid;
}

/* Delivery keys: a sender's retry of the same delivery is stored once. */
static void test_deliver(rm_user *user)
{
	rm_mailbox *mb = NULL;
	RC(RM_RESULT_OK, rm_user_mailbox_create(user, "Deliver"));
	RC(RM_RESULT_OK, rm_mailbox_open(user, "Deliver", &mb));
	if (mb == NULL)
		return;
	const char *mail = "Received: from mx by relay with ESMTP id Q1;\n\tTue, 1 Dec 2026\n"
			   "Subject: once\n\nbody\n";
	uint32_t first = deliver(mb, "Return-Path: <a@x>\nDelivered-To: b@x\n"
				 "Received: from relay\n\tby be1 with LMTP id AAA; Tue\n", mail, NULL);
	uint32_t again = deliver(mb, "Return-Path: <a@x>\nDelivered-To: b@x\n"
				 "Received: from relay\n\tby be2 with LMTP id BBBBB; Wed\n", mail, NULL);
	CHECK(first != 0 && again == first);
	/* Not a delivery: stored again. */
	uint32_t plain = txn_put(mb, mail);
	CHECK(plain > first);
	/* Another mail, and a key given by the caller. */
	uint32_t other = deliver(mb, "", "Subject: other\n\nbody\n", NULL);
	CHECK(other > plain);
	const uint8_t key[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	uint32_t k1 = deliver(mb, "", "Subject: k1\n\n", key);
	uint32_t k2 = deliver(mb, "", "Subject: k2 differs, same key\n\n", key);
	CHECK(k1 > other && k2 == k1);
	rm_status st;
	RC(RM_RESULT_OK, rm_mailbox_status(mb, &st));
	CHECK(st.messages == 4);

	/* Misuse: no handle; a key from the mail asked for after a write. */
	rm_append *app = NULL;
	RC(RM_RESULT_NULL_PARAMETER, rm_append_deliver(NULL, key));
	RC(RM_RESULT_OK, rm_append_begin(mb, &app));
	RC(RM_RESULT_OK, rm_append_write(app, (const uint8_t *)"x", 1));
	RC(RM_RESULT_INVALID_INPUT, rm_append_deliver(app, NULL));
	RC(RM_RESULT_OK, rm_append_deliver(app, key));
	RC(RM_RESULT_OK, rm_append_cancel(&app));
	rm_mailbox_free(mb);
	RC(RM_RESULT_OK, rm_user_mailbox_delete(user, "Deliver"));
}

/* Delivers `plain` transformed as a mail plugin would (mail_crypt: other stored bytes on
 * every attempt, tagged by `attempt`); the UID. */
static uint32_t deliver_transformed(rm_mailbox *mb, const char *plain, char attempt)
{
	rm_append *app = NULL;
	uint32_t uid = 0;
	size_t len = strlen(plain);
	uint8_t *stored = malloc(len + 1);
	if (stored == NULL)
		return 0;
	stored[0] = (uint8_t)attempt;
	for (size_t i = 0; i < len; i++)
		stored[i + 1] = (uint8_t)plain[i] ^ 0x5a;
	RC(RM_RESULT_OK, rm_append_begin(mb, &app));
	RC(RM_RESULT_OK, rm_append_deliver(app, NULL));
	RC(RM_RESULT_OK, rm_append_transformed(app));
	RC(RM_RESULT_OK, rm_append_write_plain(app, (const uint8_t *)plain, 4));
	RC(RM_RESULT_OK, rm_append_write_plain(app, (const uint8_t *)plain + 4, len - 4));
	RC(RM_RESULT_OK, rm_append_write(app, stored, len + 1));
	uint64_t psize = 0, vsize = 0;
	RC(RM_RESULT_OK, rm_append_sizes(app, &psize, &vsize));
	CHECK(psize == len);
	RC(RM_RESULT_OK, rm_append_finish(&app, 0, &uid));
	free(stored);
	return uid;
}

/* Mails stored transformed by a mail plugin (issue 14): the record reports the plain
 * mail's sizes, the body is the stored bytes, a redelivery is stored once. */
static void test_transformed(rm_user *user)
{
	rm_mailbox *mb = NULL;
	RC(RM_RESULT_OK, rm_user_mailbox_create(user, "Transformed"));
	RC(RM_RESULT_OK, rm_mailbox_open(user, "Transformed", &mb));
	if (mb == NULL)
		return;
	const char *plain = "Subject: x\n\nsecret\n";
	uint32_t uid = deliver_transformed(mb, plain, 'A');
	CHECK(uid != 0 && deliver_transformed(mb, plain, 'B') == uid);
	rm_record rec;
	RC(RM_RESULT_OK, rm_mailbox_record(mb, uid, &rec));
	CHECK(rec.psize == strlen(plain) && rec.vsize == strlen(plain) + 3 && rec.hdr_len == 12);
	rm_body *body = NULL;
	uint64_t size = 0;
	uint8_t first = 0;
	size_t n = 0;
	RC(RM_RESULT_OK, rm_body_open(mb, uid, &body));
	RC(RM_RESULT_OK, rm_body_size(body, &size));
	CHECK(size == strlen(plain) + 1);
	RC(RM_RESULT_OK, rm_body_read(body, &first, 1, &n));
	CHECK(n == 1 && first == 'A');
	rm_body_free(body);

	/* Misuse: plain bytes for a mail not transformed; transformed after a write. */
	rm_append *app = NULL;
	RC(RM_RESULT_NULL_PARAMETER, rm_append_transformed(NULL));
	RC(RM_RESULT_OK, rm_append_begin(mb, &app));
	RC(RM_RESULT_INVALID_INPUT, rm_append_write_plain(app, (const uint8_t *)"x", 1));
	RC(RM_RESULT_OK, rm_append_cancel(&app));
	RC(RM_RESULT_OK, rm_append_begin(mb, &app));
	RC(RM_RESULT_OK, rm_append_write(app, (const uint8_t *)"x", 1));
	RC(RM_RESULT_INVALID_INPUT, rm_append_transformed(app));
	RC(RM_RESULT_OK, rm_append_cancel(&app));
	rm_mailbox_free(mb);
	RC(RM_RESULT_OK, rm_user_mailbox_delete(user, "Transformed"));
}
