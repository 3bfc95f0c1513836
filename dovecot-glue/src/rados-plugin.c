/* The plugin's entry points: register the storage, the mailbox list and the
   dict driver; at unload, free the process's RADOS store. */

#include "lib.h"
#include "mail-storage-private.h"
#include "mailbox-list-private.h"
#include "rados-storage.h"
#include "rados-dict.h"
#include "rados-connect.h"
#include "rados-events.h"
#include "rados-lmtp.h"
#include "rados-log.h"
#include "rados-plugin.h"

const char *rados_plugin_version = DOVECOT_ABI_VERSION;

static struct mail_storage_hooks rados_mail_storage_hooks = {
	.mail_user_created = rados_mail_user_created,
	.mail_namespace_storage_added = rados_acl_namespace_storage_added,
};

void rados_plugin_init(struct module *module)
{
	rados_log_init(module);
	rados_events_init(module);
	mail_storage_hooks_add(module, &rados_mail_storage_hooks);
	mail_storage_class_register(&rados_storage);
	mailbox_list_register(&rados_mailbox_list);
	rados_dict_register();
	rados_lmtp_init();
	rados_limits_init();
}

void rados_plugin_deinit(void)
{
	rados_lmtp_deinit();
	rados_limits_deinit();
	rados_dict_unregister();
	mailbox_list_unregister(&rados_mailbox_list);
	mail_storage_class_unregister(&rados_storage);
	mail_storage_hooks_remove(&rados_mail_storage_hooks);
	/* the users (and their rm_user handles) are gone by now */
	rados_connect_deinit();
	rados_damage_deinit();
	rados_events_deinit();
	rados_log_deinit();
}
