/* The watch exports (push between processes): included by ffi_test.c.
 * Two users on one namespace: one watches, the other commits and creates a mailbox; the
 * watch's descriptor becomes readable within a bound and rm_watch_take returns the right
 * bits, once. Plus misuse (NULL). */
#include <poll.h>

/* Whether fd becomes readable within ms milliseconds. */
static bool readable_within(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN) != 0;
}

static double now_ms(void)
{
	struct timespec ts;
	timespec_get(&ts, TIME_UTC);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static uint64_t notifies_sent(rm_store *store)
{
	rm_stats st;
	memset(&st, 0, sizeof st);
	RC(RM_RESULT_OK, rm_store_stats(store, &st));
	return st.notifies_sent;
}

static void test_watch(rm_store *store, const char *username)
{
	rm_user *a = NULL, *b = NULL;
	RC(RM_RESULT_OK, rm_user_open(store, username, &a));
	RC(RM_RESULT_OK, rm_user_open(store, username, &b));
	if (a == NULL || b == NULL) {
		rm_user_free(a);
		rm_user_free(b);
		return;
	}
	rm_watch *w = NULL;
	RC(RM_RESULT_NULL_PARAMETER, rm_watch_new(NULL, &w));
	RC(RM_RESULT_NULL_PARAMETER, rm_watch_new(b, NULL));
	CHECK(w == NULL);
	CHECK(rm_watch_fd(NULL) == -1);
	CHECK(rm_watch_take(NULL) == 0);
	rm_watch_free(NULL);
	RC(RM_RESULT_NULL_PARAMETER, rm_watch_add_mailbox_name(NULL, "INBOX"));
	RC(RM_RESULT_NULL_PARAMETER, rm_watch_add_list(NULL));

	RC(RM_RESULT_OK, rm_user_mailbox_create(a, "Watched"));
	RC(RM_RESULT_OK, rm_watch_new(b, &w));
	if (w == NULL)
		goto out;
	rm_mailbox *mb = NULL;
	RC(RM_RESULT_OK, rm_mailbox_open(a, "Watched", &mb));
	RC(RM_RESULT_NULL_PARAMETER, rm_watch_add_mailbox(w, NULL));
	RC(RM_RESULT_NULL_PARAMETER, rm_watch_add_mailbox(NULL, mb));
	RC(RM_RESULT_NULL_PARAMETER, rm_watch_add_mailbox_name(w, NULL));
	RC(RM_RESULT_NOT_FOUND, rm_watch_add_mailbox_name(w, "Missing"));
	RC(RM_RESULT_INVALID_INPUT, rm_watch_add_mailbox_name(w, "\xff"));
	RC(RM_RESULT_OK, rm_watch_add_mailbox_name(w, "Watched"));
	RC(RM_RESULT_OK, rm_watch_add_mailbox(w, mb)); /* twice: no error */
	RC(RM_RESULT_OK, rm_watch_add_list(w));
	int fd = rm_watch_fd(w);
	CHECK(fd >= 0);
	CHECK(!readable_within(fd, 0));
	CHECK(rm_watch_take(w) == 0);

	/* A commit through the other user handle. */
	uint64_t sent = notifies_sent(store);
	rm_append *app = NULL;
	const char mail[] = "Subject: push\n\npush\n";
	uint32_t uid = 0;
	double t0 = now_ms();
	RC(RM_RESULT_OK, rm_append_begin(mb, &app));
	RC(RM_RESULT_OK, rm_append_write(app, (const uint8_t *)mail, sizeof mail - 1));
	RC(RM_RESULT_OK, rm_append_finish(&app, 0, &uid));
	CHECK(notifies_sent(store) == sent + 1);
	CHECK(readable_within(fd, 5000));
	printf("watch: commit to readable fd in %.2f ms\n", now_ms() - t0);
	CHECK(rm_watch_take(w) == RM_WATCH_CHANGED);
	CHECK(!readable_within(fd, 100));
	CHECK(rm_watch_take(w) == 0);

	/* A flag change is a commit too. */
	rm_flags_outcome fo;
	RC(RM_RESULT_OK,
	   rm_mailbox_store_flags(mb, &uid, 1, RM_STORE_MODE_ADD, RM_FLAG_SEEN, NULL, 0,
					  RM_UNCHANGED_SINCE_ANY, NULL, &fo));
	CHECK(fo.changed == 1);
	CHECK(readable_within(fd, 5000));
	CHECK(rm_watch_take(w) == RM_WATCH_CHANGED);

	/* A mailbox list change. */
	sent = notifies_sent(store);
	RC(RM_RESULT_OK, rm_user_mailbox_create(a, "Watched2"));
	CHECK(notifies_sent(store) == sent + 1);
	CHECK(readable_within(fd, 5000));
	CHECK(rm_watch_take(w) == RM_WATCH_LIST);
	RC(RM_RESULT_OK, rm_user_mailbox_delete(a, "Watched2"));
	CHECK(readable_within(fd, 5000));
	CHECK(rm_watch_take(w) == RM_WATCH_LIST);

	rm_stats st;
	RC(RM_RESULT_OK, rm_store_stats(store, &st));
	CHECK(st.notify_failures == 0);
	CHECK(st.watch_errors == 0 && st.rewatches == 0);

	rm_mailbox_free(mb);
	rm_watch_free(w);
out:
	RC(RM_RESULT_OK, rm_user_mailbox_delete(a, "Watched"));
	rm_user_free(a);
	rm_user_free(b);
}
