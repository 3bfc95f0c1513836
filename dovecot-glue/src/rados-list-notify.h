#ifndef RADOS_LIST_NOTIFY_H
#define RADOS_LIST_NOTIFY_H

#include "mailbox-list-notify.h"

/* The notify vfuncs of the mailbox list "rados" (NOTIFY, RFC 5465). */
int rados_list_notify_init(struct mailbox_list *list,
			   enum mailbox_list_notify_event mask,
			   struct mailbox_list_notify **notify_r);
int rados_list_notify_next(struct mailbox_list_notify *notify,
			   const struct mailbox_list_notify_rec **rec_r);
void rados_list_notify_deinit(struct mailbox_list_notify *notify);
void rados_list_notify_wait(struct mailbox_list_notify *notify,
			    mailbox_list_notify_callback_t *callback,
			    void *context);
void rados_list_notify_flush(struct mailbox_list_notify *notify);

#endif
