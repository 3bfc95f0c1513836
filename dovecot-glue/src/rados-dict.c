/* Dict driver "rados": Dovecot dicts (priv/ and shared/ keys) in omap, through
   the C ABI's rm_dict. Every operation is synchronous; a commit reports
   DICT_COMMIT_RET_OK only when RADOS acknowledged the write.

   URI: "rados:" for the process's store (the one the mail storage opened from
   the plugin's rados_* settings), or "rados:key=value:key=value..." with the
   keys of rm_config_set (conf, pool, client_name, namespace_prefix, timeout,
   ...) for a store of the dict's own. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "dict-private.h"
#include "rados-dict.h"
#include "rados-connect.h"
#include "rados-events.h"

#include <rados_mail.h>

struct rados_dict {
	struct dict dict;
	/* Owned when the URI had settings; else the process store (not owned). */
	struct rm_store *store;
	bool own_store;
	/* The rm_dict of the last user seen, reused while the user stays. */
	char *username;
	struct rm_dict *rm;
};

struct rados_dict_entry {
	const char *key;
	const char *value;
};

struct rados_dict_iterate_context {
	struct dict_iterate_context ctx;
	pool_t pool;
	ARRAY(struct rados_dict_entry) entries;
	unsigned int next;
	const char *values[2];
	const char *error;
};

struct rados_dict_transaction_context {
	struct dict_transaction_context ctx;
	struct rm_dict_txn *txn;
	/* The first failure; the commit then fails with it. */
	char *error;
};

static int rados_dict_init(struct dict *driver, const char *uri,
			   const struct dict_settings *set ATTR_UNUSED,
			   struct dict **dict_r, const char **error_r)
{
	struct rados_dict *dict;
	struct rm_store *store = NULL;
	bool own = FALSE;

	if (*uri != '\0') {
		if (rados_connect_uri(uri, &store, error_r) < 0)
			return -1;
		own = TRUE;
	}
	/* Without settings the process store is taken at the first operation:
	   quota and mail_attribute_dict open their dicts while the mail user is
	   being created, before the rados storage has opened the store. */
	dict = i_new(struct rados_dict, 1);
	dict->dict = *driver;
	dict->store = store;
	dict->own_store = own;
	*dict_r = &dict->dict;
	return 0;
}

static void rados_dict_deinit(struct dict *_dict)
{
	struct rados_dict *dict = container_of(_dict, struct rados_dict, dict);

	rm_dict_free(dict->rm);
	i_free(dict->username);
	if (dict->own_store)
		rm_store_free(dict->store);
	i_free(dict);
}

/* The rm_dict of `username` (NULL: shared keys only). */
static struct rm_dict *
rados_dict_for(struct rados_dict *dict, const char *username,
	       const char **error_r)
{
	enum rm_result ret;
	struct rm_dict *rm = NULL;

	if (username != NULL && *username == '\0')
		username = NULL;
	if (dict->store == NULL) {
		dict->store = rados_connect_process_store();
		if (dict->store == NULL) {
			*error_r = "rados dict: no store: use the rados mail "
				"storage in this process (mail_plugins = rados, "
				"mail_location = rados:...) or give settings in "
				"the URI (rados:conf=...:pool=...)";
			return NULL;
		}
	}
	if (dict->rm != NULL && null_strcmp(dict->username, username) == 0)
		return dict->rm;
	ret = rm_dict_open(dict->store, username, &rm);
	if (ret != RM_RESULT_OK) {
		*error_r = rados_connect_error(ret);
		return NULL;
	}
	rm_dict_free(dict->rm);
	i_free(dict->username);
	dict->rm = rm;
	dict->username = i_strdup(username);
	return rm;
}

struct rados_dict_value {
	pool_t pool;
	const char *value;
};

static void rados_dict_value_cb(void *userdata, const uint8_t *value,
				size_t len)
{
	struct rados_dict_value *v = userdata;

	v->value = p_strndup(v->pool, value, len);
}

static int rados_dict_lookup(struct dict *_dict,
			     const struct dict_op_settings *set, pool_t pool,
			     const char *key, const char **value_r,
			     const char **error_r)
{
	struct rados_dict *dict = container_of(_dict, struct rados_dict, dict);
	struct rados_dict_value v = { .pool = pool, .value = NULL };
	struct rm_dict *rm;
	enum rm_result ret;

	*value_r = NULL;
	rm = rados_dict_for(dict, set->username, error_r);
	if (rm == NULL)
		return -1;
	ret = rm_dict_lookup(rm, key, rados_dict_value_cb, &v);
	if (ret == RM_RESULT_NOT_FOUND)
		return 0;
	if (ret != RM_RESULT_OK) {
		*error_r = t_strdup_printf("rados dict lookup %s: %s", key,
					   rados_connect_error(ret));
		return -1;
	}
	*value_r = v.value;
	return 1;
}

