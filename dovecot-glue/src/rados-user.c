/* The mail user's RADOS user (opened at first use, freed with the mail user),
   and how the C ABI's results become Dovecot's storage and list errors. */

#include "lib.h"
#include "mail-user.h"
#include "mail-namespace.h"
#include "mailbox-list-private.h"
#include "rados-connect.h"
#include "rados-settings.h"
#include "rados-storage.h"

struct rados_user {
	union mail_user_module_context module_ctx;
	struct rm_user *rm;
};

#define RADOS_USER_CONTEXT(obj) MODULE_CONTEXT(obj, rados_user_module)
static MODULE_CONTEXT_DEFINE_INIT(rados_user_module,
				  &mail_user_module_register);

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
	case RM_RESULT_KEYWORD_LIMIT:
		/* as Dovecot refuses a keyword it can't create:
		   IMAP NO [CANNOT] */
		return MAIL_ERROR_PARAMS;
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

/* What a failed ABI call becomes: the mail error (MAIL_ERROR_NONE: an internal
   error, for the log only) and its text. Temporary failures are logged to
   event as warnings. */
static enum mail_error rados_failure(enum rm_result ret, const char *what,
				     struct event *event, const char **text_r)
{
	enum mail_error error = rados_result_mail_error(ret);
	const char *msg;

	rados_note_result(ret);

	if (error == MAIL_ERROR_NONE) {
		*text_r = t_strdup_printf("rados: %s failed: %s", what,
					  rados_connect_error(ret));
	} else if (error == MAIL_ERROR_UNAVAILABLE) {
		msg = rados_last_error(ret);
		e_warning(event, "rados: %s failed temporarily: %s", what, msg);
		*text_r = t_strdup_printf(
			"Mail storage temporarily unavailable (%s)", msg);
	} else if (ret == RM_RESULT_KEYWORD_LIMIT) {
		/* Dovecot's own words for a keyword it can't create */
		*text_r = t_strdup_printf("Can't create new keywords (%s)",
					  rados_last_error(ret));
	} else {
		*text_r = rados_last_error(ret);
	}
	return error;
}

void rados_storage_set_error(struct mail_storage *storage, enum rm_result ret,
			     const char *what)
{
	const char *text;
	enum mail_error error = rados_failure(ret, what, storage->event, &text);

	if (error == MAIL_ERROR_NONE)
		mail_storage_set_critical(storage, "%s", text);
	else
		mail_storage_set_error(storage, error, text);
}

void rados_list_set_error(struct mailbox_list *list, enum rm_result ret,
			  const char *what)
{
	const char *text;
	enum mail_error error =
		rados_failure(ret, what, list->ns->user->event, &text);

	if (error == MAIL_ERROR_NONE)
		mailbox_list_set_critical(list, "%s", text);
	else
		mailbox_list_set_error(list, error, text);
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
	const char *error;

	/* a bad rados_* setting fails the user's init (Dovecot logs it, IMAP
	   and LMTP answer with a temporary failure) before anything opens */
	if (rados_settings_check_user(user, &error) < 0) {
		user->error = p_strdup(user->pool, error);
		return;
	}
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
			"rados: opening user '%s' failed: %s",
			user->username, rados_connect_error(ret));
		return NULL;
	}
	return ruser->rm;
}

int rados_user_open(struct mail_user *user, struct event *event,
		    const char **error_r)
{
	if (rados_user_get(user, error_r) != NULL)
		return 0;
	if (!rados_connect_failed_temporarily())
		return -1;
	e_warning(event, "%s", *error_r);
	return 0;
}

/* The user's rm_user for a storage or list operation; on failure the error
   and its text, as rados_failure() gives them. */
static struct rm_user *
rados_user_for_use(struct mail_user *user, enum mail_error *error_r,
		   const char **text_r)
{
	struct rm_user *rm = rados_user_get(user, text_r);

	if (rm != NULL)
		return rm;
	if (rados_connect_failed_temporarily()) {
		e_warning(user->event, "%s", *text_r);
		*error_r = MAIL_ERROR_UNAVAILABLE;
		*text_r = "Mail storage temporarily unavailable "
			"(the cluster did not answer)";
	} else {
		*error_r = MAIL_ERROR_NONE;
	}
	return NULL;
}

struct mail_user *rados_ns_owner(const struct mail_namespace *ns)
{
	/* a shared namespace (shared/<user>/) holds its owner's mail, while
	   ns->user is the session's user; a public one has no owner */
	return ns->owner != NULL ? ns->owner : ns->user;
}

struct rm_user *rados_mailbox_user(struct mailbox *box)
{
	enum mail_error error;
	const char *text;
	struct rm_user *rm = rados_user_for_use(rados_ns_owner(box->list->ns),
						&error, &text);

	if (rm == NULL && error == MAIL_ERROR_NONE)
		mail_storage_set_critical(box->storage, "%s", text);
	else if (rm == NULL)
		mail_storage_set_error(box->storage, error, text);
	return rm;
}

struct rm_user *rados_list_user(struct mailbox_list *list)
{
	enum mail_error error;
	const char *text;
	struct rm_user *rm = rados_user_for_use(rados_ns_owner(list->ns),
						&error, &text);

	if (rm == NULL && error == MAIL_ERROR_NONE)
		mailbox_list_set_critical(list, "%s", text);
	else if (rm == NULL)
		mailbox_list_set_error(list, error, text);
	return rm;
}
