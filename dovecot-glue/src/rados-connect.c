/* One store per process, opened from the plugin settings; stores from dict
   URIs. The settings themselves are parsed in Rust (rm_config_set). */

#include "lib.h"
#include "mail-user.h"

#include <time.h>
#include "rados-connect.h"

#include <rados_mail.h>

static const char *const rados_setting_keys[] = {
	"backend", "conf", "keyring", "client_name", "pool",
	"namespace_prefix", "timeout", "max_mail_size", "max_keywords",
	"cache_memory",
	"cache_max_item", "cache_disk_dir", "cache_disk", "read_in_flight",
	"notify", "delivery_window",
	NULL
};

static struct rm_store *rados_process_store = NULL;
/* When connecting last failed temporarily, the process doesn't try again
   while rados_unavailable_now() says so, so that one request waits for at
   most one connect timeout (rados_timeout), not one per storage, list and
   mailbox. (It waited 10 s: a reused process then refused sessions for up to
   10 s after the cluster was back.) */
static enum rm_result rados_connect_last_failure = RM_RESULT_OK;
/* When a call last found the cluster not answering (CLOCK_MONOTONIC), and
   whether one has. For RADOS_UNAVAILABLE_HOLD_MSECS after that, the calls
   that go to RADOS fail at once: the rest of the command or delivery that
   met the timeout (a second read, the sync after a failed FETCH, the commit
   after a failed save) does not wait another one. Not longer: the next
   command tries the cluster again. */
static struct timespec rados_unavailable_at;
static bool rados_unavailable_seen = FALSE;
#define RADOS_UNAVAILABLE_HOLD_MSECS 1000

const char *rados_last_error(int result)
{
	char buf[1024];
	size_t len = 0;

	if (rm_last_error_message(buf, sizeof(buf), &len) != RM_RESULT_OK ||
	    len == 0)
		return rm_result_name(result);
	return t_strdup(buf);
}

const char *rados_connect_error(int result)
{
	return t_strdup_printf("%s: %s", rm_result_name(result),
			       rados_last_error(result));
}

static int rados_config_set(struct rm_config *cfg, const char *key,
			    const char *value, const char **error_r)
{
	enum rm_result ret = rm_config_set(cfg, key, value);

	if (ret != RM_RESULT_OK) {
		*error_r = t_strdup_printf("rados setting %s=%s: %s", key,
					   value, rados_connect_error(ret));
		return -1;
	}
	return 0;
}

static int rados_config_open(struct rm_config *cfg, struct rm_store **store_r,
			     const char **error_r)
{
	enum rm_result ret = rm_store_open(cfg, store_r);

	rados_connect_last_failure = ret;
	if (rm_result_is_temporary(ret))
		rados_note_result(RM_RESULT_UNAVAILABLE);
	if (ret != RM_RESULT_OK) {
		*error_r = t_strdup_printf("rados: opening the store failed: %s",
					   rados_connect_error(ret));
		return -1;
	}
	return 0;
}

int rados_connect_user(struct mail_user *user, struct rm_store **store_r,
		       const char **error_r)
{
	struct rm_config *cfg = NULL;
	unsigned int i;
	int ret = 0;

	if (rados_process_store != NULL) {
		*store_r = rados_process_store;
		return 0;
	}
	if (rados_connect_failed_temporarily() && rados_unavailable_now()) {
		*error_r = "rados: the cluster did not answer moments ago "
			"(not trying again yet)";
		return -1;
	}
	if (rm_config_new(&cfg) != RM_RESULT_OK) {
		*error_r = "rados: rm_config_new failed";
		return -1;
	}
	for (i = 0; rados_setting_keys[i] != NULL && ret == 0; i++) {
		const char *value = mail_user_plugin_getenv(user,
			t_strconcat("rados_", rados_setting_keys[i], NULL));
		if (value != NULL)
			ret = rados_config_set(cfg, rados_setting_keys[i],
					       value, error_r);
	}
	if (ret == 0)
		ret = rados_config_open(cfg, &rados_process_store, error_r);
	rm_config_free(cfg);
	if (ret == 0)
		*store_r = rados_process_store;
	return ret;
}

void rados_note_result(enum rm_result result)
{
	if (result != RM_RESULT_UNAVAILABLE)
		return;
	if (clock_gettime(CLOCK_MONOTONIC, &rados_unavailable_at) == 0)
		rados_unavailable_seen = TRUE;
}

bool rados_unavailable_now(void)
{
	struct timespec now;
	long long msecs;

	if (!rados_unavailable_seen ||
	    clock_gettime(CLOCK_MONOTONIC, &now) < 0)
		return FALSE;
	msecs = (long long)(now.tv_sec - rados_unavailable_at.tv_sec) * 1000 +
		(now.tv_nsec - rados_unavailable_at.tv_nsec) / 1000000;
	return msecs >= 0 && msecs < RADOS_UNAVAILABLE_HOLD_MSECS;
}

bool rados_connect_failed_temporarily(void)
{
	return rm_result_is_temporary(rados_connect_last_failure);
}

struct rm_store *rados_connect_process_store(void)
{
	return rados_process_store;
}

int rados_connect_uri(const char *args, struct rm_store **store_r,
		      const char **error_r)
{
	struct rm_config *cfg = NULL;
	const char *const *kv;
	int ret = 0;

	if (rm_config_new(&cfg) != RM_RESULT_OK) {
		*error_r = "rados: rm_config_new failed";
		return -1;
	}
	for (kv = t_strsplit(args, ":"); *kv != NULL && ret == 0; kv++) {
		const char *eq = strchr(*kv, '=');

		if (**kv == '\0')
			continue;
		if (eq == NULL) {
			*error_r = t_strdup_printf(
				"rados: expected key=value in URI, got '%s'",
				*kv);
			ret = -1;
			break;
		}
		ret = rados_config_set(cfg, t_strdup_until(*kv, eq), eq + 1,
				       error_r);
	}
	if (ret == 0)
		ret = rados_config_open(cfg, store_r, error_r);
	rm_config_free(cfg);
	return ret;
}

void rados_connect_deinit(void)
{
	rm_store_free(rados_process_store);
	rados_process_store = NULL;
}