static void rados_dict_entry_cb(void *userdata, const char *key,
				size_t key_len ATTR_UNUSED,
				const uint8_t *value, size_t value_len)
{
	struct rados_dict_iterate_context *ctx = userdata;
	struct rados_dict_entry *e = array_append_space(&ctx->entries);

	e->key = p_strdup(ctx->pool, key);
	e->value = p_strndup(ctx->pool, value, value_len);
}

static int rados_dict_entry_cmp_value(const struct rados_dict_entry *a,
				      const struct rados_dict_entry *b)
{
	return strcmp(a->value, b->value);
}

static struct dict_iterate_context *
rados_dict_iterate_init(struct dict *_dict, const struct dict_op_settings *set,
			const char *path, enum dict_iterate_flags flags)
{
	struct rados_dict *dict = container_of(_dict, struct rados_dict, dict);
	struct rados_dict_iterate_context *ctx;
	struct rm_dict *rm;
	enum rm_result ret;
	const char *error;
	pool_t pool;

	pool = pool_alloconly_create("rados dict iterate", 1024);
	ctx = p_new(pool, struct rados_dict_iterate_context, 1);
	ctx->ctx.dict = _dict;
	ctx->ctx.flags = flags;
	ctx->pool = pool;
	p_array_init(&ctx->entries, pool, 16);

	rm = rados_dict_for(dict, set->username, &error);
	if (rm == NULL) {
		ctx->error = p_strdup(pool, error);
		return &ctx->ctx;
	}
	if ((flags & DICT_ITERATE_FLAG_EXACT_KEY) != 0) {
		struct rados_dict_value v = { .pool = pool, .value = NULL };

		ret = rm_dict_lookup(rm, path, rados_dict_value_cb, &v);
		if (ret == RM_RESULT_OK) {
			struct rados_dict_entry *e =
				array_append_space(&ctx->entries);
			e->key = p_strdup(pool, path);
			e->value = v.value;
		} else if (ret != RM_RESULT_NOT_FOUND) {
			ctx->error = p_strdup(pool, rados_connect_error(ret));
		}
		return &ctx->ctx;
	}
	ret = rm_dict_iterate(rm, path,
			      (flags & DICT_ITERATE_FLAG_RECURSE) != 0,
			      rados_dict_entry_cb, ctx);
	if (ret != RM_RESULT_OK) {
		ctx->error = p_strdup_printf(pool, "rados dict iterate %s: %s",
					     path, rados_connect_error(ret));
		array_clear(&ctx->entries);
	} else if ((flags & DICT_ITERATE_FLAG_SORT_BY_VALUE) != 0) {
		/* Keys come sorted already (SORT_BY_KEY is free). */
		array_sort(&ctx->entries, rados_dict_entry_cmp_value);
	}
	return &ctx->ctx;
}

static bool rados_dict_iterate(struct dict_iterate_context *_ctx,
			       const char **key_r, const char *const **values_r)
{
	struct rados_dict_iterate_context *ctx =
		container_of(_ctx, struct rados_dict_iterate_context, ctx);
	const struct rados_dict_entry *e;

	if (ctx->error != NULL || ctx->next >= array_count(&ctx->entries))
		return FALSE;
	if (_ctx->max_rows > 0 && _ctx->row_count >= _ctx->max_rows)
		return FALSE;
	e = array_idx(&ctx->entries, ctx->next++);
	_ctx->row_count++;
	*key_r = e->key;
	ctx->values[0] = (_ctx->flags & DICT_ITERATE_FLAG_NO_VALUE) != 0 ?
		NULL : e->value;
	ctx->values[1] = NULL;
	*values_r = ctx->values;
	return TRUE;
}

static int rados_dict_iterate_deinit(struct dict_iterate_context *_ctx,
				     const char **error_r)
{
	struct rados_dict_iterate_context *ctx =
		container_of(_ctx, struct rados_dict_iterate_context, ctx);
	int ret = 0;

	if (ctx->error != NULL) {
		*error_r = t_strdup(ctx->error);
		ret = -1;
	}
	pool_unref(&ctx->pool);
	return ret;
}

static struct dict_transaction_context *
rados_dict_transaction_init(struct dict *_dict)
{
	struct rados_dict_transaction_context *ctx;

	ctx = i_new(struct rados_dict_transaction_context, 1);
	ctx->ctx.dict = _dict;
	return &ctx->ctx;
}

static void rados_dict_transaction_free(struct rados_dict_transaction_context *ctx)
{
	rm_dict_txn_free(ctx->txn);
	i_free(ctx->error);
	i_free(ctx);
}

/* The ABI transaction, begun at the first change (the user is known only after
   transaction_init); NULL after a failure, recorded in ctx->error. */
static struct rm_dict_txn *
rados_dict_txn(struct rados_dict_transaction_context *ctx)
{
	struct rados_dict *dict =
		container_of(ctx->ctx.dict, struct rados_dict, dict);
	struct rm_dict *rm;
	enum rm_result ret;
	const char *error;

	if (ctx->error != NULL)
		return NULL;
	if (ctx->txn != NULL)
		return ctx->txn;
	rm = rados_dict_for(dict, ctx->ctx.set.username, &error);
	if (rm == NULL) {
		ctx->error = i_strdup(error);
		return NULL;
	}
	ret = rm_dict_txn_begin(rm, &ctx->txn);
	if (ret != RM_RESULT_OK) {
		ctx->error = i_strdup(rados_connect_error(ret));
		return NULL;
	}
	return ctx->txn;
}

