/* http.c: the HTTP/1.1 client powervmctl talks to powervmd with, over the Unix socket.
 *
 * One request per connection ("Connection: close"): powervmctl makes a handful of calls, so
 * keep-alive would buy nothing. The answer is read until the server closes the connection
 * or its Content-Length is in, and a chunked body is decoded. Every read and write waits
 * with poll() against one deadline, so a stuck daemon cannot hang the tool.
 */
#include "ctl.h"

#include "pvm/error.h"
#include "pvm/util.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_ANSWER (64u << 20) /* bytes: far more than any answer powervmd gives */

void ctl_http_resp_fini(struct ctl_http_resp *r)
{
	if (!r)
		return;
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

static int remaining_ms(int64_t deadline_ns)
{
	int64_t left = (deadline_ns - pvm_mono_ns()) / 1000000;
	return left < 0 ? 0 : left > 1000000 ? 1000000 : (int)left;
}

static int wait_fd(int fd, short events, int64_t deadline_ns)
{
	struct pollfd p = {.fd = fd, .events = events};
	for (;;) {
		int r = poll(&p, 1, remaining_ms(deadline_ns));
		if (r > 0)
			return 0;
		if (r == 0)
			return PVM_ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int send_all(int fd, const char *p, size_t n, int64_t deadline_ns)
{
	while (n) {
		int rc = wait_fd(fd, POLLOUT, deadline_ns);
		if (rc)
			return rc;
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Decodes a chunked body in place. Returns the decoded length, or -1 when malformed. */
static long dechunk(char *b, size_t n)
{
	size_t in = 0, out = 0;
	for (;;) {
		char *end;
		if (in >= n)
			return -1;
		unsigned long sz = strtoul(b + in, &end, 16);
		char *eol = memchr(b + in, '\n', n - in);
		if (!eol || end == b + in)
			return -1;
		in = (size_t)(eol - b) + 1;
		if (sz == 0)
			return (long)out;
		if (sz > n - in)
			return -1;
		memmove(b + out, b + in, sz);
		out += sz;
		in += sz;
		if (in < n && b[in] == '\r')
			in++;
		if (in < n && b[in] == '\n')
			in++;
	}
}

/* Parses the status line and headers of buf[0..hlen); finds Content-Length and chunking. */
static int parse_head(const char *buf, size_t hlen, int *status, long *clen, bool *chunked)
{
	if (hlen < 12 || strncmp(buf, "HTTP/1.", 7) != 0)
		return PVM_EIO;
	*status = atoi(buf + 9);
	if (*status < 100 || *status > 599)
		return PVM_EIO;
	*clen = -1;
	*chunked = false;
	const char *p = memchr(buf, '\n', hlen);
	while (p && (size_t)(p - buf) < hlen) {
		p++;
		const char *eol = memchr(p, '\n', hlen - (size_t)(p - buf));
		if (!eol)
			break;
		if (strncasecmp(p, "Content-Length:", 15) == 0)
			*clen = strtol(p + 15, NULL, 10);
		else if (strncasecmp(p, "Transfer-Encoding:", 18) == 0) {
			const char *v = p + 18;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*chunked = strncasecmp(v, "chunked", 7) == 0;
		}
		p = eol;
	}
	return 0;
}

int ctl_http(const char *socket_path, const char *method, const char *path, const char *body,
             int timeout_ms, struct ctl_http_resp *out)
{
	memset(out, 0, sizeof(*out));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
	int64_t deadline = pvm_mono_ns() + (int64_t)timeout_ms * 1000000;
	char *req = NULL, *buf = NULL;
	int rc;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		rc = -errno;
		goto close_fd;
	}
	size_t blen = body ? strlen(body) : 0;
	int n = asprintf(&req,
	                 "%s %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: powervmctl\r\n"
	                 "Accept: application/json\r\nConnection: close\r\n%s"
	                 "Content-Length: %zu\r\n\r\n",
	                 method, path, body ? "Content-Type: application/json\r\n" : "", blen);
	if (n < 0) {
		req = NULL;
		rc = PVM_ENOMEM;
		goto close_fd;
	}
	if ((rc = send_all(fd, req, (size_t)n, deadline)) ||
	    (blen && (rc = send_all(fd, body, blen, deadline))))
		goto free_req;

	size_t cap = 8192, len = 0, hlen = 0;
	long clen = -1;
	bool chunked = false;
	buf = malloc(cap + 1);
	if (!buf) {
		rc = PVM_ENOMEM;
		goto free_req;
	}
	for (;;) {
		if (hlen && !chunked && clen >= 0 && len - hlen >= (size_t)clen)
			break;
		if (len == cap) {
			if (cap >= MAX_ANSWER) {
				rc = PVM_ETOOBIG;
				goto free_buf;
			}
			char *nb = realloc(buf, cap * 2 + 1);
			if (!nb) {
				rc = PVM_ENOMEM;
				goto free_buf;
			}
			buf = nb;
			cap *= 2;
		}
		if ((rc = wait_fd(fd, POLLIN, deadline)))
			goto free_buf;
		ssize_t r = recv(fd, buf + len, cap - len, 0);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			/* A daemon that answers and closes at once may reset: keep what came. */
			if (errno == ECONNRESET && hlen)
				break;
			rc = -errno;
			goto free_buf;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		buf[len] = '\0';
		if (!hlen) {
			char *e = strstr(buf, "\r\n\r\n");
			if (e) {
				hlen = (size_t)(e - buf) + 4;
				if ((rc = parse_head(buf, hlen, &out->status, &clen, &chunked)))
					goto free_buf;
				if (strcmp(method, "HEAD") == 0 || out->status == 204 ||
				    out->status == 304)
					clen = 0;
			}
		}
		if (chunked && hlen && len >= hlen + 5 &&
		    memcmp(buf + len - 5, "0\r\n\r\n", 5) == 0)
			break;
	}
	if (!hlen) {
		rc = PVM_EIO;
		goto free_buf;
	}
	size_t blen_in = len - hlen;
	if (clen >= 0 && !chunked && blen_in > (size_t)clen)
		blen_in = (size_t)clen;
	memmove(buf, buf + hlen, blen_in);
	if (chunked) {
		long d = dechunk(buf, blen_in);
		if (d < 0) {
			rc = PVM_EIO;
			goto free_buf;
		}
		blen_in = (size_t)d;
	}
	buf[blen_in] = '\0';
	out->body = buf;
	out->len = blen_in;
	buf = NULL;
	rc = 0;
free_buf:
	free(buf);
free_req:
	free(req);
close_fd:
	close(fd);
	return rc;
}
