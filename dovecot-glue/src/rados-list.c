/* The mailbox list "rados": mailbox names and subscriptions come from RADOS
   (rm_user_mailbox_list, rm_user_subscriptions). The only local files are the
   index caches, one flat directory per mailbox under the INDEX directory. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "hex-binary.h"
#include "sha1.h"
#include "imap-match.h"
#include "unlink-directory.h"
#include "mail-index-alloc-cache.h"
#include "mailbox-tree.h"
#include "mailbox-list-subscriptions.h"
#include "rados-connect.h"
#include "rados-storage.h"
#include "rados-list-notify.h"

/* Escaped names longer than this are replaced by their SHA-1 (file names are
   limited to 255 bytes). */
#define RADOS_LIST_MAX_DIR_NAME 200
#define RADOS_LIST_MAILBOXES_DIR "mailboxes"

struct rados_mailbox_list {
	struct mailbox_list list;
};

struct rados_list_iterate_context {
	struct mailbox_list_iterate_context ctx;
	struct mailbox_tree_context *tree;
	struct mailbox_tree_iterate_context *iter;
	struct mailbox_info info;
};

#define RADOS_LIST(s) container_of(s, struct rados_mailbox_list, list)

static struct mailbox_list *rados_list_alloc(void)
{
	struct rados_mailbox_list *list;
	pool_t pool;

	pool = pool_alloconly_create("rados list", 2048);
	list = p_new(pool, struct rados_mailbox_list, 1);
	list->list = rados_mailbox_list;
	list->list.pool = pool;
	return &list->list;
}

static int rados_list_init(struct mailbox_list *list, const char **error_r)
{
	/* as rados_storage_create */
	return rados_user_open(rados_ns_owner(list->ns), list->ns->user->event,
			       error_r);
}

static void rados_list_deinit(struct mailbox_list *list)
{
	pool_unref(&list->pool);
}

static char rados_list_get_hierarchy_sep(struct mailbox_list *list ATTR_UNUSED)
{
	return RADOS_LIST_SEP;
}

/* The root of the local index caches, NULL for in-memory indexes. */
static const char *rados_list_index_root(struct mailbox_list *list)
{
	const char *root = list->set.index_dir != NULL ?
		list->set.index_dir : list->set.root_dir;

	return root == NULL || *root == '\0' ? NULL : root;
}

/* A mailbox name as one file name: '/', '%' and a leading '.' escaped as
   %XX, so no name can reach outside its directory or into another's. */
static const char *rados_list_dir_name(const char *name)
{
	string_t *str = t_str_new(strlen(name) + 16);
	unsigned char digest[SHA1_RESULTLEN];
	const char *p;

	for (p = name; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == RADOS_LIST_SEP || c == '%' || c < 0x20 ||
		    (p == name && c == '.'))
			str_printfa(str, "%%%02X", c);
		else
			str_append_c(str, c);
	}
	if (str_len(str) <= RADOS_LIST_MAX_DIR_NAME)
		return str_c(str);
	sha1_get_digest(name, strlen(name), digest);
	return t_strconcat("%H", binary_to_hex(digest, sizeof(digest)), NULL);
}

const char *rados_list_index_dir(struct mailbox_list *list, const char *name)
{
	const char *root = rados_list_index_root(list);

	if (root == NULL)
		return NULL;
	return t_strconcat(root, "/" RADOS_LIST_MAILBOXES_DIR "/",
			   rados_list_dir_name(name), NULL);
}

void rados_list_delete_index_dir(struct mailbox_list *list, const char *name)
{
	const char *dir = rados_list_index_dir(list, name);
	const char *error;

	if (dir == NULL)
		return;
	/* no cached index may keep using the files */
	mail_index_alloc_cache_destroy_unrefed();
	if (unlink_directory(dir, UNLINK_DIRECTORY_FLAG_RMDIR, &error) < 0)
		i_warning("rados: removing the index cache failed: %s", error);
}

static int rados_list_get_path(struct mailbox_list *list, const char *name,
			       enum mailbox_list_path_type type,
			       const char **path_r)
{
	const char *root = rados_list_index_root(list);

	*path_r = NULL;
	if (root == NULL)
		return 0;
	switch (type) {
	case MAILBOX_LIST_PATH_TYPE_DIR:
	case MAILBOX_LIST_PATH_TYPE_MAILBOX:
	case MAILBOX_LIST_PATH_TYPE_CONTROL:
	case MAILBOX_LIST_PATH_TYPE_INDEX:
	case MAILBOX_LIST_PATH_TYPE_INDEX_CACHE:
		/* never mail data: only the local index cache */
		*path_r = name == NULL ? root :
			rados_list_index_dir(list, name);
		return 1;
	case MAILBOX_LIST_PATH_TYPE_LIST_INDEX:
		*path_r = root;
		return 1;
	case MAILBOX_LIST_PATH_TYPE_ALT_DIR:
	case MAILBOX_LIST_PATH_TYPE_ALT_MAILBOX:
	case MAILBOX_LIST_PATH_TYPE_INDEX_PRIVATE:
		break;
	}
	return 0;
}

