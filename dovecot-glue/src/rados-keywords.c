/* Keywords between RADOS and the local index: a mail's keywords as RADOS
   reported them written into the index (rados-sync.c), in time linear in the
   mail's keywords. (It compared every name the index had with every name
   RADOS had: a sync of a mail with 10,000 keywords made 10^8 string
   comparisons, and each batch of keywords stored on one mail made the next
   batch's sync slower, issue 14.) */

#include "lib.h"
#include "array.h"
#include "mail-index.h"
#include "rados-storage.h"

void rados_keywords_sync(struct mail_index *index,
			 struct mail_index_view *view,
			 struct mail_index_transaction *trans, uint32_t seq,
			 const char *const *wanted, unsigned int wanted_count,
			 bool is_new)
{
	const ARRAY_TYPE(keywords) *names = mail_index_get_keywords(index);
	ARRAY_TYPE(keyword_indexes) cur_idx;
	ARRAY_TYPE(const_string) add, remove;
	struct mail_keywords *kw;
	unsigned int i, idx, count;
	bool *has, *wants;
	const char *name;

	t_array_init(&add, 8);
	t_array_init(&remove, 8);
	t_array_init(&cur_idx, 8);
	if (!is_new)
		mail_index_lookup_keywords(view, seq, &cur_idx);

	/* by index keyword number: whether the mail has it, and whether
	   RADOS wants it (names RADOS has that the index doesn't know yet
	   are added) */
	count = array_count(names);
	has = t_new(bool, count + 1);
	wants = t_new(bool, count + 1);
	array_foreach_elem(&cur_idx, idx) {
		if (idx < count)
			has[idx] = TRUE;
	}
	for (i = 0; i < wanted_count; i++) {
		if (mail_index_keyword_lookup(index, wanted[i], &idx) &&
		    idx < count) {
			wants[idx] = TRUE;
			if (has[idx])
				continue;
		}
		array_push_back(&add, &wanted[i]);
	}
	array_foreach_elem(&cur_idx, idx) {
		if (idx < count && !wants[idx]) {
			name = array_idx_elem(names, idx);
			array_push_back(&remove, &name);
		}
	}

	if (array_count(&remove) > 0) {
		array_append_zero(&remove);
		kw = mail_index_keywords_create(index, array_front(&remove));
		mail_index_update_keywords(trans, seq, MODIFY_REMOVE, kw);
		mail_index_keywords_unref(&kw);
	}
	if (array_count(&add) > 0) {
		array_append_zero(&add);
		kw = mail_index_keywords_create(index, array_front(&add));
		mail_index_update_keywords(trans, seq, MODIFY_ADD, kw);
		mail_index_keywords_unref(&kw);
	}
}
