/* Limits a client can learn before it sends a mail: rados_max_mail_size is
   advertised as APPENDLIMIT (RFC 7889) in imap's CAPABILITY, and a mail whose
   size its input already tells (an IMAP APPEND's literal) is refused before
   its bytes are read: Dovecot's imap sends a synchronizing literal's "+ OK"
   only after mailbox_save_begin() succeeded, so the client gets
   NO [TOOBIG] instead of uploading the mail first (issue 14). The keyword
   limit is the library's (RM_RESULT_KEYWORD_LIMIT, rados-sync.c's
   disallow_new_keywords). */

#include "lib.h"
#include "istream.h"
#include "mail-storage-private.h"
#include "imap-common.h"
#include "imap-client.h"
#include "rados-connect.h"
#include "rados-storage.h"

#include <dlfcn.h>

static bool rados_service_is(struct mail_user *user, const char *name)
{
	return user->service != NULL && strcmp(user->service, name) == 0;
}

int rados_save_check_size(struct mailbox *box, struct istream *input)
{
	struct rados_mailbox *mbox = RADOS_MAILBOX(box);
	struct mail_user *user = box->storage->user;
	enum rm_result ret;
	uoff_t size;

	if (i_stream_get_size(input, TRUE, &size) <= 0)
		return 0;
	ret = rm_mailbox_check_mail_size(mbox->rmb, size);
	if (ret == RM_RESULT_OK)
		return 0;
	if (ret != RM_RESULT_TOO_LARGE) {
		rados_storage_set_error(box->storage, ret, "checking the size");
		return -1;
	}
	if (rados_service_is(user, "lmtp") || rados_service_is(user, "lda")) {
		/* as rados-save.c does for a mail found too large while it
		   passes: a permanent 552, not LMTP's 451 */
		mail_storage_set_error(box->storage, MAIL_ERROR_NOQUOTA,
			"Mail is larger than this server accepts");
	} else if (rados_service_is(user, "imap")) {
		/* RFC 7889: an APPEND above APPENDLIMIT gets [TOOBIG]
		   (an error text starting with '[' is sent as it is) */
		mail_storage_set_error(box->storage, MAIL_ERROR_LIMIT,
			"[TOOBIG] Mail is larger than this server accepts");
	} else {
		mail_storage_set_error(box->storage, MAIL_ERROR_LIMIT,
			"Mail is larger than this server accepts");
	}
	return -1;
}

/* imap's hook and capability functions, found at run time: this plugin is
   loaded by lmtp, doveadm and others too, which don't have them (and the
   plugin links with --no-undefined). */
typedef imap_client_created_func_t *
rados_hook_set_func_t(imap_client_created_func_t *new_hook);
typedef void rados_add_capability_func_t(struct client *client,
					 const char *capability);

static rados_hook_set_func_t *rados_hook_set = NULL;
static rados_add_capability_func_t *rados_add_capability = NULL;
static imap_client_created_func_t *rados_next_hook = NULL;
static bool rados_hook_installed = FALSE;

static void *rados_imap_symbol(const char *name)
{
	return dlsym(RTLD_DEFAULT, name);
}

/* (At client creation the user's namespaces don't exist yet.) */
static bool rados_user_is_rados(struct mail_user *user)
{
	const struct mail_storage_settings *set =
		mail_user_set_get_storage_set(user);

	return str_begins(set->mail_location, RADOS_STORAGE_NAME":");
}

static void rados_imap_client_created(struct client **clientp)
{
	struct client *client = *clientp;
	struct rm_store *store;
	const char *error;
	uint64_t max;

	/* the process's store: the session connects now rather than at its
	   first command; if it can't, APPENDLIMIT is left out */
	if (rados_user_is_rados(client->user) &&
	    rados_connect_user(client->user, &store, &error) == 0 &&
	    rm_store_max_mail_size(store, &max) == RM_RESULT_OK) {
		rados_add_capability(client, t_strdup_printf(
			"APPENDLIMIT=%"PRIu64, max));
	}
	if (rados_next_hook != NULL)
		rados_next_hook(clientp);
}

void rados_limits_init(void)
{
	void *set = rados_imap_symbol("imap_client_created_hook_set");
	void *add = rados_imap_symbol("client_add_capability");

	if (set == NULL || add == NULL)
		return;
	/* (object to function pointer: POSIX dlsym's documented way) */
	memcpy(&rados_hook_set, &set, sizeof(set));
	memcpy(&rados_add_capability, &add, sizeof(add));
	rados_next_hook = rados_hook_set(rados_imap_client_created);
	rados_hook_installed = TRUE;
}

void rados_limits_deinit(void)
{
	if (rados_hook_installed)
		(void)rados_hook_set(rados_next_hook);
	rados_hook_installed = FALSE;
}
