/* The plugin's rados_* settings: every one goes to rm_config_set, which knows
   the keys and their values (one list, in Rust), so a mistyped key or a bad
   value fails with the setting named instead of being ignored. They describe
   the process's one store, so a userdb that sets one for a user is refused. */

#include "lib.h"
#include "array.h"
#include "mail-user.h"
#include "mail-storage-settings.h"
#include "rados-connect.h"
#include "rados-settings.h"

#define RADOS_SETTING_PREFIX "rados_"

/* Whether the first user of this process has had its settings validated. */
static bool rados_settings_validated = FALSE;

int rados_settings_apply(struct mail_user *user, struct rm_config *cfg,
			 const char **error_r)
{
	const char *const *envs;
	unsigned int i, count;
	enum rm_result ret;

	if (!array_is_created(&user->set->plugin_envs))
		return 0;
	/* key, value, key, value, ... */
	envs = array_get(&user->set->plugin_envs, &count);
	for (i = 0; i + 1 < count; i += 2) {
		const char *key = envs[i], *value = envs[i + 1];

		if (!str_begins(key, RADOS_SETTING_PREFIX))
			continue;
		ret = rm_config_set(cfg, key + strlen(RADOS_SETTING_PREFIX),
				    value);
		if (ret != RM_RESULT_OK) {
			*error_r = t_strdup_printf(
				"rados: plugin setting %s = %s: %s", key,
				value, rados_connect_error(ret));
			return -1;
		}
	}
	return 0;
}

/* The rados_* setting a userdb field sets ("rados_pool=x" or
   "plugin/rados_pool=x"), or NULL. */
static const char *rados_userdb_setting(const char *field)
{
	const char *key = t_strcut(field, '=');

	if (str_begins(key, "plugin/"))
		key += strlen("plugin/");
	return str_begins(key, RADOS_SETTING_PREFIX) ? key : NULL;
}

int rados_settings_check_user(struct mail_user *user, const char **error_r)
{
	struct rm_config *cfg = NULL;
	const char *key;
	unsigned int i;
	int ret;

	for (i = 0; user->userdb_fields != NULL &&
		    user->userdb_fields[i] != NULL; i++) {
		key = rados_userdb_setting(user->userdb_fields[i]);
		if (key != NULL) {
			*error_r = t_strdup_printf(
				"rados: the userdb sets %s for user %s, but "
				"rados_* settings must be the same for every "
				"user (one store serves every user of a "
				"process): set it in plugin { } instead",
				key, user->username);
			return -1;
		}
	}
	if (rados_settings_validated)
		return 0;
	if (rm_config_new(&cfg) != RM_RESULT_OK) {
		*error_r = "rados: rm_config_new failed";
		return -1;
	}
	ret = rados_settings_apply(user, cfg, error_r);
	rm_config_free(cfg);
	if (ret == 0)
		rados_settings_validated = TRUE;
	return ret;
}
