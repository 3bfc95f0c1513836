/* ACLs in RADOS. The acl plugin's vfile backend keeps each mailbox's ACL in a
   file "dovecot-acl" in the directory the mailbox list gives for it; for a
   rados list that is the local index cache, so an ACL set through one backend
   would be enforced by that backend alone. When the acl plugin serves a rados
   list, this file takes over three of the backend's vfuncs:

   - object_refresh_cache: the ACL text of the mailbox is read from RADOS (the
     owner's dict key priv/rados-acl/<mailbox name>) at most once per ioloop
     run (about once per IMAP command), written over the local dovecot-acl
     file when it differs (removed when RADOS has none), and the acl cache of
     the mailbox flushed (another process of the backend may have written
     the file); vfile then reads the file as always, a local read.
   - object_update (IMAP SETACL/DELETEACL, doveadm acl): vfile updates the
     local file under its lock, after a refresh from RADOS; the result is
     written to RADOS. When that fails the command fails and the next refresh
     restores RADOS's text.
   - nonowner_lookups_iter_* (rados-acl-list.c): the mailboxes others may
     see (what vfile reads from its local dovecot-acl-list) are computed from
     RADOS: one listing of the owner's mailboxes and one read of all its ACL
     keys.

   A mailbox's ACL key is removed when it is deleted and moved (with its
   children's) when it is renamed (rados-list.c). Two backends changing one
   mailbox's ACL at the same moment: the last write wins.

   The acl plugin is loaded before this one (lib01 < lib20) with RTLD_GLOBAL;
   its functions are looked up with dlsym(), so the plugin still loads without
   it. */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "ioloop.h"
#include "str.h"
#include "mkdir-parents.h"
#include "time-util.h"
#include "write-full.h"
#include "mail-namespace.h"
#include "mailbox-list-private.h"
#include "rados-connect.h"
#include "rados-storage.h"
#include "rados-acl.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#define RADOS_ACL_FILENAME "dovecot-acl"
/* ACL texts are a few lines; more is refused when read from disk */
#define RADOS_ACL_MAX_SIZE (1024 * 1024)

struct rados_acl_api rados_acl_api;
static bool rados_acl_looked_up, rados_acl_found;
/* vfile's own vfuncs, which ours call */
static struct acl_backend_vfuncs vfile_v;
/* Local ACL files already brought in line with RADOS during this ioloop run
   (ioloop_timeval): path -> path. */
static pool_t seen_pool;
static HASH_TABLE(char *, char *) seen_paths;
static struct timeval seen_time;

static void *rados_acl_sym(const char *name)
{
	return dlsym(RTLD_DEFAULT, name);
}

static bool rados_acl_api_lookup(void)
{
	struct rados_acl_api *api = &rados_acl_api;

	if (rados_acl_looked_up)
		return rados_acl_found;
	rados_acl_looked_up = TRUE;
	api->list_module = rados_acl_sym("acl_mailbox_list_module");
	api->cache_flush = rados_acl_sym("acl_cache_flush");
	api->object_init_from_name = rados_acl_sym("acl_object_init_from_name");
	api->object_deinit = rados_acl_sym("acl_object_deinit");
	api->object_list_init = rados_acl_sym("acl_object_list_init");
	api->object_list_next = rados_acl_sym("acl_object_list_next");
	api->object_list_deinit = rados_acl_sym("acl_object_list_deinit");
	api->has_nonowner_lookup =
		rados_acl_sym("acl_rights_has_nonowner_lookup_changes");
	rados_acl_found = api->list_module != NULL &&
		api->cache_flush != NULL &&
		api->object_init_from_name != NULL &&
		api->object_deinit != NULL && api->object_list_init != NULL &&
		api->object_list_next != NULL &&
		api->object_list_deinit != NULL &&
		api->has_nonowner_lookup != NULL;
	return rados_acl_found;
}

static void rados_acl_seen_reset_if_old(void)
{
	if (seen_pool == NULL) {
		seen_pool = pool_alloconly_create("rados acl seen", 1024);
		hash_table_create(&seen_paths, seen_pool, 0, str_hash,
				  strcmp);
	} else if (timeval_cmp(&seen_time, &ioloop_timeval) != 0) {
		hash_table_clear(seen_paths, TRUE);
		p_clear(seen_pool);
	}
	seen_time = ioloop_timeval;
}

