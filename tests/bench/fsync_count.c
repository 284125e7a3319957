/* fsync_count.c: an LD_PRELOAD shim that counts the real syncs of a process, for
 * scripts/bench queue (tests/bench/bench_queue.c): fdatasync(2), fsync(2) and msync(2)
 * calls, and writes to file descriptors opened with O_DSYNC or O_SYNC (each is a sync).
 *
 * DESIGN
 * "Submissions per fsync" must be measured, not derived from a model of LMDB: this shim
 * interposes the three sync calls, forwards each to libc (dlsym(RTLD_NEXT)) and counts it.
 * LMDB syncs twice per commit, but only once through fdatasync: it writes the meta page
 * through a second descriptor opened O_DSYNC (env->me_mfd), so that write is a sync of its
 * own. The shim therefore also interposes open/openat (to remember which descriptors are
 * O_DSYNC), close (to forget them) and pwrite/write/pwritev/writev (to count writes to
 * them). Descriptors at or above FD_TRACKED are not tracked.
 * The process that preloads it reads its counters through pvm_fsync_counts(), found with
 * dlsym(RTLD_DEFAULT). Another process (beanstalkd, started by the benchmark with this
 * shim preloaded) is counted through a shared file: when PVM_FSYNC_COUNT_FILE names an
 * existing file of at least sizeof(struct pvm_fsync_counts) bytes, the counters live in a
 * MAP_SHARED mapping of it, which the benchmark maps too.
 *
 * Only the calls are counted; their results and errno are those of libc, untouched.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* Keep in step with the copy in bench_queue.c. */
struct pvm_fsync_counts {
	_Atomic unsigned long long fdatasync_calls;
	_Atomic unsigned long long fsync_calls;
	_Atomic unsigned long long msync_calls;
	_Atomic unsigned long long dsync_writes; /* writes to O_DSYNC/O_SYNC descriptors */
};

struct pvm_fsync_counts *pvm_fsync_counts(void);

static struct pvm_fsync_counts local_counts;
static struct pvm_fsync_counts *_Atomic counts = &local_counts;

typedef int (*fd_sync_fn)(int);
typedef int (*msync_fn)(void *, size_t, int);
static _Atomic(fd_sync_fn) real_fdatasync;
static _Atomic(fd_sync_fn) real_fsync;
static _Atomic(msync_fn) real_msync;

/* dlsym returns void *; C11 has no conversion to a function pointer, so copy the bits. */
static void next_symbol(const char *name, void *fn_out, size_t fn_size)
{
	void *p = dlsym(RTLD_NEXT, name);
	memcpy(fn_out, &p, fn_size < sizeof(p) ? fn_size : sizeof(p));
}

static fd_sync_fn resolve_fd(_Atomic(fd_sync_fn) *slot, const char *name)
{
	fd_sync_fn f = atomic_load(slot);
	if (!f) {
		next_symbol(name, &f, sizeof(f));
		atomic_store(slot, f);
	}
	return f;
}

__attribute__((constructor)) static void fsync_count_init(void)
{
	const char *path = getenv("PVM_FSYNC_COUNT_FILE");
	if (path && path[0]) {
		int fd = open(path, O_RDWR | O_CLOEXEC);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0 &&
		    (size_t)st.st_size >= sizeof(struct pvm_fsync_counts)) {
			void *p = mmap(NULL, sizeof(struct pvm_fsync_counts),
			               PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			if (p != MAP_FAILED)
				atomic_store(&counts, (struct pvm_fsync_counts *)p);
		}
		if (fd >= 0)
			close(fd);
	}
	resolve_fd(&real_fdatasync, "fdatasync");
	resolve_fd(&real_fsync, "fsync");
}

struct pvm_fsync_counts *pvm_fsync_counts(void)
{
	return atomic_load(&counts);
}

int fdatasync(int fd)
{
	fd_sync_fn f = resolve_fd(&real_fdatasync, "fdatasync");
	atomic_fetch_add(&atomic_load(&counts)->fdatasync_calls, 1);
	if (!f) {
		errno = ENOSYS;
		return -1;
	}
	return f(fd);
}

int fsync(int fd)
{
	fd_sync_fn f = resolve_fd(&real_fsync, "fsync");
	atomic_fetch_add(&atomic_load(&counts)->fsync_calls, 1);
	if (!f) {
		errno = ENOSYS;
		return -1;
	}
	return f(fd);
}

int msync(void *addr, size_t len, int flags)
{
	msync_fn f = atomic_load(&real_msync);
	if (!f) {
		next_symbol("msync", &f, sizeof(f));
		atomic_store(&real_msync, f);
	}
	atomic_fetch_add(&atomic_load(&counts)->msync_calls, 1);
	if (!f) {
		errno = ENOSYS;
		return -1;
	}
	return f(addr, len, flags);
}

/* ---- O_DSYNC descriptors ---------------------------------------------------------------- */