static const char *
rados_list_get_temp_prefix(struct mailbox_list *list ATTR_UNUSED,
			   bool global ATTR_UNUSED)
{
	return ".temp.";
}

static void rados_list_name_cb(void *userdata, const char *name,
			       size_t name_len)
{
	ARRAY_TYPE(const_string) *names = userdata;
	const char *dup = t_strndup(name, name_len);

	array_push_back(names, &dup);
}

/* Names from RADOS, as a data stack array. */
static int rados_list_names(struct rados_mailbox_list *list, bool subscribed,
			    ARRAY_TYPE(const_string) *names_r)
{
	struct rm_user *user = rados_list_user(&list->list);
	enum rm_result ret;

	t_array_init(names_r, 64);
	if (user == NULL)
		return -1;
	if (subscribed) {
		ret = rm_user_subscriptions(user, "*",
					    rados_list_name_cb, names_r);
	} else {
		ret = rm_user_mailbox_list(user, "*",
					   rados_list_name_cb, names_r);
	}
	if (ret != RM_RESULT_OK) {
		rados_list_set_error(&list->list, ret, subscribed ?
				     "listing subscriptions" :
				     "listing mailboxes");
		return -1;
	}
	return 0;
}

/* A name that is no mailbox but has mailboxes below it (made by CREATE a/b,
   or left by DELETE a) is listed as \Noselect \HasChildren whenever it
   matches, as Dovecot's own storages list their directories: also by
   LIST "*", where the generic code would leave it out. */
static void rados_list_show_parents(struct rados_list_iterate_context *ctx)
{
	struct mailbox_tree_iterate_context *iter;
	struct mailbox_node *node;
	const char *vname;

	iter = mailbox_tree_iterate_init(ctx->tree, NULL, 0);
	while ((node = mailbox_tree_iterate_next(iter, &vname)) != NULL) {
		if ((node->flags & MAILBOX_NONEXISTENT) == 0 ||
		    node->children == NULL ||
		    imap_match(ctx->ctx.glob, vname) != IMAP_MATCH_YES)
			continue;
		node->flags &= ENUM_NEGATE(MAILBOX_NONEXISTENT |
					   MAILBOX_NOCHILDREN);
		node->flags |= MAILBOX_NOSELECT | MAILBOX_CHILDREN |
			MAILBOX_MATCHED;
	}
	mailbox_tree_iterate_deinit(&iter);
}

static int rados_list_build_tree(struct rados_list_iterate_context *ctx)
{
	struct rados_mailbox_list *list = RADOS_LIST(ctx->ctx.list);
	struct mailbox_list_iter_update_context update_ctx;
	ARRAY_TYPE(const_string) names;
	const char *name;

	if (rados_list_names(list, FALSE, &names) < 0)
		return -1;
	if ((list->list.ns->flags & NAMESPACE_FLAG_INBOX_USER) != 0 ||
	    list->list.ns->type == MAIL_NAMESPACE_TYPE_SHARED) {
		/* INBOX always exists: it is created when first opened (also
		   another user's, in shared/<user>/) */
		name = "INBOX";
		array_push_back(&names, &name);
	}
	/* the ACLs of all of them with one RADOS read, not one each */
	rados_acl_prefetch(&list->list, &names);

	i_zero(&update_ctx);
	update_ctx.iter_ctx = &ctx->ctx;
	update_ctx.tree_ctx = ctx->tree;
	update_ctx.glob = ctx->ctx.glob;
	update_ctx.match_parents = TRUE;
	array_foreach_elem(&names, name) {
		mailbox_list_iter_update(&update_ctx,
			mailbox_list_get_vname(&list->list, name));
	}
	rados_list_show_parents(ctx);
	return 0;
}

static struct mailbox_list_iterate_context *
rados_list_iter_init(struct mailbox_list *list, const char *const *patterns,
		     enum mailbox_list_iter_flags flags)
{
	struct rados_list_iterate_context *ctx;
	char ns_sep = mail_namespace_get_sep(list->ns);
	pool_t pool;
	int ret;

	if ((flags & MAILBOX_LIST_ITER_SELECT_SUBSCRIBED) != 0) {
		/* the generic code, over the subscriptions that
		   rados_list_subscriptions_refresh() read from RADOS */
		return mailbox_list_subscriptions_iter_init(list, patterns,
							    flags);
	}

