/* SSH transport (libssh2): connect with a timeout, check the host key
 * against ~/.ssh/known_hosts, authenticate (agent, key files, then password
 * or keyboard-interactive on a TTY), exec `roam serve --stdio PATH`, and
 * move bytes over the channel with keepalives. */
#include <errno.h>
#include <fcntl.h>
#include <libssh2.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include "sync/transport.h"

struct ssh_conn {
	struct sync_conn c;
	int sock;
	LIBSSH2_SESSION *sess;
	LIBSSH2_CHANNEL *ch;
	char why[200];              /* libssh2's word on the first I/O failure */
};

static int lib_ready;

static const char *ssh_errmsg(LIBSSH2_SESSION *sess)
{
	char *m = NULL;
	libssh2_session_last_error(sess, &m, NULL, 0);
	return m && *m ? m : "unknown error";
}

/* A keepalive only when the socket has room for it: libssh2 1.10 keeps a
 * keepalive it could only partly send (EAGAIN) and then refuses the next
 * channel write with LIBSSH2_ERROR_BAD_USE, which broke bulk pushes whose
 * send buffer was full when the keepalive interval came round. */
static void keepalive(struct ssh_conn *sc)
{
	struct pollfd p = { .fd = sc->sock, .events = POLLOUT };
	int next;
	if (poll(&p, 1, 0) == 1 && (p.revents & POLLOUT))
		libssh2_keepalive_send(sc->sess, &next);
}

static void note_failure(struct ssh_conn *sc, ssize_t n, const char *op)
{
	if (!sc->why[0])
		snprintf(sc->why, sizeof(sc->why), "ssh channel %s failed here: %s (libssh2 %zd, "
			 "errno %d)", op, ssh_errmsg(sc->sess), n, errno);
}

/* With keepalives configured, a blocking libssh2 call gives up with
 * LIBSSH2_ERROR_TIMEOUT when the socket stays blocked for one keepalive
 * interval (15 s), e.g. while the far side commits a large transaction.
 * That is a stall, not a failure: the call is repeated with the same
 * arguments (as after EAGAIN) until the far side has said nothing for
 * SSH_STALL_MAX intervals. 1: retry, 0: give up. */
#define SSH_STALL_MAX 8
static int stalled(struct ssh_conn *sc, ssize_t n, int *count)
{
	if (n == LIBSSH2_ERROR_EAGAIN)
		return 1;
	if (n == LIBSSH2_ERROR_TIMEOUT && libssh2_channel_eof(sc->ch) == 1) {
		if (!sc->why[0])
			snprintf(sc->why, sizeof(sc->why), "the far side closed the connection");
		return 0;
	}
	if (n == LIBSSH2_ERROR_TIMEOUT && ++*count < SSH_STALL_MAX)
		return 1;
	if (n == LIBSSH2_ERROR_TIMEOUT && !sc->why[0])
		snprintf(sc->why, sizeof(sc->why), "the far side did not move for %d s",
			 SSH_STALL_MAX * 15);
	return 0;
}

static ssize_t ssh_read(void *arg, void *buf, size_t len)
{
	struct ssh_conn *sc = arg;
	int count = 0;
	for (;;) {
		ssize_t n = libssh2_channel_read(sc->ch, buf, len);
		if (n >= 0)
			return n;
		if (stalled(sc, n, &count))
			continue;
		note_failure(sc, n, "read");
		return -EIO;
	}
}