#define FD_TRACKED 65536
static _Atomic unsigned char dsync_fd[FD_TRACKED];

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef int (*close_fn)(int);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef ssize_t (*pwritev_fn)(int, const struct iovec *, int, off_t);

/* Resolves libc's name into *slot once. */
#define REAL(slot, name)                                                                           \
	do {                                                                                       \
		if (!atomic_load(&slot)) {                                                         \
			__typeof__(atomic_load(&slot)) f_;                                         \
			next_symbol(name, &f_, sizeof(f_));                                        \
			atomic_store(&slot, f_);                                                   \
		}                                                                                  \
	} while (0)

static _Atomic(open_fn) real_open, real_open64;
static _Atomic(openat_fn) real_openat, real_openat64;
static _Atomic(close_fn) real_close;
static _Atomic(write_fn) real_write;
static _Atomic(pwrite_fn) real_pwrite, real_pwrite64;
static _Atomic(writev_fn) real_writev;
static _Atomic(pwritev_fn) real_pwritev;

static bool needs_mode(int flags)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

static void note_open(int fd, int flags)
{
	if (fd >= 0 && fd < FD_TRACKED)
		atomic_store(&dsync_fd[fd], (flags & O_DSYNC) ? 1 : 0);
}

static void note_write(int fd, ssize_t rc)
{
	if (rc >= 0 && fd >= 0 && fd < FD_TRACKED && atomic_load(&dsync_fd[fd]))
		atomic_fetch_add(&atomic_load(&counts)->dsync_writes, 1);
}

int open(const char *path, int flags, ...)
{
	unsigned mode = 0;
	if (needs_mode(flags)) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, unsigned);
		va_end(ap);
	}
	REAL(real_open, "open");
	if (!atomic_load(&real_open)) {
		errno = ENOSYS;
		return -1;
	}
	int fd = atomic_load(&real_open)(path, flags, mode);
	note_open(fd, flags);
	return fd;
}

int open64(const char *path, int flags, ...)
{
	unsigned mode = 0;
	if (needs_mode(flags)) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, unsigned);
		va_end(ap);
	}
	REAL(real_open64, "open64");
	if (!atomic_load(&real_open64)) {
		errno = ENOSYS;
		return -1;
	}
	int fd = atomic_load(&real_open64)(path, flags, mode);
	note_open(fd, flags);
	return fd;
}

int openat(int dirfd, const char *path, int flags, ...)
{
	unsigned mode = 0;
	if (needs_mode(flags)) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, unsigned);
		va_end(ap);
	}
	REAL(real_openat, "openat");
	if (!atomic_load(&real_openat)) {
		errno = ENOSYS;
		return -1;
	}
	int fd = atomic_load(&real_openat)(dirfd, path, flags, mode);
	note_open(fd, flags);
	return fd;
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	unsigned mode = 0;
	if (needs_mode(flags)) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, unsigned);
		va_end(ap);
	}
	REAL(real_openat64, "openat64");
	if (!atomic_load(&real_openat64)) {
		errno = ENOSYS;
		return -1;
	}
	int fd = atomic_load(&real_openat64)(dirfd, path, flags, mode);
	note_open(fd, flags);
	return fd;
}

int close(int fd)
{
	REAL(real_close, "close");
	if (fd >= 0 && fd < FD_TRACKED)
		atomic_store(&dsync_fd[fd], 0);
	if (!atomic_load(&real_close)) {
		errno = ENOSYS;
		return -1;
	}
	return atomic_load(&real_close)(fd);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	REAL(real_write, "write");
	if (!atomic_load(&real_write)) {
		errno = ENOSYS;
		return -1;
	}
	ssize_t rc = atomic_load(&real_write)(fd, buf, n);
	note_write(fd, rc);
	return rc;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	REAL(real_pwrite, "pwrite");
	if (!atomic_load(&real_pwrite)) {
		errno = ENOSYS;
		return -1;
	}
	ssize_t rc = atomic_load(&real_pwrite)(fd, buf, n, off);
	note_write(fd, rc);
	return rc;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	REAL(real_pwrite64, "pwrite64");
	if (!atomic_load(&real_pwrite64)) {
		errno = ENOSYS;
		return -1;
	}
	ssize_t rc = atomic_load(&real_pwrite64)(fd, buf, n, off);
	note_write(fd, rc);
	return rc;
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
	REAL(real_writev, "writev");
	if (!atomic_load(&real_writev)) {
		errno = ENOSYS;
		return -1;
	}
	ssize_t rc = atomic_load(&real_writev)(fd, iov, n);
	note_write(fd, rc);
	return rc;
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	REAL(real_pwritev, "pwritev");
	if (!atomic_load(&real_pwritev)) {
		errno = ENOSYS;
		return -1;
	}
	ssize_t rc = atomic_load(&real_pwritev)(fd, iov, n, off);
	note_write(fd, rc);
	return rc;
}
