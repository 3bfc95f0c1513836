#ifndef RADOS_SETTINGS_H
#define RADOS_SETTINGS_H

#include <rados_mail.h>

struct mail_user;

/* Passes every rados_<key> plugin setting of the user to rm_config_set (which
   knows the keys: an unknown key or a bad value fails there, named). Returns 0,
   or -1 with *error_r naming the setting. */
int rados_settings_apply(struct mail_user *user, struct rm_config *cfg,
			 const char **error_r);

/* Checks a new mail user's settings: its userdb must not set any rados_*
   setting (one store serves every user of a process, so they must not vary
   per user), and the first user of the process validates every rados_*
   setting (rados_settings_apply) before anything is opened. Returns 0, or -1
   with *error_r. */
int rados_settings_check_user(struct mail_user *user, const char **error_r);

#endif
