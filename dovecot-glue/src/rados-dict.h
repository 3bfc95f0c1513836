#ifndef RADOS_DICT_H
#define RADOS_DICT_H

/* The dict driver "rados" (rados-dict.c). */
extern struct dict dict_driver_rados;

void rados_dict_register(void);
void rados_dict_unregister(void);

#endif
