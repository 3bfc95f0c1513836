#ifndef RADOS_LMTP_H
#define RADOS_LMTP_H

/* In the lmtp binary: wraps every LMTP client's cmd_rcpt so that recipients
   whose user name can never be stored are refused with 550 5.1.3 at RCPT.
   Elsewhere: nothing. Called from the plugin's init and deinit. */
void rados_lmtp_init(void);
void rados_lmtp_deinit(void);

#endif
