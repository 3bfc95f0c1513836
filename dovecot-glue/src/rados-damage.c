/* Damage in RADOS as Dovecot shows it, and its repair by doveadm
   force-resync.

   A mail whose record or body is damaged (RM_RESULT_CORRUPTED: a record that
   fails its check, a body object missing while the mail's record points to
   it, a body that fails its checksum) stays in the mailbox. The error names
   the object (and the omap key) and is logged once per process, and the
   mail's reads fail as invalid data: IMAP answers that FETCH with
   NO [PARSE] and the session goes on, whatever imap_fetch_failure says
   (Dovecot disconnects on the internal errors of a FETCH by default). Never
   an expunge: only a mail whose record is really gone is one.

   doveadm force-resync (a sync with MAILBOX_SYNC_FLAG_FORCE_RESYNC) first
   repairs the mailbox in RADOS with the code of `rados-mail repair`
   (rm_user_repair_mailbox), logs each action, then rebuilds the local index
   from RADOS as usual. */

#include "lib.h"
#include "hash.h"
#include "mail-storage-private.h"
#include "rados-storage.h"

/* Beyond this many damaged objects, each further one is logged every time
   (a flood of damage is worth a flood of log lines). */
#define RADOS_DAMAGE_LOGGED_MAX 4096

/* The damage messages this process has logged already. */
static HASH_TABLE(char *, char *) rados_damage_logged;

/* Whether detail is logged for the first time in this process (and is now
   remembered as logged). */
static bool rados_damage_first_time(const char *detail)
{
	char *key;

	if (!hash_table_is_created(rados_damage_logged)) {
		hash_table_create(&rados_damage_logged, default_pool, 0,
				  str_hash, strcmp);
	}
	if (hash_table_lookup(rados_damage_logged, detail) != NULL)
		return FALSE;
	if (hash_table_count(rados_damage_logged) >= RADOS_DAMAGE_LOGGED_MAX)
		return TRUE;
	key = i_strdup(detail);
	hash_table_insert(rados_damage_logged, key, key);
	return TRUE;
}

void rados_mail_set_damaged(struct mail *mail, const char *what,
			    const char *detail)
{
	if (rados_damage_first_time(detail)) {
		mail_set_critical(mail, "rados: %s failed: damaged mail: %s",
				  what, detail);
	} else {
		e_debug(mail_event(mail), "rados: %s failed: damaged mail "
			"(logged before): %s", what, detail);
	}
	/* not MAIL_ERROR_TEMP (what mail_set_critical leaves): IMAP would
	   disconnect, and a retry can't help */
	mail_storage_set_error(mail->box->storage, MAIL_ERROR_INVALIDDATA,
		t_strdup_printf("Message UID %u is damaged in the mail "
				"storage (the server log has the details)",
				mail->uid));
}

void rados_mail_set_read_error(struct mail *mail, enum rm_result ret,
			       const char *what)
{
	enum mail_error error;

	rados_storage_set_error(mail->box->storage, ret, what);
	(void)mail_storage_get_last_error(mail->box->storage, &error);
	if (error != MAIL_ERROR_UNAVAILABLE ||
	    strcmp(mail->box->storage->user->service, "imap") != 0)
		return;
	/* Dovecot 2.3's FETCH ends the session (BYE) on any error but
	   invalid data and unknown CTE, or answers NO [SERVERBUG] once with
	   imap_fetch_failure = no-after. A cluster that does not answer is
	   not a reason to disconnect: as invalid data, IMAP answers that
	   FETCH with a tagged NO and the session goes on; the text says it
	   is temporary. Only in imap: LMTP, doveadm and dsync keep
	   MAIL_ERROR_UNAVAILABLE (4xx, EX_TEMPFAIL, retried later). */
	mail_storage_set_error(mail->box->storage, MAIL_ERROR_INVALIDDATA,
		t_strdup_printf("Message UID %u is temporarily unavailable: "
				"the mail storage did not answer in time, "
				"try again later", mail->uid));
}

void rados_damage_deinit(void)
{
	struct hash_iterate_context *iter;
	char *key, *value;

	if (!hash_table_is_created(rados_damage_logged))
		return;
	iter = hash_table_iterate_init(rados_damage_logged);
	while (hash_table_iterate(iter, rados_damage_logged, &key, &value))
		i_free(key);
	hash_table_iterate_deinit(&iter);
	hash_table_destroy(&rados_damage_logged);
}

static void rados_repair_item_cb(void *userdata, enum rm_repair_item item,
				 const char *text, size_t text_len ATTR_UNUSED)
{
	struct mailbox *box = userdata;

	if (item == RM_REPAIR_ITEM_UNREPAIRED)
		e_error(box->event, "rados: force-resync: %s", text);
	else
		e_info(box->event, "rados: force-resync: %s", text);
}

int rados_mailbox_repair(struct rados_mailbox *mbox, size_t *unrepaired_r)
{
	struct mailbox *box = &mbox->box;
	struct rm_repair_counts counts;
	struct rm_user *user;
	enum rm_result ret;

	user = rados_mailbox_user(box);
	if (user == NULL)
		return -1;
	ret = rm_user_repair_mailbox(user, box->name, FALSE,
				     rados_repair_item_cb, box, &counts);
	if (ret == RM_RESULT_NOT_FOUND) {
		mailbox_set_deleted(box);
		return -1;
	}
	if (ret != RM_RESULT_OK) {
		rados_storage_set_error(box->storage, ret,
					"repairing the mailbox");
		return -1;
	}
	if (counts.actions == 0 && counts.unrepaired == 0)
		e_debug(box->event, "rados: force-resync: nothing to repair");
	*unrepaired_r = counts.unrepaired;
	return 0;
}

void rados_mailbox_set_unrepaired(struct rados_mailbox *mbox,
				  size_t unrepaired)
{
	mail_storage_set_error(mbox->box.storage, MAIL_ERROR_NOTPOSSIBLE,
		t_strdup_printf("rados: %zu damaged items could not be "
				"repaired (the log names them)", unrepaired));
}
