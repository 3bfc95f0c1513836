/* Change push for IDLE and NOTIFY (rados-push.h): a RADOS watch (rm_watch,
   whose fd becomes readable when a watched object is notified) in the
   ioloop, and a timeout as the fallback. */

#include "lib.h"
#include "ioloop.h"
#include "rados-connect.h"
#include "rados-push.h"

#include <rados_mail.h>

struct rados_push {
	struct rm_user *user;
	struct rm_watch *watch;
	struct io *io;
	struct timeout *to;
	unsigned int interval_secs;

	rados_push_callback_t *callback;
	void *context;
};

static void rados_push_fire(struct rados_push *push)
{
	if (push->to != NULL)
		timeout_reset(push->to);
	push->callback(push->context);
}

static void rados_push_readable(struct rados_push *push)
{
	/* RM_WATCH_LOST too: the watch was set up again, changes made
	   meanwhile were not notified: the callback looks anyway */
	if (rm_watch_take(push->watch) != 0)
		rados_push_fire(push);
}


#undef rados_push_init
struct rados_push *
rados_push_init(struct rm_user *user, unsigned int interval_secs,
		rados_push_callback_t *callback, void *context)
{
	struct rados_push *push = i_new(struct rados_push, 1);

	push->user = user;
	push->interval_secs = interval_secs;
	push->callback = callback;
	push->context = context;
	if (interval_secs > 0) {
		push->to = timeout_add(interval_secs * 1000,
				       rados_push_fire, push);
	}
	return push;
}

/* The watch, made on first use. */
static int rados_push_watch(struct rados_push *push)
{
	enum rm_result ret;

	if (push->watch != NULL)
		return 0;
	ret = rm_watch_new(push->user, &push->watch);
	if (ret != RM_RESULT_OK) {
		i_warning("rados: no push, polling every %u s: %s",
			  push->interval_secs, rados_connect_error(ret));
		return -1;
	}
	push->io = io_add(rm_watch_fd(push->watch), IO_READ,
			  rados_push_readable, push);
	return 0;
}

int rados_push_add_mailbox(struct rados_push *push,
			   const struct rm_mailbox *mailbox)
{
	enum rm_result ret;

	if (rados_push_watch(push) < 0)
		return -1;
	ret = rm_watch_add_mailbox(push->watch, mailbox);
	if (ret != RM_RESULT_OK) {
		i_warning("rados: no push for a mailbox, polling every %u s: %s",
			  push->interval_secs, rados_connect_error(ret));
		return -1;
	}
	return 0;
}

int rados_push_add_mailbox_name(struct rados_push *push, const char *name)
{
	enum rm_result ret;

	if (rados_push_watch(push) < 0)
		return -1;
	ret = rm_watch_add_mailbox_name(push->watch, name);
	if (ret != RM_RESULT_OK && ret != RM_RESULT_NOT_FOUND) {
		i_warning("rados: no push for mailbox %s, polling every %u s: %s",
			  name, push->interval_secs, rados_connect_error(ret));
		return -1;
	}
	return ret == RM_RESULT_OK ? 0 : -1;
}

int rados_push_add_list(struct rados_push *push)
{
	enum rm_result ret;

	if (rados_push_watch(push) < 0)
		return -1;
	ret = rm_watch_add_list(push->watch);
	if (ret != RM_RESULT_OK) {
		i_warning("rados: no push for the mailbox list, "
			  "polling every %u s: %s",
			  push->interval_secs, rados_connect_error(ret));
		return -1;
	}
	return 0;
}


void rados_push_deinit(struct rados_push **_push)
{
	struct rados_push *push = *_push;

	if (push == NULL)
		return;
	*_push = NULL;
	io_remove(&push->io);
	timeout_remove(&push->to);
	rm_watch_free(push->watch);
	i_free(push);
}