static int ssh_write(void *arg, const void *buf, size_t len)
{
	struct ssh_conn *sc = arg;
	const char *p = buf;
	int count = 0;
	keepalive(sc);
	while (len) {
		ssize_t n = libssh2_channel_write(sc->ch, p, len);
		if (n < 0 && stalled(sc, n, &count))
			continue;
		count = 0;
		if (n < 0) {
			note_failure(sc, n, "write");
			return n == LIBSSH2_ERROR_CHANNEL_CLOSED || n == LIBSSH2_ERROR_SOCKET_SEND ||
					       n == LIBSSH2_ERROR_CHANNEL_EOF_SENT
				       ? -EPIPE
				       : -EIO;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int ssh_finish(struct sync_conn *c, char *msg, size_t msglen)
{
	struct ssh_conn *sc = (struct ssh_conn *)c;
	if (msg && msglen) {
		size_t got = 0;
		msg[0] = 0;
		libssh2_session_set_timeout(sc->sess, 3000);
		libssh2_channel_send_eof(sc->ch);
		while (got + 1 < msglen) {
			ssize_t n = libssh2_channel_read_stderr(sc->ch, msg + got, msglen - 1 - got);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		msg[got] = 0;
		if (sc->why[0] && got + 3 < msglen)
			snprintf(msg + got, msglen - got, "%s%s", got ? "; " : "", sc->why);
	}
	libssh2_channel_close(sc->ch);
	libssh2_channel_wait_closed(sc->ch);
	int st = libssh2_channel_get_exit_status(sc->ch);
	char *sig = NULL;
	libssh2_channel_get_exit_signal(sc->ch, &sig, NULL, NULL, NULL, NULL, NULL);
	if (sig) {
		libssh2_free(sc->sess, sig);
		st = -1;
	}
	return st;
}

static void ssh_free(struct sync_conn *c)
{
	struct ssh_conn *sc = (struct ssh_conn *)c;
	if (!sc)
		return;
	if (sc->ch)
		libssh2_channel_free(sc->ch);
	if (sc->sess) {
		libssh2_session_disconnect(sc->sess, "bye");
		libssh2_session_free(sc->sess);
	}
	if (sc->sock >= 0)
		close(sc->sock);
	free(sc);
}

static int tcp_connect(const struct sync_url *u, int *ret, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai, *a;
	char port[16];
	snprintf(port, sizeof(port), "%d", u->port);
	int rc = getaddrinfo(u->host, port, &hints, &ai);
	if (rc) {
		snprintf(err, errlen, "cannot resolve host '%s': %s", u->host, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	int last = ECONNREFUSED;
	for (a = ai; a; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
				a->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
			last = errno;
			close(fd);
			continue;
		}
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		int pr = poll(&pfd, 1, 15000);
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (pr <= 0)
			soerr = ETIMEDOUT;
		else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (soerr) {
			last = soerr;
			close(fd);
			continue;
		}
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
			last = errno;
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		freeaddrinfo(ai);
		*ret = fd;
		return 0;
	}
	freeaddrinfo(ai);
	if (last == ECONNREFUSED)
		snprintf(err, errlen, "connection to %s port %d refused: is sshd running there?",
			 u->host, u->port);
	else if (last == ETIMEDOUT)
		snprintf(err, errlen, "connection to %s port %d timed out", u->host, u->port);
	else
		snprintf(err, errlen, "cannot connect to %s port %d: %s", u->host, u->port,
			 strerror(last));
	return -last;
}

static const char *home_dir(void)
{
	const char *h = getenv("HOME");
	if (h && *h)
		return h;
	struct passwd *pw = getpwuid(getuid());
	return pw ? pw->pw_dir : "/";
}

static int knownhost_type(int t)
{
	switch (t) {
	case LIBSSH2_HOSTKEY_TYPE_RSA: return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
	case LIBSSH2_HOSTKEY_TYPE_DSS: return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
	case LIBSSH2_HOSTKEY_TYPE_ED25519: return LIBSSH2_KNOWNHOST_KEY_ED25519;
	default: return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
	}
}

static void fingerprint(LIBSSH2_SESSION *sess, char *out, size_t outlen)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *h = (const unsigned char *)libssh2_hostkey_hash(
		sess, LIBSSH2_HOSTKEY_HASH_SHA256);
	size_t o = (size_t)snprintf(out, outlen, "SHA256:");
	if (!h) {
		snprintf(out, outlen, "(no fingerprint)");
		return;
	}
	for (int i = 0; i < 32 && o + 5 < outlen; i += 3) {
		uint32_t v = (uint32_t)h[i] << 16 | (i + 1 < 32 ? (uint32_t)h[i + 1] << 8 : 0) |
			     (i + 2 < 32 ? h[i + 2] : 0);
		out[o++] = b64[(v >> 18) & 63];
		out[o++] = b64[(v >> 12) & 63];
		if (i + 1 < 32)
			out[o++] = b64[(v >> 6) & 63];
		if (i + 2 < 32)
			out[o++] = b64[v & 63];
	}
	out[o] = 0;
}

static int check_host_key(struct ssh_conn *sc, const struct sync_url *u, bool accept,
			  char *err, size_t errlen)
{
	size_t klen;
	int ktype;
	const char *key = libssh2_session_hostkey(sc->sess, &klen, &ktype);
	if (!key) {
		snprintf(err, errlen, "%s sent no host key", u->host);
		return -EPROTO;
	}
	char path[4096], fp[80];
	snprintf(path, sizeof(path), "%s/.ssh/known_hosts", home_dir());
	fingerprint(sc->sess, fp, sizeof(fp));
	LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(sc->sess);
	if (!kh) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (access(path, R_OK) == 0 &&
	    libssh2_knownhost_readfile(kh, path, LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, ssh_errmsg(sc->sess));
		libssh2_knownhost_free(kh);
		return -EINVAL;
	}
	int type = LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
		   knownhost_type(ktype);
	struct libssh2_knownhost *found = NULL;
	int r = libssh2_knownhost_checkp(kh, u->host, u->port, key, klen, type, &found);
	char hostname[300];
	if (u->port == 22)
		snprintf(hostname, sizeof(hostname), "%s", u->host);
	else
		snprintf(hostname, sizeof(hostname), "[%s]:%d", u->host, u->port);
	int rc = 0;
	if (r == LIBSSH2_KNOWNHOST_CHECK_MATCH) {
		rc = 0;
	} else if (r == LIBSSH2_KNOWNHOST_CHECK_MISMATCH) {
		snprintf(err, errlen,
			 "HOST KEY OF %s HAS CHANGED (now %s), which may mean someone is "
			 "intercepting the connection; refusing. If the host was reinstalled, "
			 "remove its line from %s", hostname, fp, path);
		rc = -EPERM;
	} else if (r == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND && !accept) {
		snprintf(err, errlen,
			 "host %s is not in %s (key fingerprint %s); if that is right, run again "
			 "with --accept-new-host-key to accept and record it", hostname, path, fp);
		rc = -EPERM;
	} else if (r == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND) {
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s/.ssh", home_dir());
		mkdir(dir, 0700);
		if (libssh2_knownhost_addc(kh, hostname, NULL, key, klen, NULL, 0,
					   type, NULL) < 0 ||
		    libssh2_knownhost_writefile(kh, path, LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0) {
			snprintf(err, errlen, "cannot record the host key of %s in %s: %s", hostname,
				 path, ssh_errmsg(sc->sess));
			rc = -EIO;
		} else {
			fprintf(stderr, "roam: added host %s (%s) to %s\n", hostname, fp, path);
		}
	} else {
		snprintf(err, errlen, "cannot check the host key of %s: %s", hostname,
			 ssh_errmsg(sc->sess));
		rc = -EINVAL;
	}
	libssh2_knownhost_free(kh);
	return rc;
}

static char tty_pass[256];

static int read_tty_line(const char *prompt, bool echo, char *out, size_t outlen)
{
	FILE *tty = fopen("/dev/tty", "r+");
	if (!tty)
		return -ENOTTY;
	struct termios old, t;
	bool restore = false;
	fputs(prompt, tty);
	fflush(tty);
	if (!echo && tcgetattr(fileno(tty), &old) == 0) {
		t = old;
		t.c_lflag &= ~(tcflag_t)ECHO;
		restore = tcsetattr(fileno(tty), TCSAFLUSH, &t) == 0;
	}
	int rc = fgets(out, (int)outlen, tty) ? 0 : -EIO;
	if (restore) {
		tcsetattr(fileno(tty), TCSAFLUSH, &old);
		fputs("\n", tty);
	}
	fclose(tty);
	out[strcspn(out, "\r\n")] = 0;
	return rc;
}

static void kbd_callback(const char *name, int name_len, const char *instruction,
			 int instruction_len, int num_prompts,
			 const LIBSSH2_USERAUTH_KBDINT_PROMPT *prompts,
			 LIBSSH2_USERAUTH_KBDINT_RESPONSE *responses, void **abstract)
{
	(void)name; (void)name_len; (void)instruction; (void)instruction_len; (void)abstract;
	for (int i = 0; i < num_prompts; i++) {
		char prompt[256], ans[256] = "";
		snprintf(prompt, sizeof(prompt), "%.*s", (int)prompts[i].length,
			 (const char *)prompts[i].text);
		if (read_tty_line(prompt, prompts[i].echo, ans, sizeof(ans)) < 0)
			ans[0] = 0;
		responses[i].text = strdup(ans);
		responses[i].length = responses[i].text ? (unsigned)strlen(ans) : 0;
	}
}

static int try_agent(struct ssh_conn *sc, const char *user)
{
	if (!getenv("SSH_AUTH_SOCK"))
		return -1;
	LIBSSH2_AGENT *ag = libssh2_agent_init(sc->sess);
	if (!ag)
		return -1;
	int ok = -1;
	if (libssh2_agent_connect(ag) == 0 && libssh2_agent_list_identities(ag) == 0) {
		struct libssh2_agent_publickey *id = NULL, *prev = NULL;
		while (libssh2_agent_get_identity(ag, &id, prev) == 0) {
			if (libssh2_agent_userauth(ag, user, id) == 0) {
				ok = 0;
				break;
			}
			prev = id;
		}
		libssh2_agent_disconnect(ag);
	}
	libssh2_agent_free(ag);
	return ok;
}

static int authenticate(struct ssh_conn *sc, const char *user, const char *identity,
			const char *hostname, char *err, size_t errlen)
{
	char *methods = libssh2_userauth_list(sc->sess, user, (unsigned)strlen(user));
	if (!methods) {
		if (libssh2_userauth_authenticated(sc->sess))
			return 0;
		snprintf(err, errlen, "ssh to %s: %s", hostname, ssh_errmsg(sc->sess));
		return -EACCES;
	}
	bool pk = strstr(methods, "publickey") != NULL;
	if (pk && !identity && try_agent(sc, user) == 0)
		return 0;
	if (pk) {
		const char *names[] = { "id_ed25519", "id_ecdsa", "id_rsa" };
		char path[4096];
		for (int i = 0; i < (identity ? 1 : 3); i++) {
			if (identity)
				snprintf(path, sizeof(path), "%s", identity);
			else
				snprintf(path, sizeof(path), "%s/.ssh/%s", home_dir(), names[i]);
			if (access(path, R_OK) != 0) {
				if (identity) {
					snprintf(err, errlen, "cannot read identity file %s: %s",
						 path, strerror(errno));
					return -ENOENT;
				}
				continue;
			}
			if (libssh2_userauth_publickey_fromfile(sc->sess, user, NULL, path, NULL) == 0)
				return 0;
		}
	}
	if (isatty(0)) {
		if (strstr(methods, "keyboard-interactive") &&
		    libssh2_userauth_keyboard_interactive(sc->sess, user, kbd_callback) == 0)
			return 0;
		if (strstr(methods, "password")) {
			char prompt[400];
			snprintf(prompt, sizeof(prompt), "%s@%s's password: ", user, hostname);
			if (read_tty_line(prompt, false, tty_pass, sizeof(tty_pass)) == 0) {
				int r = libssh2_userauth_password(sc->sess, user, tty_pass);
				memset(tty_pass, 0, sizeof(tty_pass));
				if (r == 0)
					return 0;
			}
		}
	}
	snprintf(err, errlen,
		 "ssh authentication as %s to %s failed (tried %s%s%s); load a key into "
		 "ssh-agent or give one with -i FILE", user, hostname,
		 identity ? "the given key" : "ssh-agent and ~/.ssh/id_{ed25519,ecdsa,rsa}",
		 isatty(0) ? ", password" : "", "");
	return -EACCES;
}

int sync_ssh_connect(const struct sync_url *u, const struct sync_connect_opts *o,
		     struct sync_conn **ret, char *err, size_t errlen)
{
	if (!lib_ready) {
		if (libssh2_init(0) != 0) {
			snprintf(err, errlen, "cannot initialise libssh2");
			return -ENOMEM;
		}
		lib_ready = 1;
	}
	struct ssh_conn *sc = calloc(1, sizeof(*sc));
	if (!sc)
		return -ENOMEM;
	sc->sock = -1;
	sc->c.finish = ssh_finish;
	sc->c.free = ssh_free;
	sc->c.io.read = ssh_read;
	sc->c.io.write = ssh_write;
	sc->c.io.arg = sc;
	snprintf(sc->c.what, sizeof(sc->c.what), "%.250s", u->host);
	int rc = tcp_connect(u, &sc->sock, err, errlen);
	if (rc < 0)
		goto fail;
	sc->sess = libssh2_session_init();
	if (!sc->sess) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	libssh2_session_set_blocking(sc->sess, 1);
	libssh2_session_set_timeout(sc->sess, 0);
	/* prefer the ciphers and MACs that are cheapest with AES-NI and SHA
	 * instructions; the server picks from its own list otherwise */
	static const char crypt[] = "aes128-ctr,aes192-ctr,aes256-ctr,aes256-gcm@openssh.com,"
				    "aes128-gcm@openssh.com";
	libssh2_session_method_pref(sc->sess, LIBSSH2_METHOD_CRYPT_CS, crypt);
	libssh2_session_method_pref(sc->sess, LIBSSH2_METHOD_CRYPT_SC, crypt);
	if (libssh2_session_handshake(sc->sess, sc->sock) != 0) {
		snprintf(err, errlen, "ssh handshake with %s port %d failed: %s (is it an SSH server?)",
			 u->host, u->port, ssh_errmsg(sc->sess));
		rc = -EPROTO;
		goto fail;
	}
	rc = check_host_key(sc, u, o->accept_new_host_key, err, errlen);
	if (rc < 0)
		goto fail;
	const char *user = u->user;
	if (!*user) {
		struct passwd *pw = getpwuid(getuid());
		user = pw ? pw->pw_name : "root";
	}
	rc = authenticate(sc, user, o->identity, u->host, err, errlen);
	if (rc < 0)
		goto fail;
	libssh2_keepalive_config(sc->sess, 1, 15);
	sc->ch = libssh2_channel_open_session(sc->sess);
	if (!sc->ch) {
		snprintf(err, errlen, "ssh to %s: cannot open a channel: %s", u->host,
			 ssh_errmsg(sc->sess));
		rc = -EIO;
		goto fail;
	}
	char qroam[600], qpath[4200], cmd[5000];
	const char *roam = o->remote_roam && *o->remote_roam ? o->remote_roam : "roam";
	if (sync_shell_quote(roam, qroam, sizeof(qroam)) < 0 ||
	    sync_shell_quote(u->path, qpath, sizeof(qpath)) < 0) {
		snprintf(err, errlen, "remote path too long");
		rc = -E2BIG;
		goto fail;
	}
	snprintf(cmd, sizeof(cmd), "%s serve --stdio %s%s", qroam, o->create ? "--create " : "",
		 qpath);
	if (libssh2_channel_exec(sc->ch, cmd) != 0) {
		snprintf(err, errlen, "ssh to %s: cannot run roam there: %s", u->host,
			 ssh_errmsg(sc->sess));
		rc = -EIO;
		goto fail;
	}
	*ret = &sc->c;
	return 0;
fail:
	ssh_free(&sc->c);
	return rc;
}

int sync_shell_quote(const char *s, char *out, size_t outlen)
{
	size_t o = 0;
	if (outlen < 3)
		return -E2BIG;
	out[o++] = '\'';
	for (; *s; s++) {
		if (*s == '\'') {
			if (o + 5 >= outlen)
				return -E2BIG;
			memcpy(out + o, "'\\''", 4);
			o += 4;
		} else {
			if (o + 2 >= outlen)
				return -E2BIG;
			out[o++] = *s;
		}
	}
	out[o++] = '\'';
	out[o] = 0;
	return 0;
}