	pool = pool_alloconly_create("mailbox list rados iter", 1024);
	ctx = p_new(pool, struct rados_list_iterate_context, 1);
	ctx->ctx.pool = pool;
	ctx->ctx.list = list;
	ctx->ctx.flags = flags;
	ctx->ctx.glob = imap_match_init_multiple(pool, patterns, TRUE, ns_sep);
	array_create(&ctx->ctx.module_contexts, pool, sizeof(void *), 5);
	ctx->info.ns = list->ns;

	ctx->tree = mailbox_tree_init(ns_sep);
	mailbox_tree_set_parents_nonexistent(ctx->tree);
	T_BEGIN {
		ret = rados_list_build_tree(ctx);
	} T_END;
	if (ret < 0)
		ctx->ctx.failed = TRUE;
	ctx->iter = mailbox_tree_iterate_init(ctx->tree, NULL, 0);
	return &ctx->ctx;
}

static const struct mailbox_info *
rados_list_iter_next(struct mailbox_list_iterate_context *_ctx)
{
	struct rados_list_iterate_context *ctx =
		container_of(_ctx, struct rados_list_iterate_context, ctx);
	struct mailbox_node *node;
	const char *vname;

	if ((_ctx->flags & MAILBOX_LIST_ITER_SELECT_SUBSCRIBED) != 0)
		return mailbox_list_subscriptions_iter_next(_ctx);
	if (_ctx->failed)
		return NULL;

	do {
		node = mailbox_tree_iterate_next(ctx->iter, &vname);
		if (node == NULL)
			return NULL;
	} while ((node->flags & MAILBOX_MATCHED) == 0);

	ctx->info.vname = vname;
	ctx->info.flags = node->flags & ENUM_NEGATE(MAILBOX_MATCHED);
	if ((_ctx->flags & MAILBOX_LIST_ITER_RETURN_SUBSCRIBED) != 0) {
		mailbox_list_set_subscription_flags(_ctx->list, vname,
						    &ctx->info.flags);
	}
	return &ctx->info;
}

static int rados_list_iter_deinit(struct mailbox_list_iterate_context *_ctx)
{
	struct rados_list_iterate_context *ctx =
		container_of(_ctx, struct rados_list_iterate_context, ctx);
	int ret = _ctx->failed ? -1 : 0;

	if ((_ctx->flags & MAILBOX_LIST_ITER_SELECT_SUBSCRIBED) != 0)
		return mailbox_list_subscriptions_iter_deinit(_ctx);

	mailbox_tree_iterate_deinit(&ctx->iter);
	mailbox_tree_deinit(&ctx->tree);
	pool_unref(&_ctx->pool);
	return ret;
}

static int rados_list_subscriptions_refresh(struct mailbox_list *src_list,
					    struct mailbox_list *dest_list)
{
	struct rados_mailbox_list *list = RADOS_LIST(src_list);
	char dest_sep = mail_namespace_get_sep(dest_list->ns);
	ARRAY_TYPE(const_string) names;
	struct mailbox_node *node;
	const char *name;
	bool created;
	int ret = 0;

	T_BEGIN {
		if (rados_list_names(list, TRUE, &names) < 0) {
			ret = -1;
		} else {
			if (dest_list->subscriptions != NULL)
				mailbox_tree_deinit(&dest_list->subscriptions);
			dest_list->subscriptions = mailbox_tree_init(dest_sep);
			array_foreach_elem(&names, name) {
				node = mailbox_tree_get(
					dest_list->subscriptions,
					mailbox_list_get_vname(dest_list, name),
					&created);
				node->flags = MAILBOX_SUBSCRIBED;
			}
		}
	} T_END;
	if (ret < 0 && src_list != dest_list) {
		enum mail_error error;
		const char *errstr =
			mailbox_list_get_last_error(src_list, &error);

		mailbox_list_set_error(dest_list, error, errstr);
	}
	return ret;
}

static int rados_list_set_subscribed(struct mailbox_list *_list,
				     const char *name, bool set)
{
	struct rm_user *user = rados_list_user(_list);
	enum rm_result ret;

	if (user == NULL)
		return -1;
	ret = set ? rm_user_subscribe(user, name) :
		rm_user_unsubscribe(user, name);
	if (ret != RM_RESULT_OK) {
		rados_list_set_error(_list, ret, set ? "subscribing" :
				     "unsubscribing");
		return -1;
	}
	return 0;
}

