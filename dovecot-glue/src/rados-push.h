#ifndef RADOS_PUSH_H
#define RADOS_PUSH_H

/* Change push for IDLE and NOTIFY: the callback runs (in the ioloop) as soon
   as RADOS notifies a change of something watched (a commit to a mailbox, a
   change of the mailbox list) made by any process on any backend, and at
   least every interval_secs in any case (the fallback, for a watch that broke
   and the notifies lost meanwhile). A process that watches nothing pays
   nothing. */

struct rm_user;
struct rm_mailbox;
struct rados_push;

typedef void rados_push_callback_t(void *context);

/* Starts watching nothing; interval_secs 0 = no polling fallback. */
struct rados_push *
rados_push_init(struct rm_user *user, unsigned int interval_secs,
		rados_push_callback_t *callback, void *context);
#define rados_push_init(user, interval_secs, callback, context) \
	rados_push_init(user, interval_secs - \
		CALLBACK_TYPECHECK(callback, void (*)(typeof(context))), \
		(rados_push_callback_t *)callback, context)
/* Watch commits to a mailbox / changes of the user's mailbox list. A watch
   that cannot be set up leaves the polling fallback: returns -1 (logged). */
int rados_push_add_mailbox(struct rados_push *push,
			   const struct rm_mailbox *mailbox);
/* The same for the mailbox called name (-1 also when there is none). */
int rados_push_add_mailbox_name(struct rados_push *push, const char *name);
int rados_push_add_list(struct rados_push *push);
void rados_push_deinit(struct rados_push **push);

#endif
