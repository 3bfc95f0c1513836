/* The mail user's RADOS user (opened at first use, freed with the mail user),
   and how the C ABI's results become Dovecot's storage and list errors. */

#include "lib.h"
#include "mail-user.h"
#include "mailbox-list-private.h"
#include "rados-connect.h"
#include "rados-storage.h"

struct rados_user {
	union mail_user_module_context module_ctx;
	struct rm_user *rm;
};

#define RADOS_USER_CONTEXT(obj) MODULE_CONTEXT(obj, rados_user_module)
static MODULE_CONTEXT_DEFINE_INIT(rados_user_module,
				  &mail_user_module_register);

const char *rados_last_error(enum rm_result ret)
{
	char buf[1024];
	size_t len = 0;

	if (rm_last_error_message(buf, sizeof(buf), &len) != RM_RESULT_OK ||
	    len == 0)
		return rm_result_name(ret);
	return t_strdup(buf);
}

static enum mail_error rados_result_mail_error(enum rm_result ret)
{
	switch (ret) {
	case RM_RESULT_NOT_FOUND:
		return MAIL_ERROR_NOTFOUND;
	case RM_RESULT_ALREADY_EXISTS:
		return MAIL_ERROR_EXISTS;
	case RM_RESULT_INVALID_INPUT:
		return MAIL_ERROR_PARAMS;
	case RM_RESULT_TOO_LARGE:
		return MAIL_ERROR_LIMIT;
	default:
		break;
	}
	/* IMAP answers MAIL_ERROR_UNAVAILABLE with NO [UNAVAILABLE] and LMTP
	   with 4xx; MAIL_ERROR_TEMP would be NO [SERVERBUG] */
	if (rm_result_is_temporary(ret))
		return MAIL_ERROR_UNAVAILABLE;
	/* a bug, corruption, or an unknown code: an internal error */
	return MAIL_ERROR_NONE;
}

void rados_storage_set_error(struct mail_storage *storage, enum rm_result ret,
			     const char *what)
{
	enum mail_error error = rados_result_mail_error(ret);

	if (error == MAIL_ERROR_NONE) {
		mail_storage_set_critical(storage, "rados: %s failed: %s", what,
					  rados_connect_error(ret));
	} else if (error == MAIL_ERROR_UNAVAILABLE) {
		const char *msg = rados_last_error(ret);

		e_warning(storage->event, "rados: %s failed temporarily: %s",
			  what, msg);
		mail_storage_set_error(storage, error, t_strdup_printf(
			"Mail storage temporarily unavailable (%s)", msg));
	} else {
		mail_storage_set_error(storage, error, rados_last_error(ret));
	}
}

void rados_list_set_error(struct mailbox_list *list, enum rm_result ret,
			  const char *what)
{
	enum mail_error error = rados_result_mail_error(ret);

	if (error == MAIL_ERROR_NONE) {
		mailbox_list_set_critical(list, "rados: %s failed: %s", what,
					  rados_connect_error(ret));
	} else if (error == MAIL_ERROR_UNAVAILABLE) {
		const char *msg = rados_last_error(ret);

		i_warning("rados: %s failed temporarily: %s", what, msg);
		mailbox_list_set_error(list, error, t_strdup_printf(
			"Mail storage temporarily unavailable (%s)", msg));
	} else {
		mailbox_list_set_error(list, error, rados_last_error(ret));
	}
}

static void rados_user_deinit(struct mail_user *user)
{
	struct rados_user *ruser = RADOS_USER_CONTEXT(user);

	i_assert(ruser != NULL);
	rm_user_free(ruser->rm);
	ruser->rm = NULL;
	ruser->module_ctx.super.deinit(user);
}

void rados_mail_user_created(struct mail_user *user)
{
	struct mail_user_vfuncs *v = user->vlast;
	struct rados_user *ruser;

	/* the RADOS user is opened on first use (rados_user_get) */
	ruser = p_new(user->pool, struct rados_user, 1);
	ruser->module_ctx.super = *v;
	user->vlast = &ruser->module_ctx.super;
	v->deinit = rados_user_deinit;
	MODULE_CONTEXT_SET(user, rados_user_module, ruser);
}

struct rm_user *rados_user_get(struct mail_user *user, const char **error_r)
{
	struct rados_user *ruser = RADOS_USER_CONTEXT(user);
	struct rm_store *store;
	enum rm_result ret;

	if (ruser == NULL) {
		*error_r = "rados: the rados plugin isn't in mail_plugins";
		return NULL;
	}
	if (ruser->rm != NULL)
		return ruser->rm;
	if (rados_connect_user(user, &store, error_r) < 0)
		return NULL;
	ret = rm_user_open(store, user->username, &ruser->rm);
	if (ret != RM_RESULT_OK) {
		*error_r = t_strdup_printf(
			"rados: user name '%s' can't be used: %s",
			user->username, rados_connect_error(ret));
		return NULL;
	}
	return ruser->rm;
}
