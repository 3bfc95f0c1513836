#ifndef RADOS_STORAGE_H
#define RADOS_STORAGE_H

/* The mail storage "rados": the truth is in RADOS (through the C ABI of
   ffi/, rados_mail.h); Dovecot's index is a local cache that any process can
   rebuild from RADOS at any time (like imapc). */

#include "index-storage.h"
#include "index-mail.h"
#include "mailbox-list-private.h"

#include <rados_mail.h>
#include "rados-connect.h"

#define RADOS_STORAGE_NAME "rados"
#define RADOS_LIST_NAME "rados"
#define RADOS_INDEX_PREFIX "dovecot.index"
/* The hierarchy separator of mailbox names in RADOS. */
#define RADOS_LIST_SEP '/'
/* Most mails whose bodies one rm_mailbox_prefetch() call reads ahead. */
#define RADOS_PREFETCH_MAX 64
/* Name of the private index extension. */
#define RADOS_EXT_NAME "rados"

/* Header of the "rados" index extension: what the local index mirrors. */
struct rados_index_header {
	uint32_t uidvalidity;
	/* the RADOS mailbox's incarnation (one created again with the same
	   GUID has another) */
	uint32_t incarnation;
	/* RADOS HIGHESTMODSEQ the index was last synced to */
	uint64_t highest_modseq;
	/* the RADOS mailbox GUID (a recreated mailbox has another) */
	uint8_t mailbox_guid[16];
};
/* The extension's record: the mail's modseq in RADOS (uint64_t). */

struct rados_storage {
	struct mail_storage storage;
};

struct rados_mailbox {
	struct mailbox box;
	struct rados_storage *storage;

	/* set while the mailbox is open */
	struct rm_mailbox *rmb;
	/* change push while IDLE (or NOTIFY) waits for changes */
	struct rados_push *push;
	uint32_t uidvalidity;
	uint32_t incarnation;
	guid_128_t guid;
	uint32_t ext_id;

	/* the outcome of the RADOS commit of the transaction being committed
	   (set by rados-transaction.c around the index commit, read by the save
	   context's commit_pre for APPENDUID / COPYUID) */
	const struct rm_txn_result *commit_result;

	/* this process changed RADOS: the next sync must not be skipped */
	bool sync_pending:1;

	/* UIDs whose bodies Dovecot's prefetch asked for (rados-mail.c), read
	   all at once when the first of them is read */
	uint32_t prefetch_uids[RADOS_PREFETCH_MAX];
	unsigned int prefetch_count;
};

struct rados_mail {
	struct index_mail imail;
	/* the RADOS record of rec_uid (0: none looked up yet) */
	uint32_t rec_uid;
	struct rm_record rec;
};

/* RADOS and Dovecot number the system flags differently. */
static inline enum mail_flags rados_flags_to_dovecot(uint32_t flags)
{
	enum mail_flags ret = 0;

	if ((flags & RM_FLAG_SEEN) != 0)
		ret |= MAIL_SEEN;
	if ((flags & RM_FLAG_ANSWERED) != 0)
		ret |= MAIL_ANSWERED;
	if ((flags & RM_FLAG_FLAGGED) != 0)
		ret |= MAIL_FLAGGED;
	if ((flags & RM_FLAG_DELETED) != 0)
		ret |= MAIL_DELETED;
	if ((flags & RM_FLAG_DRAFT) != 0)
		ret |= MAIL_DRAFT;
	return ret;
}

static inline uint32_t rados_flags_from_dovecot(enum mail_flags flags)
{
	uint32_t ret = 0;

	if ((flags & MAIL_SEEN) != 0)
		ret |= RM_FLAG_SEEN;
	if ((flags & MAIL_ANSWERED) != 0)
		ret |= RM_FLAG_ANSWERED;
	if ((flags & MAIL_FLAGGED) != 0)
		ret |= RM_FLAG_FLAGGED;
	if ((flags & MAIL_DELETED) != 0)
		ret |= RM_FLAG_DELETED;
	if ((flags & MAIL_DRAFT) != 0)
		ret |= RM_FLAG_DRAFT;
	return ret;
}

extern struct mail_storage rados_storage;
extern struct mailbox_list rados_mailbox_list;
extern struct mail_vfuncs rados_mail_vfuncs;

#define RADOS_MAILBOX(s) (container_of(s, struct rados_mailbox, box))
#define RADOS_STORAGE(s) (container_of(s, struct rados_storage, storage))
#define RADOS_MAIL(s) (container_of(INDEX_MAIL(s), struct rados_mail, imail))

/* rados-user.c */
/* mail_user_created hook: attaches the (lazily opened) rm_user. */
void rados_mail_user_created(struct mail_user *user);
/* The user's rm_user, opened on first use (one per mail_user, freed with it).
   Returns NULL with *error_r on failure. */