bool rados_acl_seen(const char *path)
{
	rados_acl_seen_reset_if_old();
	return hash_table_lookup(seen_paths, path) != NULL;
}

static void rados_acl_set_seen(const char *path, bool seen)
{
	char *key;

	rados_acl_seen_reset_if_old();
	if (!seen) {
		(void)hash_table_try_remove(seen_paths, path);
	} else if (hash_table_lookup(seen_paths, path) == NULL) {
		key = p_strdup(seen_pool, path);
		hash_table_insert(seen_paths, key, key);
	}
}

/* The local dovecot-acl path of the mailbox `name`, as vfile computes it for
   a storage without a root (MAILBOX_LIST_PATH_TYPE_CONTROL); NULL for the
   namespace's default object ("") and for in-memory indexes. */
const char *rados_acl_local_path(struct mailbox_list *list, const char *name)
{
	const char *dir;

	if (*name == '\0' ||
	    mailbox_list_get_path(list, name, MAILBOX_LIST_PATH_TYPE_CONTROL,
				  &dir) <= 0)
		return NULL;
	return t_strconcat(dir, "/" RADOS_ACL_FILENAME, NULL);
}

/* The owner's dict, for `list`'s namespace. */
static struct rm_dict *rados_acl_dict(struct mailbox_list *list,
				      const char **error_r)
{
	struct rm_store *store;
	struct rm_dict *dict;
	enum rm_result ret;

	if (rados_list_user(list) == NULL) {
		*error_r = mailbox_list_get_last_internal_error(list, NULL);
		return NULL;
	}
	store = rados_connect_process_store();
	if (store == NULL) {
		*error_r = "no RADOS store";
		return NULL;
	}
	ret = rm_dict_open(store, rados_ns_owner(list->ns)->username, &dict);
	if (ret != RM_RESULT_OK) {
		*error_r = rados_connect_error(ret);
		return NULL;
	}
	return dict;
}

static void rados_acl_value_cb(void *userdata, const uint8_t *value,
			       size_t len)
{
	const char **value_r = userdata;

	*value_r = t_strndup(value, len);
}

/* The mailbox's ACL text in RADOS (NULL: none): 0, or -1 with *error_r. */
static int rados_acl_read(struct mailbox_list *list, const char *name,
			  const char **value_r, const char **error_r)
{
	struct rm_dict *dict = rados_acl_dict(list, error_r);
	enum rm_result ret;

	*value_r = NULL;
	if (dict == NULL)
		return -1;
	ret = rm_dict_lookup(dict, t_strconcat(RADOS_ACL_KEY_PREFIX, name,
					       NULL),
			     rados_acl_value_cb, value_r);
	rm_dict_free(dict);
	if (ret != RM_RESULT_OK && ret != RM_RESULT_NOT_FOUND) {
		*error_r = rados_connect_error(ret);
		return -1;
	}
	return 0;
}

/* The local file's text (NULL: none): 0, or -1 with *error_r. */
static int rados_acl_read_local(const char *path, const char **text_r,
				const char **error_r)
{
	string_t *str = t_str_new(256);
	char buf[4096];
	ssize_t n;
	int fd;

	*text_r = NULL;
	fd = open(path, O_RDONLY);
	if (fd == -1) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		*error_r = t_strdup_printf("open(%s) failed: %m", path);
		return -1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		str_append_data(str, buf, n);
		if (str_len(str) > RADOS_ACL_MAX_SIZE)
			break;
	}
	if (n < 0 || str_len(str) > RADOS_ACL_MAX_SIZE) {
		*error_r = n < 0 ?
			t_strdup_printf("read(%s) failed: %m", path) :
			t_strdup_printf("%s is too large", path);
		i_close_fd(&fd);
		return -1;
	}
	i_close_fd(&fd);
	*text_r = str_c(str);
	return 0;
}

/* Makes the local file hold `value` (NULL: no file) and flushes the acl
   cache of the object: 0, or -1 with *error_r. */
