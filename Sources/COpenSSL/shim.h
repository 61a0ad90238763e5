/* The C surface Herald's TLS to Redis uses: Debian's OpenSSL 3 (libssl-dev), and two helpers for
 * hiredis's output buffer. OpenSSL's function-like macros (SSL_CTX_set_mode and friends) do not
 * import into Swift, so each one used is wrapped here in a static inline function. */
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <hiredis/sds.h>

static inline long herald_ssl_ctx_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
/* A peer that closes without close_notify reads as a plain end of stream (SSL_ERROR_ZERO_RETURN). */
static inline void herald_ssl_ctx_ignore_unexpected_eof(SSL_CTX *ctx) { SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF); }
static inline int herald_ssl_ctx_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}
/* SNI (RFC 6066 section 3): the name the server picks its certificate by. */
static inline int herald_ssl_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

/* hiredis keeps the commands it formatted in an sds string (redisContext.obuf); sdslen is a
 * static inline in sds.h, so Swift reaches it through here. They take the field itself, not the
 * redisContext, so that only CHiredis declares that struct. */
static inline size_t herald_obuf_length(const char *obuf) { return sdslen((const sds)obuf); }
/* Drops the first `count` bytes of the output buffer (sent), keeping the rest; emptied, the
 * buffer is replaced by a fresh one, as redisBufferWrite does, so a large command's space goes. */
static inline void herald_obuf_consume(char **obuf, size_t count) {
    if (count >= sdslen(*obuf)) {
        sdsfree(*obuf);
        *obuf = sdsempty();
    } else {
        sdsrange(*obuf, (int)count, -1);
    }
}