struct rm_user *rados_user_get(struct mail_user *user, const char **error_r);
/* Opens the user's rm_user at storage / list creation: 0 when opened, or when
   the cluster didn't answer (logged to event; the first use tries again), -1
   with *error_r for anything else. */
int rados_user_open(struct mail_user *user, struct event *event,
		    const char **error_r);
/* The RADOS user of a mailbox's / list's namespace owner, connecting on first
   use: a process that starts while the cluster is unreachable serves
   "temporarily unavailable" (IMAP NO [UNAVAILABLE], LMTP 4xx) and recovers
   when the cluster is back. On failure the storage's / list's error is set
   and NULL returned. */
struct rm_user *rados_mailbox_user(struct mailbox *box);
struct rm_user *rados_list_user(struct mailbox_list *list);
/* The user whose mail namespace ns holds: a shared namespace's owner (the
   other user of shared/<user>/), else the session's user. */
struct mail_user *rados_ns_owner(const struct mail_namespace *ns);
bool rados_storage_is_rados(const struct mail_storage *storage);
/* Sets the storage error for a failed ABI call: temporary failures become
   MAIL_ERROR_UNAVAILABLE (IMAP NO [UNAVAILABLE], LMTP 4xx), bugs and
   corruption are logged as critical. what names the operation. */
void rados_storage_set_error(struct mail_storage *storage, enum rm_result ret,
			     const char *what);
void rados_list_set_error(struct mailbox_list *list, enum rm_result ret,
			  const char *what);
/* The last ABI failure message of this thread (data stack). */
/* Reads the "rados" extension header of view; FALSE if it has none. */
bool rados_index_header_get(struct rados_mailbox *mbox,
			    struct mail_index_view *view,
			    struct rados_index_header *hdr_r);

/* rados-list.c */
/* Local index directory of the mailbox name, or NULL for in-memory indexes. */
const char *rados_list_index_dir(struct mailbox_list *list, const char *name);
/* Removes the local index directory of name (the index is only a cache). */
void rados_list_delete_index_dir(struct mailbox_list *list, const char *name);

/* rados-acl.c */
/* mail_namespace_storage_added hook: when the acl plugin (vfile) serves a
   rados list, its ACLs are kept in RADOS (see rados-acl.c). */
void rados_acl_namespace_storage_added(struct mail_namespace *ns);
/* Brings the local ACL files of the mailboxes `names` (being listed) in line
   with RADOS with one read, instead of one read per mailbox when the acl
   plugin checks each one's rights. Nothing to do without ACLs in RADOS;
   failures are left to the per-mailbox reads. */
void rados_acl_prefetch(struct mailbox_list *list,
			const ARRAY_TYPE(const_string) *names);
/* Drops the ACL of a mailbox being deleted: 0, or -1 with the list's error
   set. Nothing to do (0) when the list has no ACLs in RADOS. */
int rados_acl_mailbox_deleted(struct mailbox_list *list, const char *name);
/* Moves the ACLs of a renamed mailbox and of its children: 0, or -1 with the
   list's error set. */
int rados_acl_mailbox_renamed(struct mailbox_list *list, const char *oldname,
			      const char *newname);

/* rados-sync.c */
int rados_sync(struct rados_mailbox *mbox, bool force_resync);
struct mailbox_sync_context *
rados_storage_sync_init(struct mailbox *box, enum mailbox_sync_flags flags);

/* rados-keywords.c: sets the keywords of the index record seq (new: it has
   none yet) to wanted[0..wanted_count], RADOS's, in trans. */
void rados_keywords_sync(struct mail_index *index,
			 struct mail_index_view *view,
			 struct mail_index_transaction *trans, uint32_t seq,
			 const char *const *wanted, unsigned int wanted_count,
			 bool is_new);
/* rados-limits.c: refuses a mail whose size input already tells (an IMAP
   APPEND's literal) when it is above rados_max_mail_size, before its bytes
   are read: IMAP then answers NO [TOOBIG] instead of the literal's "+ OK".
   Returns 0, or -1 with the storage error set. */
int rados_save_check_size(struct mailbox *box, struct istream *input);
/* rados-limits.c: in imap processes, CAPABILITY advertises
   APPENDLIMIT=<rados_max_mail_size> (RFC 7889). */
void rados_limits_init(void);
void rados_limits_deinit(void);

/* rados-transaction.c: a Dovecot transaction is one rm_txn: flag, keyword
   and expunge changes, new mails and copies are handed to it, and its commit
   applies them to RADOS in one write, before the local index commits. */
/* The transaction's rm_txn, begun on first use; NULL (with the storage error
   set, and the commit bound to fail) if it could not be begun. */
struct rm_txn *rados_transaction_txn(struct mailbox_transaction_context *t);
/* A change could not be handed over: sets the storage error; the commit
   fails. */
