/* LMTP: recipients whose user name can never be stored are refused at RCPT
   with 550 5.1.3 (issue 14).

   Dovecot 2.3's LMTP looks the user up at RCPT and creates the mail user only
   at DATA, where every failure to create it is "451 4.3.0 Temporary internal
   error": a name too long for a RADOS namespace, or one starting with '.',
   was retried by senders for days. No mail-storage hook runs at RCPT, but the
   lmtp binary exports lmtp_client_created_hook_set() and its clients have
   vfuncs (lmtp-client.h, shipped in /usr/include/dovecot): the plugin wraps
   cmd_rcpt. It is loaded into lmtp before the first client is created when it
   is in the global mail_plugins (client_load_modules()), as the storage needs
   anyway.

   The name checked is the RCPT address without its detail, as LMTP looks it
   up. A userdb that rewrites user names is not consulted here: the rewritten
   name is checked when the user is opened (IMAP login fails, LMTP answers 451
   at DATA). The rules are Rust's (rm_user_name_check). The symbols of lmtp
   are weak: in every other binary they are NULL and nothing is hooked. */

#include "lib.h"
#include "smtp-address.h"
#include "mail-user.h"
#include "lda-settings.h"
#include "lmtp-common.h"
#include "lmtp-recipient.h"
#include "rados-connect.h"
#include "rados-lmtp.h"

#pragma weak lmtp_client_created_hook_set

static lmtp_client_created_func_t *rados_lmtp_next_hook = NULL;
static bool rados_lmtp_hooked = FALSE;
/* The vfuncs the clients had before ours: the same for every client of the
   process (the hooks run in the same order for each). */
static struct lmtp_client_vfuncs rados_lmtp_super;

static int rados_lmtp_cmd_rcpt(struct client *client,
			       struct smtp_server_cmd_ctx *cmd,
			       struct lmtp_recipient *lrcpt)
{
	struct smtp_server_recipient *rcpt = lrcpt->rcpt;
	const char *username, *detail, *prefix;
	char delim = '\0';
	enum rm_result ret;

	/* a proxy decides by passdb where the user lives: not ours to check */
	if (client->lmtp_set->lmtp_proxy)
		return rados_lmtp_super.cmd_rcpt(client, cmd, lrcpt);

	smtp_address_detail_parse_temp(
		client->unexpanded_lda_set->recipient_delimiter, rcpt->path,
		&username, &delim, &detail);
	prefix = mail_user_set_plugin_getenv(client->user_set,
					     "rados_namespace_prefix");
	/* a bad prefix is a configuration error, not the recipient's: it fails
	   at user creation (451), logged there */
	if (rm_user_name_check(prefix, "x") != RM_RESULT_OK)
		return rados_lmtp_super.cmd_rcpt(client, cmd, lrcpt);
	ret = rm_user_name_check(prefix, username);
	if (ret == RM_RESULT_INVALID_INPUT) {
		e_info(client->event, "rados: refusing recipient %s: %s",
		       smtp_address_encode(rcpt->path), rados_last_error(ret));
		smtp_server_reply(cmd, 550, "5.1.3",
				  "<%s> User name can't be stored: %s",
				  smtp_address_encode(rcpt->path),
				  rados_last_error(ret));
		return -1;
	}
	return rados_lmtp_super.cmd_rcpt(client, cmd, lrcpt);
}

static void rados_lmtp_client_created(struct client **clientp)
{
	struct client *client = *clientp;

	rados_lmtp_super = client->v;
	client->v.cmd_rcpt = rados_lmtp_cmd_rcpt;
	if (rados_lmtp_next_hook != NULL)
		rados_lmtp_next_hook(clientp);
}

void rados_lmtp_init(void)
{
	if (lmtp_client_created_hook_set == NULL)
		return;
	rados_lmtp_next_hook =
		lmtp_client_created_hook_set(rados_lmtp_client_created);
	rados_lmtp_hooked = TRUE;
}

void rados_lmtp_deinit(void)
{
	if (!rados_lmtp_hooked)
		return;
	(void)lmtp_client_created_hook_set(rados_lmtp_next_hook);
	rados_lmtp_hooked = FALSE;
}