int rados_acl_materialise(struct acl_backend *backend, const char *name,
			  const char *path, const char *value,
			  const char **error_r)
{
	const char *local, *tmp, *dir;
	int fd;

	if (rados_acl_read_local(path, &local, error_r) < 0)
		return -1;
	if (null_strcmp(local, value) == 0) {
		/* another process of this backend may have written it: vfile
		   must not keep what it read before (cache_secs) */
		rados_acl_api.cache_flush(backend->cache, name);
		rados_acl_set_seen(path, TRUE);
		return 0;
	}
	if (value == NULL) {
		if (unlink(path) < 0 && errno != ENOENT) {
			*error_r = t_strdup_printf("unlink(%s) failed: %m",
						   path);
			return -1;
		}
	} else {
		dir = t_strdup_until(path, strrchr(path, '/'));
		if (mkdir_parents(dir, 0700) < 0 && errno != EEXIST) {
			*error_r = t_strdup_printf("mkdir(%s) failed: %m",
						   dir);
			return -1;
		}
		tmp = t_strconcat(path, ".rados-tmp", NULL);
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd == -1) {
			*error_r = t_strdup_printf("open(%s) failed: %m", tmp);
			return -1;
		}
		if (write_full(fd, value, strlen(value)) < 0 ||
		    rename(tmp, path) < 0) {
			*error_r = t_strdup_printf("writing %s failed: %m",
						   path);
			i_close_fd(&fd);
			i_unlink_if_exists(tmp);
			return -1;
		}
		i_close_fd(&fd);
	}
	/* vfile re-reads the file at once, whatever its cache_secs */
	rados_acl_api.cache_flush(backend->cache, name);
	rados_acl_set_seen(path, TRUE);
	return 0;
}

static int rados_acl_object_refresh_cache(struct acl_object *aclobj)
{
	struct acl_backend *backend = aclobj->backend;
	const char *path, *value, *error;
	int ret = 0;

	T_BEGIN {
		path = rados_acl_local_path(backend->list, aclobj->name);
		if (path != NULL && !rados_acl_seen(path)) {
			if (rados_acl_read(backend->list, aclobj->name,
					   &value, &error) < 0 ||
			    rados_acl_materialise(backend, aclobj->name, path,
						  value, &error) < 0) {
				e_error(backend->list->ns->user->event,
					"rados: ACL of mailbox %s: %s",
					aclobj->name, error);
				ret = -1;
			}
		}
	} T_END;
	if (ret < 0)
		return -1;
	return vfile_v.object_refresh_cache(aclobj);
}

/* Writes the local file's text (after vfile updated it) to RADOS. */
static int rados_acl_store(struct acl_backend *backend, const char *name,
			   const char *path, const char **error_r)
{
	struct rm_dict *dict;
	struct rm_dict_txn *txn = NULL;
	const char *key, *text;
	enum rm_result ret;

	if (rados_acl_read_local(path, &text, error_r) < 0)
		return -1;
	dict = rados_acl_dict(backend->list, error_r);
	if (dict == NULL)
		return -1;
	key = t_strconcat(RADOS_ACL_KEY_PREFIX, name, NULL);
	ret = rm_dict_txn_begin(dict, &txn);
	if (ret == RM_RESULT_OK) {
		ret = text == NULL || *text == '\0' ?
			rm_dict_txn_unset(txn, key) :
			rm_dict_txn_set(txn, key, (const void *)text,
					strlen(text));
	}
	if (ret == RM_RESULT_OK)
		ret = rm_dict_txn_commit(txn, NULL);
	rm_dict_txn_free(txn);
	rm_dict_free(dict);
	if (ret != RM_RESULT_OK) {
		*error_r = rados_connect_error(ret);
		return -1;
	}
	return 0;
}

