#ifndef RADOS_PLUGIN_H
#define RADOS_PLUGIN_H

struct module;

/* lib20_rados_plugin.so: the mail storage "rados", its mailbox list "rados"
   and the dict driver "rados". List it in the global mail_plugins: Dovecot
   2.3 doesn't load a storage from the mail_location prefix by itself. */
extern const char *rados_plugin_version;

void rados_plugin_init(struct module *module);
void rados_plugin_deinit(void);

#endif