static int rados_list_delete_mailbox(struct mailbox_list *_list,
				     const char *name)
{
	struct rm_user *user = rados_list_user(_list);
	enum rm_result ret;

	if (user == NULL)
		return -1;
	/* first the ACL: a mailbox created again with the name must not get
	   the old one's */
	if (rados_acl_mailbox_deleted(_list, name) < 0)
		return -1;
	ret = rm_user_mailbox_delete(user, name);
	if (ret == RM_RESULT_NOT_FOUND) {
		mailbox_list_set_error(_list, MAIL_ERROR_NOTFOUND,
			T_MAILBOX_LIST_ERR_NOT_FOUND(_list, name));
		return -1;
	}
	if (ret != RM_RESULT_OK) {
		rados_list_set_error(_list, ret, "deleting mailbox");
		return -1;
	}
	rados_list_delete_index_dir(_list, name);
	return 0;
}

static int rados_list_delete_dir(struct mailbox_list *list, const char *name)
{
	/* RADOS has no directories, only mailboxes */
	mailbox_list_set_error(list, MAIL_ERROR_NOTFOUND,
			       T_MAILBOX_LIST_ERR_NOT_FOUND(list, name));
	return -1;
}

static int rados_list_delete_symlink(struct mailbox_list *list,
				     const char *name ATTR_UNUSED)
{
	mailbox_list_set_error(list, MAIL_ERROR_NOTPOSSIBLE, "Not supported");
	return -1;
}

static int rados_list_rename_mailbox(struct mailbox_list *oldlist,
				     const char *oldname,
				     struct mailbox_list *newlist,
				     const char *newname)
{
	struct rm_user *user;
	enum rm_result ret;

	if (oldlist != newlist) {
		mailbox_list_set_error(oldlist, MAIL_ERROR_NOTPOSSIBLE,
			"Can't rename mailboxes across namespaces");
		return -1;
	}
	user = rados_list_user(oldlist);
	if (user == NULL)
		return -1;
	/* one atomic update in RADOS, children included, also below a
	   parent that is no mailbox itself (\NoSelect) */
	ret = rm_user_mailbox_rename(user, oldname, newname);
	if (ret == RM_RESULT_NOT_FOUND) {
		mailbox_list_set_error(oldlist, MAIL_ERROR_NOTFOUND,
			T_MAILBOX_LIST_ERR_NOT_FOUND(oldlist, oldname));
		return -1;
	}
	if (ret == RM_RESULT_ALREADY_EXISTS) {
		mailbox_list_set_error(oldlist, MAIL_ERROR_EXISTS,
				       "Target mailbox already exists");
		return -1;
	}
	if (ret != RM_RESULT_OK) {
		rados_list_set_error(oldlist, ret, "renaming mailbox");
		return -1;
	}
	if (rados_acl_mailbox_renamed(oldlist, oldname, newname) < 0)
		return -1;
	/* the caches of the old names are stale now (an index records its
	   mailbox's GUID, so caches left behind by children are dropped
	   when a mailbox of that name is opened) */
	rados_list_delete_index_dir(oldlist, oldname);
	rados_list_delete_index_dir(oldlist, newname);
	return 0;
}

struct mailbox_list rados_mailbox_list = {
	.name = RADOS_LIST_NAME,
	.props = MAILBOX_LIST_PROP_NO_ROOT | MAILBOX_LIST_PROP_NO_LIST_INDEX |
		MAILBOX_LIST_PROP_AUTOCREATE_DIRS |
		MAILBOX_LIST_PROP_NO_INTERNAL_NAMES,
	.mailbox_name_max_length = MAILBOX_LIST_NAME_MAX_LENGTH,

	.v = {
		.alloc = rados_list_alloc,
		.init = rados_list_init,
		.deinit = rados_list_deinit,
		.get_hierarchy_sep = rados_list_get_hierarchy_sep,
		.get_vname = mailbox_list_default_get_vname,
		.get_storage_name = mailbox_list_default_get_storage_name,
		.get_path = rados_list_get_path,
		.get_temp_prefix = rados_list_get_temp_prefix,
		.iter_init = rados_list_iter_init,
		.iter_next = rados_list_iter_next,
		.iter_deinit = rados_list_iter_deinit,
		.subscriptions_refresh = rados_list_subscriptions_refresh,
		.set_subscribed = rados_list_set_subscribed,
		.delete_mailbox = rados_list_delete_mailbox,
		.delete_dir = rados_list_delete_dir,
		.delete_symlink = rados_list_delete_symlink,
		.rename_mailbox = rados_list_rename_mailbox,
		.notify_init = rados_list_notify_init,
		.notify_next = rados_list_notify_next,
		.notify_deinit = rados_list_notify_deinit,
		.notify_wait = rados_list_notify_wait,
		.notify_flush = rados_list_notify_flush,
	},
};
