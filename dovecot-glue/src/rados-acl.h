#ifndef RADOS_ACL_H
#define RADOS_ACL_H

/* ACLs in RADOS: shared by rados-acl.c (the ACL of a mailbox) and
   rados-acl-list.c (which mailboxes others may see). See rados-acl.c. */

#include "acl-api-private.h"
#include "acl-cache.h"
#include "acl-plugin.h"

/* The owner's dict key of a mailbox's ACL text: prefix + mailbox name. */
#define RADOS_ACL_KEY_PREFIX "priv/rados-acl/"

/* The acl plugin's functions, looked up with dlsym() (the plugin still loads
   without the acl plugin). */
struct rados_acl_api {
	struct acl_mailbox_list_module *list_module;
	__typeof__(acl_cache_flush) *cache_flush;
	__typeof__(acl_object_init_from_name) *object_init_from_name;
	__typeof__(acl_object_deinit) *object_deinit;
	__typeof__(acl_object_list_init) *object_list_init;
	__typeof__(acl_object_list_next) *object_list_next;
	__typeof__(acl_object_list_deinit) *object_list_deinit;
	__typeof__(acl_rights_has_nonowner_lookup_changes) *has_nonowner_lookup;
};

extern struct rados_acl_api rados_acl_api;

/* The ACL texts of all of a list owner's mailboxes: name -> text. */
struct rados_acl_entries {
	pool_t pool;
	HASH_TABLE(char *, char *) values;
};
/* Reads them with one RADOS read: 0, or -1 with *error_r. Free with
   rados_acl_entries_free() either way. */
int rados_acl_entries_read(struct mailbox_list *list,
			   struct rados_acl_entries *entries_r,
			   const char **error_r);
void rados_acl_entries_free(struct rados_acl_entries *entries);

/* The local dovecot-acl file of the mailbox `name` (vfile's path), or NULL. */
const char *rados_acl_local_path(struct mailbox_list *list, const char *name);
/* True when the file was brought in line with RADOS in this ioloop run. */
bool rados_acl_seen(const char *path);
/* Makes the local file hold `value` (NULL: no file), flushing the acl cache
   of the object: 0, or -1 with *error_r. */
int rados_acl_materialise(struct acl_backend *backend, const char *name,
			  const char *path, const char *value,
			  const char **error_r);

/* rados-acl-list.c: the backend's nonowner_lookups_iter_* vfuncs. */
struct acl_mailbox_list_context *
rados_acl_nonowner_iter_init(struct acl_backend *backend);
bool rados_acl_nonowner_iter_next(struct acl_mailbox_list_context *ctx,
				  const char **name_r);
int rados_acl_nonowner_iter_deinit(struct acl_mailbox_list_context *ctx);

#endif
