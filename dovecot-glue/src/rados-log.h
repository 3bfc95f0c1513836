#ifndef RADOS_LOG_H
#define RADOS_LOG_H

struct module;

/* The library's log events (rm_log_set_handler) go to Dovecot's log on the
   event of the most recently created mail user that is still alive (so with
   its "imap(user)<pid><session>:" prefix), or through i_*() without one:
   errors as errors, warnings as warnings, info and debug as debug lines,
   which appear with mail_debug = yes only. The level asked of the library
   follows mail_debug: debug while a user with mail_debug is alive, else
   warnings, so debug events cost nothing otherwise. */
void rados_log_init(struct module *module);
/* Delivers what the library's threads logged last, then stops (plugin
   deinit). */
void rados_log_deinit(void);

#endif