void rados_transaction_failed(struct mailbox_transaction_context *t,
			      enum rm_result ret, const char *what);
/* The names of keywords, NULL-terminated (data stack); *count_r of them. */
const char *const *
rados_keyword_names(struct mail_keywords *keywords, unsigned int *count_r);
void rados_transaction_update_flags(struct mail *mail,
				    enum modify_type modify_type,
				    enum mail_flags flags);
void rados_transaction_update_keywords(struct mail *mail,
				       enum modify_type modify_type,
				       struct mail_keywords *keywords);
void rados_transaction_expunge(struct mail *mail);
int rados_transaction_commit(struct mailbox_transaction_context *t,
			     struct mail_transaction_commit_changes *changes_r);
void rados_transaction_rollback(struct mailbox_transaction_context *t);

/* rados-mail.c */
struct mail *rados_mail_alloc(struct mailbox_transaction_context *t,
			      enum mail_fetch_field wanted_fields,
			      struct mailbox_header_lookup_ctx *wanted_headers);
/* The mail's RADOS record; -1 with the mail error set (expunged, ...). */
int rados_mail_get_record(struct mail *mail, const struct rm_record **rec_r);

/* rados-damage.c */
/* The mail's data is damaged in RADOS (detail: the library's message, which
   names the object and key): logs it once per process (as critical, with the
   mailbox and UID) and sets the mail's error to MAIL_ERROR_INVALIDDATA, which
   IMAP answers with NO [PARSE] without ending the session. */
void rados_mail_set_damaged(struct mail *mail, const char *what,
			    const char *detail);
/* A read of a mail (its record or body) that failed with ret: its error as
   rados_storage_set_error() sets it, except that in imap a temporary failure
   is reported as invalid data, so that FETCH answers a tagged NO (the text
   says "temporarily unavailable") instead of ending the session. */
void rados_mail_set_read_error(struct mail *mail, enum rm_result ret,
			       const char *what);
/* doveadm force-resync: repairs the mailbox in RADOS (what can be repaired,
   each action logged, each item left unrepaired logged as an error), before
   the local index is rebuilt. 0 with *unrepaired_r (items left), or -1 with
   the storage error set. */
int rados_mailbox_repair(struct rados_mailbox *mbox, size_t *unrepaired_r);
/* Sets the storage error for damage a force-resync left (unrepaired items):
   MAIL_ERROR_NOTPOSSIBLE (doveadm exits non-zero). */
void rados_mailbox_set_unrepaired(struct rados_mailbox *mbox,
				  size_t unrepaired);
/* Frees what the damage log remembers (plugin deinit). */
void rados_damage_deinit(void);

/* rados-istream.c */
/* A seekable istream over an opened body (takes ownership of body). */
struct istream *rados_istream_create(struct rm_body *body, uoff_t size);

/* rados-save.c */
struct mail_save_context *
rados_save_alloc(struct mailbox_transaction_context *t);
int rados_save_begin(struct mail_save_context *ctx, struct istream *input);
int rados_save_continue(struct mail_save_context *ctx);
int rados_save_finish(struct mail_save_context *ctx);
void rados_save_cancel(struct mail_save_context *ctx);
int rados_transaction_save_commit_pre(struct mail_save_context *ctx);
void rados_transaction_save_commit_post(
	struct mail_save_context *ctx,
	struct mail_index_transaction_commit_result *result);
void rados_transaction_save_rollback(struct mail_save_context *ctx);
/* A mail handed to the transaction's rm_txn, not committed yet. */
struct rados_pending_info {
	enum mail_flags flags;
	struct mail_keywords *keywords;
	/* what the save's dest_mail reports (sizes, date, GUID; uid 0) */
	struct rm_record rec;
	/* a saved mail's bytes when small (ownership passes), or NULL */
	buffer_t *data;
	/* a copy's source (else NULL: a saved mail) */
	struct rados_mailbox *src;
	uint32_t src_uid;
};
/* Adds a temporary index record (no UID yet) for a mail handed to the
   transaction's rm_txn, so that the save's dest_mail works until the commit,
   which reports its UID (APPENDUID / COPYUID). */
void rados_save_add_pending(struct mail_save_context *ctx,
			    const struct rados_pending_info *info);
/* For a mail being saved (dest_mail): its record / its stream. 0 when mail
   is not one, 1 when found, -1 with the storage error set. */
int rados_save_pending_record(struct mail *mail, struct rm_record *rec_r);
int rados_save_pending_stream(struct mail *mail, struct istream **input_r);

/* rados-update.c */
/* mailbox_update(): dsync's UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and GUID. */
int rados_mailbox_update(struct mailbox *box,
			 const struct mailbox_update *update);

/* rados-copy.c */
int rados_copy(struct mail_save_context *ctx, struct mail *mail);

#endif
