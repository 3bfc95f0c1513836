/* Which of a user's mailboxes others may see (the acl backend's
   nonowner_lookups_iter_* vfuncs, for a rados list): vfile reads them from a
   local file, dovecot-acl-list, which another backend's SETACL never
   updates; here they come from RADOS, with one listing of the owner's
   mailboxes, which reads all of the owner's ACL texts at once
   (rados_acl_prefetch). Used for LIST in the shared namespace and to rebuild
   acl_shared_dict. */

#include "lib.h"
#include "array.h"
#include "mail-namespace.h"
#include "mailbox-list-private.h"
#include "rados-storage.h"
#include "rados-acl.h"

struct rados_acl_list_context {
	struct acl_mailbox_list_context ctx;
	pool_t pool;
	ARRAY_TYPE(const_string) names;
	unsigned int next;
};

/* True when the mailbox's ACL (with the global ones) lets non-owners see
   it: 1, 0, or -1. */
static int rados_acl_nonowner_visible(struct acl_backend *backend,
				      const char *name)
{
	struct acl_object *aclobj;
	struct acl_object_list_iter *iter;
	struct acl_rights rights;
	int ret = 0;

	aclobj = rados_acl_api.object_init_from_name(backend, name);
	iter = rados_acl_api.object_list_init(aclobj);
	while (rados_acl_api.object_list_next(iter, &rights)) {
		if (rados_acl_api.has_nonowner_lookup(&rights)) {
			ret = 1;
			break;
		}
	}
	if (rados_acl_api.object_list_deinit(&iter) < 0)
		ret = -1;
	rados_acl_api.object_deinit(&aclobj);
	return ret;
}

/* Names of the owner's mailboxes that non-owners may see. Listing them
   brings their local ACL files in line with RADOS (rados_acl_prefetch). */
static int rados_acl_nonowner_names(struct rados_acl_list_context *ctx)
{
	struct acl_backend *backend = ctx->ctx.backend;
	struct mailbox_list *list = backend->list;
	struct mailbox_list_iterate_context *iter;
	const struct mailbox_info *info;
	const char *name, *error = NULL;
	int ret = 0, vis;

	/* every mailbox: global ACLs may make one visible too */
	iter = mailbox_list_iter_init(list, "*", MAILBOX_LIST_ITER_RAW_LIST |
				      MAILBOX_LIST_ITER_RETURN_NO_FLAGS);
	while (ret == 0 && (info = mailbox_list_iter_next(iter)) != NULL) {
		name = mailbox_list_get_storage_name(list, info->vname);
		vis = rados_acl_nonowner_visible(backend, name);
		if (vis < 0) {
			error = "reading ACLs failed";
			ret = -1;
		} else if (vis > 0) {
			name = p_strdup(ctx->pool, name);
			array_push_back(&ctx->names, &name);
		}
	}
	if (mailbox_list_iter_deinit(&iter) < 0 && ret == 0) {
		error = mailbox_list_get_last_internal_error(list, NULL);
		ret = -1;
	}
	if (ret < 0) {
		e_error(list->ns->user->event,
			"rados: listing the mailboxes shared by %s: %s",
			rados_ns_owner(list->ns)->username, error);
	}
	return ret;
}

struct acl_mailbox_list_context *
rados_acl_nonowner_iter_init(struct acl_backend *backend)
{
	struct rados_acl_list_context *ctx;
	pool_t pool;
	int ret;

	pool = pool_alloconly_create("rados acl nonowner list", 512);
	ctx = p_new(pool, struct rados_acl_list_context, 1);
	ctx->pool = pool;
	ctx->ctx.backend = backend;
	p_array_init(&ctx->names, pool, 16);
	T_BEGIN {
		ret = rados_acl_nonowner_names(ctx);
	} T_END;
	if (ret < 0)
		ctx->ctx.failed = TRUE;
	return &ctx->ctx;
}

bool rados_acl_nonowner_iter_next(struct acl_mailbox_list_context *_ctx,
				  const char **name_r)
{
	struct rados_acl_list_context *ctx =
		container_of(_ctx, struct rados_acl_list_context, ctx);

	if (_ctx->failed || ctx->next >= array_count(&ctx->names))
		return FALSE;
	*name_r = array_idx_elem(&ctx->names, ctx->next++);
	return TRUE;
}

int rados_acl_nonowner_iter_deinit(struct acl_mailbox_list_context *_ctx)
{
	struct rados_acl_list_context *ctx =
		container_of(_ctx, struct rados_acl_list_context, ctx);
	int ret = _ctx->failed ? -1 : 0;

	pool_unref(&ctx->pool);
	return ret;
}