static int rados_acl_object_update(struct acl_object *aclobj,
				   const struct acl_rights_update *update)
{
	struct acl_backend *backend = aclobj->backend;
	const char *path, *dir, *error = NULL;
	int ret;

	T_BEGIN {
		path = rados_acl_local_path(backend->list, aclobj->name);
		if (path != NULL) {
			/* vfile locks the file in its directory, then
			   refreshes: from RADOS, as it must not be stale */
			dir = t_strdup_until(path, strrchr(path, '/'));
			if (mkdir_parents(dir, 0700) < 0 && errno != EEXIST)
				i_error("rados: mkdir(%s) failed: %m", dir);
			rados_acl_set_seen(path, FALSE);
		}
		ret = vfile_v.object_update(aclobj, update);
		if (ret == 0 && path != NULL &&
		    rados_acl_store(backend, aclobj->name, path, &error) < 0) {
			e_error(backend->list->ns->user->event,
				"rados: storing the ACL of mailbox %s: %s",
				aclobj->name, error);
			/* the next refresh brings RADOS's text back */
			rados_acl_set_seen(path, FALSE);
			rados_acl_api.cache_flush(backend->cache, aclobj->name);
			ret = -1;
		}
	} T_END;
	return ret;
}


static void rados_acl_entry_cb(void *userdata, const char *key,
			       size_t key_len, const uint8_t *value,
			       size_t value_len)
{
	struct rados_acl_entries *e = userdata;
	size_t plen = strlen(RADOS_ACL_KEY_PREFIX);

	if (key_len <= plen || strncmp(key, RADOS_ACL_KEY_PREFIX, plen) != 0)
		return;
	hash_table_insert(e->values, p_strndup(e->pool, key + plen,
					       key_len - plen),
			  p_strndup(e->pool, value, value_len));
}

int rados_acl_entries_read(struct mailbox_list *list,
			   struct rados_acl_entries *entries_r,
			   const char **error_r)
{
	struct rm_dict *dict;
	enum rm_result ret;

	i_zero(entries_r);
	entries_r->pool = pool_alloconly_create("rados acl entries", 1024);
	hash_table_create(&entries_r->values, entries_r->pool, 0, str_hash,
			  strcmp);
	dict = rados_acl_dict(list, error_r);
	if (dict == NULL)
		return -1;
	ret = rm_dict_iterate(dict, "priv/rados-acl", TRUE,
			      rados_acl_entry_cb, entries_r);
	rm_dict_free(dict);
	if (ret != RM_RESULT_OK) {
		*error_r = rados_connect_error(ret);
		return -1;
	}
	return 0;
}

void rados_acl_entries_free(struct rados_acl_entries *entries)
{
	hash_table_destroy(&entries->values);
	pool_unref(&entries->pool);
}

/* The acl backend of a rados list whose ACLs are kept in RADOS, else NULL. */
static struct acl_backend *rados_acl_backend(struct mailbox_list *list)
{
	struct acl_mailbox_list *alist;

	if (!rados_acl_found || strcmp(list->name, RADOS_LIST_NAME) != 0)
		return NULL;
	alist = MODULE_CONTEXT(list, *rados_acl_api.list_module);
	if (alist == NULL || alist->rights.backend == NULL ||
	    alist->rights.backend->v.object_update != rados_acl_object_update)
		return NULL;
	return alist->rights.backend;
}

void rados_acl_namespace_storage_added(struct mail_namespace *ns)
{
	struct acl_mailbox_list *alist;
	struct acl_backend *backend;

	if (strcmp(ns->list->name, RADOS_LIST_NAME) != 0 ||
	    !rados_acl_api_lookup())
		return;
	/* acl's own hook (lib01) has run: the backend exists */
	alist = MODULE_CONTEXT(ns->list, *rados_acl_api.list_module);
	if (alist == NULL || alist->rights.backend == NULL)
		return;
	backend = alist->rights.backend;
	if (vfile_v.object_update == NULL)
		vfile_v = backend->v;
	backend->v.object_refresh_cache = rados_acl_object_refresh_cache;
	backend->v.object_update = rados_acl_object_update;
	backend->v.nonowner_lookups_iter_init = rados_acl_nonowner_iter_init;
	backend->v.nonowner_lookups_iter_next = rados_acl_nonowner_iter_next;
	backend->v.nonowner_lookups_iter_deinit =
		rados_acl_nonowner_iter_deinit;
}

