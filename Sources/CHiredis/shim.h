/* The C surface Herald uses: hiredis (Redis protocol), and the Linux calls that Swift's Glibc
 * module does not export (epoll, eventfd, malloc_trim). */
#include <hiredis/hiredis.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/tcp.h>

/* accept4 is declared only under _GNU_SOURCE, which Swift's Glibc module does not set. */
extern int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
static inline int herald_accept_nonblocking(int fd) {
    return accept4(fd, (struct sockaddr *)0, (socklen_t *)0, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

/* pthread_setname_np is a GNU extension, also hidden without _GNU_SOURCE. */
#include <pthread.h>
extern int pthread_setname_np(pthread_t thread, const char *name);

/* Gives freed heap pages back to the kernel (glibc keeps them in its arenas otherwise). */
#include <malloc.h>
