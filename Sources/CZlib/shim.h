/* The C surface of permessage-deflate (RFC 7692): Debian's zlib (zlib1g-dev). deflateInit2 and
 * inflateInit2 are function-like macros (they pass zlib's version and the stream's size), which do
 * not import into Swift, so each is wrapped here in a static inline function. */
#include <zlib.h>

/* A raw DEFLATE stream (no zlib header or trailer: RFC 7692 §7.2.1) with a 2^windowBits window. */
static inline int herald_deflate_init(z_streamp stream, int level, int windowBits, int memLevel) {
    return deflateInit2(stream, level, Z_DEFLATED, -windowBits, memLevel, Z_DEFAULT_STRATEGY);
}

static inline int herald_inflate_init(z_streamp stream, int windowBits) {
    return inflateInit2(stream, -windowBits);
}
