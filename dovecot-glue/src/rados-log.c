/* The library's log events in Dovecot's log: see rados-log.h. The library
   calls the handler only on this (the registering) thread, when one of its
   functions returns or rm_log_flush() is called; events of its own threads
   wait until then. */

#include "lib.h"
#include "array.h"
#include "module-context.h"
#include "mail-user.h"
#include "mail-storage-hooks.h"
#include "rados-log.h"

#include <rados_mail.h>

#define RADOS_LOG_USER(obj) MODULE_CONTEXT_REQUIRE(obj, rados_log_user_module)
static MODULE_CONTEXT_DEFINE_INIT(rados_log_user_module,
				  &mail_user_module_register);

/* The live mail users, oldest first (lmtp may hold several). */
static ARRAY(struct mail_user *) rados_log_users;

static struct event *rados_log_event(void)
{
	struct mail_user *const *users;
	unsigned int count;

	if (!array_is_created(&rados_log_users))
		return NULL;
	users = array_get(&rados_log_users, &count);
	return count == 0 ? NULL : users[count - 1]->event;
}

static void rados_log_callback(void *context ATTR_UNUSED,
			       enum rm_log_level level, const char *message,
			       size_t len ATTR_UNUSED)
{
	struct event *event = rados_log_event();

	switch (level) {
	case RM_LOG_LEVEL_ERROR:
		if (event != NULL)
			e_error(event, "rados-mail: %s", message);
		else
			i_error("rados-mail: %s", message);
		break;
	case RM_LOG_LEVEL_WARN:
		if (event != NULL)
			e_warning(event, "rados-mail: %s", message);
		else
			i_warning("rados-mail: %s", message);
		break;
	default:
		/* info, debug, trace: only asked for with mail_debug */
		if (event != NULL)
			e_debug(event, "rados-mail: %s", message);
		else
			i_debug("rados-mail: %s", message);
		break;
	}
}

/* Debug while a user with mail_debug is alive, else warnings and errors. */
static void rados_log_update_level(void)
{
	struct mail_user *const *userp;
	enum rm_log_level level = RM_LOG_LEVEL_WARN;

	array_foreach(&rados_log_users, userp) {
		if ((*userp)->mail_debug)
			level = RM_LOG_LEVEL_DEBUG;
	}
	rm_log_set_level(level);
}

static void rados_log_user_deinit(struct mail_user *user);

static void rados_log_user_created(struct mail_user *user)
{
	struct mail_user_vfuncs *v = user->vlast;
	union mail_user_module_context *luser;

	luser = p_new(user->pool, union mail_user_module_context, 1);
	luser->super = *v;
	user->vlast = &luser->super;
	v->deinit = rados_log_user_deinit;
	MODULE_CONTEXT_SET_SELF(user, rados_log_user_module, luser);

	array_push_back(&rados_log_users, &user);
	rados_log_update_level();
}

static void rados_log_user_deinit(struct mail_user *user)
{
	union mail_user_module_context *luser = RADOS_LOG_USER(user);
	struct mail_user *const *users;
	unsigned int i, count;

	luser->super.deinit(user);
	/* what the library's threads logged for this user, while its prefix
	   is still there */
	(void)rm_log_flush();
	users = array_get(&rados_log_users, &count);
	for (i = 0; i < count; i++) {
		if (users[i] == user) {
			array_delete(&rados_log_users, i, 1);
			break;
		}
	}
	rados_log_update_level();
}

static struct mail_storage_hooks rados_log_hooks = {
	.mail_user_created = rados_log_user_created,
};

void rados_log_init(struct module *module)
{
	enum rm_result ret;

	mail_storage_hooks_add(module, &rados_log_hooks);
	i_array_init(&rados_log_users, 4);
	ret = rm_log_set_handler(rados_log_callback, NULL, RM_LOG_LEVEL_WARN);
	if (ret != RM_RESULT_OK) {
		i_warning("rados-mail: the library's log stays off: %s",
			  rm_result_name(ret));
	}
}

void rados_log_deinit(void)
{
	(void)rm_log_flush();
	(void)rm_log_set_handler(NULL, NULL, RM_LOG_LEVEL_OFF);
	mail_storage_hooks_remove(&rados_log_hooks);
	array_free(&rados_log_users);
}
