/* The log bridge (rm_log_*), from C: included by ffi_test.c, whose CHECK/RC
 * harness it uses. Events of other threads and the queue bound are tested in
 * Rust (ffi/src/log.rs): C cannot make the library log from a thread of its
 * own. */

struct log_seen {
	int calls;
	rm_log_level level;
	char message[256];
};

static void log_record(void *userdata, rm_log_level level, const char *message,
		       size_t len)
{
	struct log_seen *seen = userdata;
	seen->calls++;
	seen->level = level;
	snprintf(seen->message, sizeof seen->message, "%s", message);
	CHECK(strlen(message) == len);
}

/* Opens and frees an in-memory store from a config: the library logs "store
 * opened" at debug level. */
static void log_open_store(void)
{
	rm_config *cfg = NULL;
	rm_store *store = NULL;
	RC(RM_RESULT_OK, rm_config_new(&cfg));
	RC(RM_RESULT_OK, rm_config_set(cfg, "backend", "memory"));
	RC(RM_RESULT_OK, rm_store_open(cfg, &store));
	rm_config_free(cfg);
	rm_store_free(store);
}

static void test_log(void)
{
	struct log_seen seen = {0, RM_LOG_LEVEL_OFF, ""};

	/* NULL removes (there is nothing to remove yet): fine. */
	RC(RM_RESULT_OK, rm_log_set_handler(NULL, NULL, RM_LOG_LEVEL_WARN));
	CHECK(rm_log_flush() == 0);

	/* Warnings only: the debug event is not delivered. */
	RC(RM_RESULT_OK, rm_log_set_handler(log_record, &seen, RM_LOG_LEVEL_WARN));
	log_open_store();
	CHECK(seen.calls == 0);

	/* Debug: delivered on this thread, during the call, with its field. */
	rm_log_set_level(RM_LOG_LEVEL_DEBUG);
	log_open_store();
	CHECK(seen.calls == 1);
	CHECK(seen.level == RM_LOG_LEVEL_DEBUG);
	CHECK(strncmp(seen.message, "store opened elapsed_ms=", 24) == 0);
	CHECK(rm_log_flush() == 0);

	/* Removed: nothing more. */
	RC(RM_RESULT_OK, rm_log_set_handler(NULL, NULL, RM_LOG_LEVEL_OFF));
	rm_log_set_level(RM_LOG_LEVEL_DEBUG); /* no handler: no effect */
	log_open_store();
	CHECK(seen.calls == 1);
}
