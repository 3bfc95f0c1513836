/* A seekable istream over a mail body in RADOS (rm_body_read). A seek
   outside the buffered bytes repositions the body with rm_body_seek, which
   reads nothing itself: the next read starts there. The library verifies the
   checksum when the body was read in order to its end (a whole FETCH BODY[]);
   partial reads after seeks are not verified. The size is known from the
   start. */

#include "lib.h"
#include "istream-private.h"
#include "rados-storage.h"

#define RADOS_ISTREAM_MAX_BUFFER_SIZE (128 * 1024)

struct rados_istream {
	struct istream_private istream;

	struct rm_body *body;
	uoff_t size;
	/* body offset of the next byte rm_body_read() returns */
	uoff_t body_pos;
};

static void rados_istream_close(struct iostream_private *stream,
				bool close_parent ATTR_UNUSED)
{
	struct rados_istream *rstream =
		container_of(stream, struct rados_istream, istream.iostream);

	rm_body_free(rstream->body);
	rstream->body = NULL;
}

static ssize_t rados_istream_fail(struct rados_istream *rstream,
				  enum rm_result ret, const char *what)
{
	struct istream_private *stream = &rstream->istream;

	stream->istream.stream_errno = ret == RM_RESULT_NOT_FOUND ?
		ENOENT : EIO;
	io_stream_set_error(&stream->iostream, "rados: %s failed: %s", what,
			    rados_last_error(ret));
	return -1;
}

/* Positions the body at offset: O(1), nothing is read again (rm_body_seek). */
static ssize_t rados_istream_position(struct rados_istream *rstream,
				      uoff_t offset)
{
	enum rm_result ret;

	ret = rm_body_seek(rstream->body, offset);
	if (ret != RM_RESULT_OK)
		return rados_istream_fail(rstream, ret, "seeking body");
	rstream->body_pos = offset;
	return 0;
}

static ssize_t rados_istream_read(struct istream_private *stream)
{
	struct rados_istream *rstream =
		container_of(stream, struct rados_istream, istream);
	uoff_t offset = stream->istream.v_offset + (stream->pos - stream->skip);
	enum rm_result ret;
	size_t size, n;

	if (rstream->body_pos != offset) {
		if (offset >= rstream->size) {
			stream->istream.eof = TRUE;
			return -1;
		}
		if (rados_istream_position(rstream, offset) < 0)
			return -1;
	}
	if (!i_stream_try_alloc(stream, 1, &size))
		return -2;
	ret = rm_body_read(rstream->body, stream->w_buffer + stream->pos, size,
			   &n);
	if (ret != RM_RESULT_OK)
		return rados_istream_fail(rstream, ret, "reading body");
	if (n == 0) {
		/* the end (the checksum matched, if the body was read
		   in order from its start) */
		stream->istream.eof = TRUE;
		return -1;
	}
	rstream->body_pos += n;
	stream->pos += n;
	return (ssize_t)n;
}

static void rados_istream_seek(struct istream_private *stream,
			       uoff_t v_offset, bool mark ATTR_UNUSED)
{
	uoff_t buf_start = stream->istream.v_offset - stream->skip;

	if (v_offset >= buf_start && v_offset - buf_start <= stream->pos) {
		/* still in the buffer */
		stream->skip = v_offset - buf_start;
	} else {
		/* the next read() repositions the body */
		stream->skip = stream->pos = 0;
	}
	stream->istream.v_offset = v_offset;
	stream->istream.eof = FALSE;
}

static int rados_istream_stat(struct istream_private *stream,
			      bool exact ATTR_UNUSED)
{
	struct rados_istream *rstream =
		container_of(stream, struct rados_istream, istream);

	stream->statbuf.st_size = rstream->size;
	return 0;
}

static int rados_istream_get_size(struct istream_private *stream,
				  bool exact ATTR_UNUSED, uoff_t *size_r)
{
	struct rados_istream *rstream =
		container_of(stream, struct rados_istream, istream);

	*size_r = rstream->size;
	return 1;
}

struct istream *rados_istream_create(struct rm_body *body, uoff_t size)
{
	struct rados_istream *rstream;

	rstream = i_new(struct rados_istream, 1);
	rstream->body = body;
	rstream->size = size;

	rstream->istream.max_buffer_size = RADOS_ISTREAM_MAX_BUFFER_SIZE;
	rstream->istream.iostream.close = rados_istream_close;
	rstream->istream.read = rados_istream_read;
	rstream->istream.seek = rados_istream_seek;
	rstream->istream.stat = rados_istream_stat;
	rstream->istream.get_size = rados_istream_get_size;

	rstream->istream.istream.readable_fd = FALSE;
	rstream->istream.istream.blocking = TRUE;
	rstream->istream.istream.seekable = TRUE;
	return i_stream_create(&rstream->istream, NULL, -1, 0);
}