void rados_acl_prefetch(struct mailbox_list *list,
			const ARRAY_TYPE(const_string) *names)
{
	struct acl_backend *backend = rados_acl_backend(list);
	struct rados_acl_entries entries;
	ARRAY_TYPE(const_string) todo;
	const char *name, *path, *error;

	if (backend == NULL)
		return;
	/* a file already seen in this run may be one vfile has just updated,
	   and not yet written to RADOS */
	t_array_init(&todo, array_count(names));
	array_foreach_elem(names, name) {
		path = rados_acl_local_path(list, name);
		if (path != NULL && !rados_acl_seen(path))
			array_push_back(&todo, &name);
	}
	if (array_count(&todo) == 0)
		return;
	if (rados_acl_entries_read(list, &entries, &error) == 0) {
		array_foreach_elem(&todo, name) {
			path = rados_acl_local_path(list, name);
			if (rados_acl_materialise(backend, name, path,
				hash_table_lookup(entries.values, name),
				&error) < 0)
				break;
		}
	}
	rados_acl_entries_free(&entries);
}

/* Applies `txn`'s changes; 0, or -1 with the list's error set. */
static int rados_acl_commit(struct mailbox_list *list, struct rm_dict *dict,
			    struct rm_dict_txn *txn, const char *what)
{
	enum rm_result ret = rm_dict_txn_commit(txn, NULL);

	rm_dict_txn_free(txn);
	rm_dict_free(dict);
	if (ret != RM_RESULT_OK) {
		rados_list_set_error(list, ret, what);
		return -1;
	}
	return 0;
}

int rados_acl_mailbox_deleted(struct mailbox_list *list, const char *name)
{
	struct rm_dict *dict;
	struct rm_dict_txn *txn;
	const char *error;

	if (rados_acl_backend(list) == NULL)
		return 0;
	dict = rados_acl_dict(list, &error);
	if (dict == NULL ||
	    rm_dict_txn_begin(dict, &txn) != RM_RESULT_OK) {
		rm_dict_free(dict);
		mailbox_list_set_critical(list, "rados: deleting the ACL: %s",
					  dict == NULL ? error : "no txn");
		return -1;
	}
	(void)rm_dict_txn_unset(txn, t_strconcat(RADOS_ACL_KEY_PREFIX, name,
						 NULL));
	return rados_acl_commit(list, dict, txn, "deleting the ACL");
}

int rados_acl_mailbox_renamed(struct mailbox_list *list, const char *oldname,
			      const char *newname)
{
	struct rados_acl_entries entries;
	struct hash_iterate_context *iter;
	struct rm_dict *dict = NULL;
	struct rm_dict_txn *txn = NULL;
	const char *error = NULL;
	char *name, *value, sep = RADOS_LIST_SEP;
	size_t oldlen = strlen(oldname);
	enum rm_result ret = RM_RESULT_OK;

	if (rados_acl_backend(list) == NULL)
		return 0;
	if (rados_acl_entries_read(list, &entries, &error) < 0 ||
	    (dict = rados_acl_dict(list, &error)) == NULL) {
		rados_acl_entries_free(&entries);
		mailbox_list_set_critical(list, "rados: moving ACLs: %s",
					  error);
		return -1;
	}
	ret = rm_dict_txn_begin(dict, &txn);
	iter = hash_table_iterate_init(entries.values);
	while (ret == RM_RESULT_OK &&
	       hash_table_iterate(iter, entries.values, &name, &value)) {
		if (strncmp(name, oldname, oldlen) != 0 ||
		    (name[oldlen] != '\0' && name[oldlen] != sep))
			continue;
		/* the mailbox itself or one of its children */
		ret = rm_dict_txn_unset(txn, t_strconcat(RADOS_ACL_KEY_PREFIX,
							 name, NULL));
		if (ret == RM_RESULT_OK) {
			ret = rm_dict_txn_set(txn, t_strconcat(
				RADOS_ACL_KEY_PREFIX, newname, name + oldlen,
				NULL), (const void *)value, strlen(value));
		}
	}
	hash_table_iterate_deinit(&iter);
	rados_acl_entries_free(&entries);
	if (ret != RM_RESULT_OK) {
		rm_dict_txn_free(txn);
		rm_dict_free(dict);
		rados_list_set_error(list, ret, "moving ACLs");
		return -1;
	}
	return rados_acl_commit(list, dict, txn, "moving ACLs");
}
