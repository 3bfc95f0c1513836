#ifndef RADOS_CONNECT_H
#define RADOS_CONNECT_H

#include <rados_mail.h>

struct mail_user;
struct rm_store;

/* The process's store, opened at the first call from the user's plugin
   settings rados_<key> (rados_settings_apply: every key of rm_config_set). One
   store serves every user of the process, so these settings must not vary per
   user (rados_settings_check_user refuses userdb overrides). Returns 0, or -1
   with *error_r (the cluster unreachable within rados_timeout, a bad
   setting). */
int rados_connect_user(struct mail_user *user, struct rm_store **store_r,
		       const char **error_r);
/* Whether the last failure to open a store was temporary (the cluster did not
   answer in time): the caller should try again later, not give up. */
bool rados_connect_failed_temporarily(void);
/* Notes a call's result: RM_RESULT_UNAVAILABLE (the cluster did not answer
   within rados_timeout) is remembered with its time. */
void rados_note_result(enum rm_result result);
/* Whether a call found the cluster not answering less than a second ago.
   The callers that go to RADOS then fail at once with RM_RESULT_UNAVAILABLE
   instead of waiting another timeout, so that the rest of the IMAP command or
   LMTP delivery that met the timeout is refused within one rados_timeout,
   not one per operation (issue 13). */
bool rados_unavailable_now(void);
/* The process's store if it was opened, else NULL. Not owned by the caller. */
struct rm_store *rados_connect_process_store(void);
/* A new store from "key=value:key=value..." (rm_config_set keys); the caller
   frees it with rm_store_free(). Returns 0 or -1 with *error_r. */
int rados_connect_uri(const char *args, struct rm_store **store_r,
		      const char **error_r);
/* The message of the last ABI failure on this thread, or the result's name
   when there is none (data stack). */
const char *rados_last_error(int result);
/* The same, prefixed by the result's name, for logs. */
const char *rados_connect_error(int result);
/* Frees the process's store (plugin deinit). */
void rados_connect_deinit(void);

#endif
