/* Local transport: the far side is `roam serve --stdio PATH` run as a child
 * of this process over two pipes (this same binary, /proc/self/exe, unless
 * a remote roam is named). For local paths; SSH remotes use ssh.c. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sync/transport.h"

struct local_conn {
	struct sync_conn c;
	int to, from, err;
	pid_t pid;
};

static ssize_t local_read(void *arg, void *buf, size_t len)
{
	return sync_fd_read(((struct local_conn *)arg)->from, buf, len);
}

static int local_write(void *arg, const void *buf, size_t len)
{
	return sync_fd_write(((struct local_conn *)arg)->to, buf, len);
}

static int local_finish(struct sync_conn *c, char *msg, size_t msglen)
{
	struct local_conn *lc = (struct local_conn *)c;
	if (lc->to >= 0)
		close(lc->to);
	lc->to = -1;
	if (msg && msglen) {
		size_t got = 0;
		ssize_t n;
		while (got + 1 < msglen && (n = read(lc->err, msg + got, msglen - 1 - got)) > 0)
			got += (size_t)n;
		msg[got] = 0;
	}
	int st;
	if (lc->pid <= 0 || waitpid(lc->pid, &st, 0) < 0)
		return -1;
	lc->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void local_free(struct sync_conn *c)
{
	struct local_conn *lc = (struct local_conn *)c;
	if (!lc)
		return;
	if (lc->to >= 0)
		close(lc->to);
	if (lc->from >= 0)
		close(lc->from);
	if (lc->err >= 0)
		close(lc->err);
	if (lc->pid > 0) {
		kill(lc->pid, SIGTERM);
		waitpid(lc->pid, NULL, 0);
	}
	free(lc);
}

int sync_local_connect(const struct sync_url *u, const struct sync_connect_opts *o,
		       struct sync_conn **ret, char *err, size_t errlen)
{
	int in[2], out[2], er[2];
	if (pipe2(in, O_CLOEXEC) < 0)
		goto perr0;
	if (pipe2(out, O_CLOEXEC) < 0)
		goto perr1;
	if (pipe2(er, O_CLOEXEC) < 0)
		goto perr2;
	struct local_conn *lc = calloc(1, sizeof(*lc));
	if (!lc)
		goto perr3;
	const char *roam = o->remote_roam && *o->remote_roam ? o->remote_roam : "/proc/self/exe";
	pid_t pid = fork();
	if (pid < 0) {
		free(lc);
		goto perr3;
	}
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(er[1], 2);
		signal(SIGPIPE, SIG_DFL);
		if (o->create)
			execl(roam, "roam", "serve", "--stdio", "--create", u->path, (char *)NULL);
		else
			execl(roam, "roam", "serve", "--stdio", u->path, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(er[1]);
	lc->to = in[1];
	lc->from = out[0];
	lc->err = er[0];
	lc->pid = pid;
	lc->c.io.read = local_read;
	lc->c.io.write = local_write;
	lc->c.io.arg = lc;
	lc->c.finish = local_finish;
	lc->c.free = local_free;
	snprintf(lc->c.what, sizeof(lc->c.what), "%.290s", u->path);
	*ret = &lc->c;
	return 0;
perr3:
	close(er[0]);
	close(er[1]);
perr2:
	close(out[0]);
	close(out[1]);
perr1:
	close(in[0]);
	close(in[1]);
perr0:
	snprintf(err, errlen, "cannot start a local roam serve: %s", strerror(errno));
	return -errno;
}