static void rados_dict_txn_result(struct rados_dict_transaction_context *ctx,
				  const char *op, const char *key,
				  enum rm_result ret)
{
	if (ret != RM_RESULT_OK && ctx->error == NULL) {
		ctx->error = i_strdup_printf("rados dict %s %s: %s", op, key,
					     rados_connect_error(ret));
	}
}

static void rados_dict_set(struct dict_transaction_context *_ctx,
			   const char *key, const char *value)
{
	struct rados_dict_transaction_context *ctx =
		container_of(_ctx, struct rados_dict_transaction_context, ctx);
	struct rm_dict_txn *txn = rados_dict_txn(ctx);

	if (txn != NULL) {
		rados_dict_txn_result(ctx, "set", key,
			rm_dict_txn_set(txn, key, (const uint8_t *)value,
					strlen(value)));
	}
}

static void rados_dict_unset(struct dict_transaction_context *_ctx,
			     const char *key)
{
	struct rados_dict_transaction_context *ctx =
		container_of(_ctx, struct rados_dict_transaction_context, ctx);
	struct rm_dict_txn *txn = rados_dict_txn(ctx);

	if (txn != NULL)
		rados_dict_txn_result(ctx, "unset", key,
				      rm_dict_txn_unset(txn, key));
}

static void rados_dict_atomic_inc(struct dict_transaction_context *_ctx,
				  const char *key, long long diff)
{
	struct rados_dict_transaction_context *ctx =
		container_of(_ctx, struct rados_dict_transaction_context, ctx);
	struct rm_dict_txn *txn = rados_dict_txn(ctx);

	if (txn != NULL)
		rados_dict_txn_result(ctx, "atomic_inc", key,
				      rm_dict_txn_atomic_inc(txn, key, diff));
}

static void
rados_dict_transaction_commit(struct dict_transaction_context *_ctx,
			      bool async ATTR_UNUSED,
			      dict_transaction_commit_callback_t *callback,
			      void *context)
{
	struct rados_dict_transaction_context *ctx =
		container_of(_ctx, struct rados_dict_transaction_context, ctx);
	struct rados_dict *dict =
		container_of(_ctx->dict, struct rados_dict, dict);
	struct dict_commit_result result = { .ret = DICT_COMMIT_RET_OK };
	struct rados_op op;
	enum rm_result ret;
	bool not_found = FALSE;

	if (ctx->error != NULL) {
		result.ret = DICT_COMMIT_RET_FAILED;
		result.error = t_strdup(ctx->error);
	} else if (ctx->txn != NULL) {
		/* measured when the dict works on the process's store (the
		   events count that store's operations) */
		if (!dict->own_store)
			rados_op_begin(&op, _ctx->event, "dict_commit");
		ret = rm_dict_txn_commit(ctx->txn, &not_found);
		if (!dict->own_store)
			rados_op_end(&op, ret == RM_RESULT_OK ? 0 : -1);
		if (ret == RM_RESULT_OK) {
			if (not_found)
				result.ret = DICT_COMMIT_RET_NOTFOUND;
		} else {
			/* Unavailable: the write may have happened. */
			result.ret = ret == RM_RESULT_UNAVAILABLE ?
				DICT_COMMIT_RET_WRITE_UNCERTAIN :
				DICT_COMMIT_RET_FAILED;
			result.error = t_strdup_printf("rados dict commit: %s",
				rados_connect_error(ret));
		}
	}
	rados_dict_transaction_free(ctx);
	if (callback != NULL)
		callback(&result, context);
}

static void
rados_dict_transaction_rollback(struct dict_transaction_context *_ctx)
{
	struct rados_dict_transaction_context *ctx =
		container_of(_ctx, struct rados_dict_transaction_context, ctx);

	rados_dict_transaction_free(ctx);
}

struct dict dict_driver_rados = {
	.name = "rados",
	.v = {
		.init = rados_dict_init,
		.deinit = rados_dict_deinit,
		.lookup = rados_dict_lookup,
		.iterate_init = rados_dict_iterate_init,
		.iterate = rados_dict_iterate,
		.iterate_deinit = rados_dict_iterate_deinit,
		.transaction_init = rados_dict_transaction_init,
		.transaction_commit = rados_dict_transaction_commit,
		.transaction_rollback = rados_dict_transaction_rollback,
		.set = rados_dict_set,
		.unset = rados_dict_unset,
		.atomic_inc = rados_dict_atomic_inc,
	},
};

void rados_dict_register(void)
{
	dict_driver_register(&dict_driver_rados);
}

void rados_dict_unregister(void)
{
	dict_driver_unregister(&dict_driver_rados);
}
