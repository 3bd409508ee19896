/*
 * main_buddyfs.c - the buddyfs command line (DESIGN.md §1).
 *
 *   buddyfs [--home DIR] [-v|--verbose] COMMAND [ARGS...]
 *
 * A table of commands, each with its own argument parser and help text, as
 * wireguard-tools' wg.c does it; "buddy" has a table of its own.  Owns the
 * words and exit statuses users and scripts see: 0 success, 1 the command
 * failed (one line on stderr says why and what to do next), 2 the command
 * line is wrong (unknown command or option, a missing or malformed
 * argument).  Leaves the work to identity (keys, names, the home) and store
 * (buddies) and daemon (mount, umount, status, and the live columns of
 * `buddy list`).
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "buddyfs/daemon.h"
#include "buddyfs/err.h"
#include "buddyfs/identity.h"
#include "buddyfs/log.h"
#include "buddyfs/rdv_oneshot.h"
#include "buddyfs/store.h"

enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
	HELP_SHOWN = -1, /* parse_args() printed a help text: exit 0 */
};

#define QUOTE_BYTES 160

struct cli {
	const char *home_opt; /* --home, or NULL */
	char home[PATH_MAX];  /* resolved by need_home() */
	int verbose;
};

struct command {
	const char *name;
	int (*run)(struct cli *cli, const struct command *cmd, int argc, char **argv);
	const char *path;     /* as typed after "buddyfs": "buddy add" */
	const char *args;     /* the synopsis after the path */
	const char *summary;  /* one line for the command list */
	const char *help;     /* the paragraphs under the usage line */
	const struct command *subs; /* a group: its subcommands, ending in {0} */
};

/* An option a command takes besides the global ones. */
struct opt {
	const char *name;  /* "--id" */
	char short_name;   /* 'f', or 0 */
	bool has_value;
	const char *value; /* out: the value ("" for a flag), NULL if absent */
};

static const char exit_status_text[] =
	"Exit status: 0 success; 1 the command failed (one line on stderr says why);\n"
	"2 the command line is wrong (unknown command or option, a missing or\n"
	"malformed argument).\n";

static const char name_rules[] = "a name is 1-32 of a-z 0-9 . _ - (upper case is folded), not '.' or '..'";

/*
 * quote - @s made safe for a one-line message: control bytes as \xNN, cut
 * to fit @out with "..." (bytes from 0x80 up pass, so UTF-8 stays legible).
 */
static const char *quote(char out[static QUOTE_BYTES], const char *s)
{
	size_t n = 0;

	for (; *s && n + 8 < QUOTE_BYTES; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f)
			n += (size_t)snprintf(out + n, QUOTE_BYTES - n, "\\x%02x", c);
		else
			out[n++] = (char)c;
	}
	if (*s)
		n += (size_t)snprintf(out + n, QUOTE_BYTES - n, "...");
	out[n] = '\0';
	return out;
}

/* ---- help ---- */

static void print_command_list(FILE *f, const struct command *cmds)
{
	char left[64];

	for (const struct command *c = cmds; c->name; c++) {
		if (c->subs) {
			print_command_list(f, c->subs);
			continue;
		}
		snprintf(left, sizeof(left), "%s %s", c->path, c->args);
		fprintf(f, "  %-36s %s\n", left, c->summary);
	}
}

static void print_command_help(FILE *f, const struct command *cmd)
{
	fprintf(f, "usage: buddyfs [--home DIR] [-v] %s %s\n\n%s", cmd->path, cmd->args, cmd->help);
	if (cmd->subs) {
		fprintf(f, "\nSubcommands:\n");
		print_command_list(f, cmd->subs);
		fprintf(f, "\nSee 'buddyfs %s SUBCOMMAND --help' for each.\n", cmd->path);
	}
	fprintf(f, "\nEvery command also takes --home DIR, -v and -h/--help.\n\n%s", exit_status_text);
}

static void print_usage(FILE *f);

/* ---- arguments ---- */

/*
 * global_opt - handle --home, -v and -h at @argv[*i]: returns 1 if used
 * (advancing *i past a value), 0 if not a global option, HELP_SHOWN, or
 * EXIT_USAGE after a message.
 */
static int global_opt(struct cli *cli, const struct command *cmd, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	const char *where = cmd ? cmd->path : NULL;

	if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
		if (cmd)
			print_command_help(stdout, cmd);
		else
			print_usage(stdout);
		return HELP_SHOWN;
	}
	if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0 || strcmp(a, "-vv") == 0) {
		cli->verbose += strcmp(a, "-vv") == 0 ? 2 : 1;
		log_set_level(cli->verbose >= 2 ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
		return 1;
	}
	if (strcmp(a, "--home") == 0 || strncmp(a, "--home=", 7) == 0) {
		const char *dir = a[6] == '=' ? a + 7 : *i + 1 < argc ? argv[++*i] : "";

		if (dir[0] == '\0') {
			log_error("--home needs a directory (see 'buddyfs%s%s --help')", where ? " " : "",
				  where ? where : "");
			return EXIT_USAGE;
		}
		cli->home_opt = dir;
		return 1;
	}
	return 0;
}

/*
 * parse_args - read @argv[1..] of @cmd: global options anywhere, @opts
 * ("--id X", "--id=X", "-f"), and @min_pos to @max_pos positionals into
 * @pos; "--" ends the options.  Returns 0, HELP_SHOWN, or EXIT_USAGE after
 * a one-line message.
 */
static int parse_args(struct cli *cli, const struct command *cmd, int argc, char **argv, struct opt *opts,
		      size_t n_opts, const char **pos, int min_pos, int max_pos)
{
	char q[QUOTE_BYTES];
	bool only_pos = false;
	int n_pos = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		struct opt *o = NULL;
		const char *value = NULL;
		int rc;

		if (only_pos || a[0] != '-' || a[1] == '\0') {
			if (n_pos == max_pos) {
				log_error("unexpected argument '%s' for 'buddyfs %s' (see 'buddyfs %s "
					  "--help')", quote(q, a), cmd->path, cmd->path);
				return EXIT_USAGE;
			}
			pos[n_pos++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_pos = true;
			continue;
		}
		rc = global_opt(cli, cmd, argc, argv, &i);
		if (rc == 1)
			continue;
		if (rc != 0)
			return rc;
		for (size_t k = 0; k < n_opts && !o; k++) {
			size_t len = strlen(opts[k].name);

			if (strcmp(a, opts[k].name) == 0 ||
			    (opts[k].short_name && a[1] == opts[k].short_name && a[2] == '\0'))
				o = &opts[k];
			else if (opts[k].has_value && strncmp(a, opts[k].name, len) == 0 && a[len] == '=') {
				o = &opts[k];
				value = a + len + 1;
			}
		}
		if (!o) {
			log_error("unknown option '%s' for 'buddyfs %s' (see 'buddyfs %s --help')",
				  quote(q, a), cmd->path, cmd->path);
			return EXIT_USAGE;
		}
		if (o->has_value && !value) {
			if (i + 1 >= argc) {
				log_error("%s needs a value (see 'buddyfs %s --help')", o->name, cmd->path);
				return EXIT_USAGE;
			}
			value = argv[++i];
		}
		o->value = o->has_value ? value : "";
	}
	if (n_pos < min_pos) {
		log_error("'buddyfs %s' needs %s (see 'buddyfs %s --help')", cmd->path, cmd->args, cmd->path);
		return EXIT_USAGE;
	}
	for (int k = n_pos; k < max_pos; k++)
		pos[k] = NULL;
	return 0;
}

/* ---- shared steps ---- */

static int need_home(struct cli *cli)
{
	char q[QUOTE_BYTES];
	int rc = identity_home_resolve(cli->home, sizeof(cli->home), cli->home_opt);

	if (rc == -ENOENT) {
		log_error("no home directory: set HOME or BUDDYFS_HOME, or pass --home DIR");
		return EXIT_FAIL;
	}
	if (rc) {
		log_error("home directory '%s': %s", quote(q, cli->home_opt ? cli->home_opt : ""),
			  bfs_strerror(rc));
		return EXIT_FAIL;
	}
	log_info("home %s", cli->home);
	return 0;
}

/*
 * identity_error_logged - the identity module says some refusals itself,
 * in one line that names the directory or file (a symbolic link for a
 * home, a home of another user, a non-empty foreign directory, a key file
 * open to others): the CLI then adds nothing.
 */
static bool identity_error_logged(const char *home, int rc, const char *file)
{
	char path[PATH_MAX];
	struct stat st;
	int n;

	if ((rc == -ELOOP || rc == -EPERM) && !file)
		return true;
	if (rc == -ENOTEMPTY)
		return true;
	if (rc != -EACCES || !file || strcmp(file, IDENTITY_KEY_FILE) != 0)
		return false;
	n = snprintf(path, sizeof(path), "%s/%s", home, IDENTITY_KEY_FILE);
	return n > 0 && (size_t)n < sizeof(path) && lstat(path, &st) == 0 && (st.st_mode & 077);
}

static int load_identity(struct cli *cli, struct identity **id)
{
	const char *file = NULL;
	int rc = need_home(cli);

	if (rc)
		return rc;
	rc = identity_load(id, cli->home, &file);
	if (identity_error_logged(cli->home, rc, file))
		return EXIT_FAIL;
	if (rc == BFS_ENOIDENT) {
		log_error("no identity in %s: run 'buddyfs init NAME' first (or pass --home DIR)", cli->home);
		return EXIT_FAIL;
	}
	if (rc && file) {
		log_error("cannot load the identity in %s: %s: %s (restore the file from a backup, or make "
			  "a new identity with 'buddyfs --home OTHER_DIR init NAME')", cli->home, file,
			  bfs_strerror(rc));
		return EXIT_FAIL;
	}
	if (rc) {
		log_error("cannot load the identity in %s: %s", cli->home, bfs_strerror(rc));
		return EXIT_FAIL;
	}
	return 0;
}

static int open_store(struct cli *cli, struct store **s)
{
	int rc = store_open(s, cli->home, 0);

	if (rc) {
		log_error("cannot open the store in %s/store: %s", cli->home, bfs_strerror(rc));
		return EXIT_FAIL;
	}
	return 0;
}

/* check_name - normalize a user name or say why not (EXIT_USAGE). */
static int check_name(char out[static IDENTITY_NAME_MAX + 1], const char *in, const char *what)
{
	char q[QUOTE_BYTES];

	if (identity_name_normalize(out, in) != 0) {
		log_error("bad %s '%s': %s", what, quote(q, in), name_rules);
		return EXIT_USAGE;
	}
	return 0;
}

/*
 * quiet_begin/quiet_end - the rendezvous client logs its own warnings; the
 * CLI says the same in its one line, so unless -v they are held back.
 */
static enum log_level quiet_begin(void)
{
	enum log_level was = log_get_level();

	if (was == LOG_LEVEL_WARN)
		log_set_level(LOG_LEVEL_ERROR);
	return was;
}

static void quiet_end(enum log_level was)
{
	log_set_level(was);
}

/*
 * forget_identity - undo a fresh init (the name was refused): remove the
 * three files identity_create() wrote, key first.
 */
static void forget_identity(const char *home)
{
	static const char *const files[] = { IDENTITY_KEY_FILE, IDENTITY_CERT_FILE, IDENTITY_CONFIG_FILE };
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		int n = snprintf(path, sizeof(path), "%s/%s", home, files[i]);

		if (n > 0 && (size_t)n < sizeof(path))
			unlink(path);
	}
}

/* ---- commands ---- */

static int cmd_init(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	struct opt opts[] = { { .name = "--rendezvous", .has_value = true } };
	char name[IDENTITY_NAME_MAX + 1], host[IDENTITY_HOST_MAX + 1], q[QUOTE_BYTES];
	char hex[IDENTITY_PEER_ID_HEX_BYTES], addr[IDENTITY_ADDR_TEXT_BYTES];
	struct identity *id = NULL;
	const char *pos[1];
	uint16_t port = 0;
	int rc;

	rc = parse_args(cli, cmd, argc, argv, opts, 1, pos, 1, 1);
	if (rc)
		return rc;
	rc = check_name(name, pos[0], "name");
	if (rc)
		return rc;
	host[0] = '\0';
	if (opts[0].value &&
	    identity_addr_parse(host, &port, opts[0].value, IDENTITY_RDV_DEFAULT_PORT) != 0) {
		log_error("bad rendezvous '%s': want HOST[:PORT] with a port from 1 to 65535 (default %d), "
			  "or [IPV6]:PORT", quote(q, opts[0].value), IDENTITY_RDV_DEFAULT_PORT);
		return EXIT_USAGE;
	}
	rc = need_home(cli);
	if (rc)
		return rc;
	rc = identity_create(&id, cli->home, name, host, port);
	if (rc == -EEXIST) {
		log_error("%s already holds an identity (see 'buddyfs id'); to make another, pass another "
			  "home: 'buddyfs --home DIR init %s'", cli->home, name);
		return EXIT_FAIL;
	}
	if (rc && identity_error_logged(cli->home, rc, NULL))
		return EXIT_FAIL;
	if (rc) {
		log_error("cannot make an identity in %s: %s", cli->home, bfs_strerror(rc));
		return EXIT_FAIL;
	}
	if (host[0]) {
		char why[RDV_ONESHOT_WHY_BYTES];
		enum log_level was = quiet_begin();

		identity_addr_format(addr, host, port);
		rc = rdv_oneshot_register(id, host, port, RDV_ONESHOT_DEFAULT_TIMEOUT_MS, why, sizeof(why));
		quiet_end(was);
		if (rc == -EEXIST || rc == BFS_EBADNAME) {
			/* nothing is kept: an identity must not claim a name it cannot have */
			log_error("%s; nothing was kept: choose another name", why);
			identity_free(id);
			forget_identity(cli->home);
			return EXIT_FAIL;
		}
		if (rc)
			log_warn("made the identity, but could not register '%s' at %s (%s); the daemon "
				 "registers it when it connects ('buddyfs mount')", name, addr, why);
	}
	identity_peer_id_hex(hex, id->peer_id);
	printf("peer id %s (%s)\n", hex, id->config.name);
	if (host[0] && rc == 0)
		printf("registered %s at %s\n", id->config.name, addr);
	identity_free(id);
	return EXIT_OK;
}

static int cmd_id(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	char hex[IDENTITY_PEER_ID_HEX_BYTES];
	struct identity *id = NULL;
	int rc;

	rc = parse_args(cli, cmd, argc, argv, NULL, 0, NULL, 0, 0);
	if (rc)
		return rc;
	rc = load_identity(cli, &id);
	if (rc)
		return rc;
	identity_peer_id_hex(hex, id->peer_id);
	printf("%s %s\n", id->config.name, hex);
	identity_free(id);
	return EXIT_OK;
}

/*
 * pin_buddy - make @name a buddy pinned to @peer_id in @s, unless the name is
 * pinned to another peer id or the peer id is a buddy under another name;
 * @cert (may be NULL) is the certificate a lookup returned for it.
 * Adding the same pair again changes nothing.  Returns an exit status.
 */
static int pin_buddy(struct cli *cli, struct store *s, const char *name,
		     const uint8_t peer_id[static IDENTITY_PEER_ID_BYTES],
		     const uint8_t *cert, size_t cert_len)
{
	char hex[IDENTITY_PEER_ID_HEX_BYTES], other[IDENTITY_PEER_ID_HEX_BYTES];
	struct store_peer p;
	int rc;

	identity_peer_id_hex(hex, peer_id);
	rc = store_peer_by_name(s, name, &p);
	if (rc == 0 && sodium_memcmp(p.id, peer_id, IDENTITY_PEER_ID_BYTES) != 0) {
		identity_peer_id_hex(other, p.id);
		log_error("%s is pinned to %s; remove %s first ('buddyfs buddy remove %s')", name, other,
			  name, name);
		return EXIT_FAIL;
	}
	if (rc == 0 && p.buddy == STORE_BUDDY_ADDED) {
		printf("%s %s is a buddy already\n", name, hex);
		return EXIT_OK;
	}
	if (rc == 0 || rc == -ENOENT)
		rc = store_peer_get(s, peer_id, &p);
	if (rc == 0 && p.buddy == STORE_BUDDY_ADDED && p.name[0] && strcmp(p.name, name) != 0) {
		log_error("%s is your buddy '%s' already; remove %s first to rename "
			  "('buddyfs buddy remove %s')", hex, p.name, p.name, p.name);
		return EXIT_FAIL;
	}
	if (rc == -ENOENT) {
		memset(&p, 0, sizeof(p));
		memcpy(p.id, peer_id, sizeof(p.id));
		rc = 0;
	}
	if (rc) {
		log_error("cannot read the store in %s/store: %s", cli->home, bfs_strerror(rc));
		return EXIT_FAIL;
	}
	/* a peer known but not a buddy (a name looked up) keeps its addresses */
	snprintf(p.name, sizeof(p.name), "%s", name);
	if (cert && cert_len <= sizeof(p.cert)) {
		memcpy(p.cert, cert, cert_len);
		p.cert_len = cert_len;
	}
	p.buddy = STORE_BUDDY_ADDED;
	p.added = (uint64_t)time(NULL);
	rc = store_peer_put(s, &p);
	if (rc == -EEXIST) {
		log_error("%s was just pinned to another peer id; see 'buddyfs buddy list'", name);
		return EXIT_FAIL;
	}
	if (rc) {
		log_error("cannot save %s in the store in %s/store: %s", name, cli->home, bfs_strerror(rc));
		return EXIT_FAIL;
	}
	printf("added %s %s (sharing starts once %s adds you too)\n", name, hex, name);
	(void)daemon_rescan(cli->home); /* a running daemon watches the buddy at once */
	return EXIT_OK;
}

static int cmd_buddy_add(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	struct opt opts[] = { { .name = "--id", .has_value = true } };
	char name[IDENTITY_NAME_MAX + 1], hex[IDENTITY_PEER_ID_HEX_BYTES], q[QUOTE_BYTES];
	uint8_t peer_id[IDENTITY_PEER_ID_BYTES], cert[STORE_CERT_MAX_BYTES];
	size_t cert_len = 0;
	struct identity *me = NULL;
	struct store *s = NULL;
	const char *pos[1];
	int rc;

	rc = parse_args(cli, cmd, argc, argv, opts, 1, pos, 1, 1);
	if (rc)
		return rc;
	rc = check_name(name, pos[0], "buddy name");
	if (rc)
		return rc;
	if (opts[0].value && identity_peer_id_parse(peer_id, opts[0].value) != 0) {
		log_error("bad peer id '%s': want 64 hex digits, as 'buddyfs id' prints them",
			  quote(q, opts[0].value));
		return EXIT_USAGE;
	}
	rc = load_identity(cli, &me);
	if (rc)
		return rc;
	rc = EXIT_FAIL;
	if (!opts[0].value) {
		/* look the name up at the rendezvous and pin what it says (TOFU) */
		char why[RDV_ONESHOT_WHY_BYTES];
		enum log_level was;
		int lr;

		if (!me->config.rdv_host[0]) {
			log_error("no rendezvous is set in %s to look '%s' up: pass --id PEERID (your "
				  "buddy's 'buddyfs id' shows it)", cli->home, name);
			goto out;
		}
		was = quiet_begin();
		lr = rdv_oneshot_lookup(me, me->config.rdv_host, me->config.rdv_port, name,
					RDV_ONESHOT_DEFAULT_TIMEOUT_MS, peer_id, cert, sizeof(cert), &cert_len,
					why, sizeof(why));
		quiet_end(was);
		if (lr) {
			log_error("cannot look '%s' up: %s", name, why);
			goto out;
		}
	}
	if (sodium_memcmp(peer_id, me->peer_id, IDENTITY_PEER_ID_BYTES) == 0) {
		identity_peer_id_hex(hex, peer_id);
		log_error("%s is your own peer id: a buddy is someone else", hex);
		goto out;
	}
	if (strcmp(name, me->config.name) == 0) {
		log_error("'%s' is your own name: a buddy has a name of their own", name);
		goto out;
	}
	if (open_store(cli, &s) == 0)
		rc = pin_buddy(cli, s, name, peer_id, cert_len ? cert : NULL, cert_len);
out:
	store_close(s);
	identity_free(me);
	return rc;
}

static int cmd_buddy_remove(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	char name[IDENTITY_NAME_MAX + 1];
	struct identity *me = NULL;
	struct store *s = NULL;
	struct store_peer p;
	const char *pos[1];
	int rc;

	rc = parse_args(cli, cmd, argc, argv, NULL, 0, pos, 1, 1);
	if (rc)
		return rc;
	rc = check_name(name, pos[0], "buddy name");
	if (rc)
		return rc;
	rc = load_identity(cli, &me);
	if (rc)
		return rc;
	rc = EXIT_FAIL;
	if (open_store(cli, &s))
		goto out;
	rc = store_peer_by_name(s, name, &p);
	if (rc == -ENOENT) {
		log_error("%s is not a buddy (see 'buddyfs buddy list')", name);
		rc = EXIT_FAIL;
		goto out;
	}
	if (rc == 0)
		rc = store_peer_del(s, p.id);
	if (rc) {
		log_error("cannot remove %s from the store in %s/store: %s", name, cli->home,
			  bfs_strerror(rc));
		rc = EXIT_FAIL;
		goto out;
	}
	printf("removed %s\n", name);
	(void)daemon_rescan(cli->home);
	rc = EXIT_OK;
out:
	store_close(s);
	identity_free(me);
	return rc;
}

struct buddy_rows {
	struct store_peer *rows;
	size_t n, cap;
};

static int collect_buddy(void *ctx, const struct store_peer *p)
{
	struct buddy_rows *b = ctx;

	if (p->buddy != STORE_BUDDY_ADDED)
		return 0;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct store_peer *rows = realloc(b->rows, cap * sizeof(*rows));

		if (!rows)
			return -ENOMEM;
		b->rows = rows;
		b->cap = cap;
	}
	b->rows[b->n++] = *p;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct store_peer *)a)->name, ((const struct store_peer *)b)->name);
}

/*
 * live_field - the @k-th space-separated field (0: the peer id) of the
 * daemon's BUDDIES line for @hex in @text, copied into @out; "-" when the
 * daemon did not list it.
 */
static const char *live_field(char *out, size_t cap, const char *text, const char *hex, int k)
{
	size_t hl = strlen(hex);

	snprintf(out, cap, "-");
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);

		if (len > hl && strncmp(line, hex, hl) == 0 && line[hl] == ' ') {
			const char *f = line + hl + 1, *end = line + len;

			for (int i = 1; i < k && f < end; i++) {
				const char *sp = memchr(f, ' ', (size_t)(end - f));

				f = sp ? sp + 1 : end;
			}
			if (f < end) {
				const char *sp = memchr(f, ' ', (size_t)(end - f));
				size_t n = (size_t)((sp ? sp : end) - f);

				if (n < cap) {
					memcpy(out, f, n);
					out[n] = '\0';
				}
			}
			return out;
		}
		line = nl ? nl + 1 : NULL;
	}
	return out;
}

static int cmd_buddy_list(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	char hex[IDENTITY_PEER_ID_HEX_BYTES], presence[16], addr[72], path[16];
	struct buddy_rows b = { 0 };
	struct identity *me = NULL;
	struct store *s = NULL;
	char *live = NULL;
	int width = 4, awidth = 7, rc;

	rc = parse_args(cli, cmd, argc, argv, NULL, 0, NULL, 0, 0);
	if (rc)
		return rc;
	rc = load_identity(cli, &me);
	if (rc)
		return rc;
	rc = EXIT_FAIL;
	if (open_store(cli, &s))
		goto out;
	rc = store_peer_foreach(s, collect_buddy, &b);
	if (rc) {
		log_error("cannot list the buddies in %s/store: %s", cli->home, bfs_strerror(rc));
		rc = EXIT_FAIL;
		goto out;
	}
	/* presence, address and path: live from the running daemon, if any */
	rc = daemon_buddies(cli->home, &live);
	if (rc && rc != -ESRCH)
		log_info("cannot ask the daemon (%s): showing the store only", bfs_strerror(rc));
	if (b.n > 1)
		qsort(b.rows, b.n, sizeof(*b.rows), by_name);
	for (size_t i = 0; i < b.n; i++) {
		if ((int)strlen(b.rows[i].name) > width)
			width = (int)strlen(b.rows[i].name);
		identity_peer_id_hex(hex, b.rows[i].id);
		if (live && (int)strlen(live_field(addr, sizeof(addr), live, hex, 2)) > awidth)
			awidth = (int)strlen(addr);
	}
	printf("%-*s  %-64s  %-7s  %-8s  %-*s  %s\n", width, "NAME", "PEERID", "SHARING", "PRESENCE", awidth,
	       "ADDRESS", "PATH");
	for (size_t i = 0; i < b.n; i++) {
		identity_peer_id_hex(hex, b.rows[i].id);
		if (live) {
			live_field(presence, sizeof(presence), live, hex, 1);
			if (strcmp(presence, "-") == 0)
				snprintf(presence, sizeof(presence), "offline");
			live_field(addr, sizeof(addr), live, hex, 2);
			live_field(path, sizeof(path), live, hex, 3);
		} else {
			snprintf(presence, sizeof(presence), "offline");
			snprintf(addr, sizeof(addr), "-");
			snprintf(path, sizeof(path), "-");
		}
		printf("%-*s  %-64s  %-7s  %-8s  %-*s  %s\n", width, b.rows[i].name, hex,
		       b.rows[i].mutual ? "mutual" : "pending", presence, awidth, addr, path);
	}
	rc = EXIT_OK;
out:
	free(live);
	free(b.rows);
	store_close(s);
	identity_free(me);
	return rc;
}

/* The daemon commands: mount, umount, status (the work is in daemon.c). */
static int cmd_daemon(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	struct opt opts[] = {
		{ .name = "--foreground", .short_name = 'f' },
		{ .name = "--options", .short_name = 'o', .has_value = true },
	};
	struct daemon_params dp = { .timeout_s = DAEMON_TIMEOUT_DEFAULT_S };
	char q[QUOTE_BYTES], bad[QUOTE_BYTES];
	const char *pos[1];
	bool is_mount = strcmp(cmd->name, "mount") == 0;
	bool is_status = strcmp(cmd->name, "status") == 0;
	int n_pos = is_status ? 0 : 1;
	char *text = NULL;
	int rc;

	rc = parse_args(cli, cmd, argc, argv, opts, is_mount ? 2 : 0, pos, n_pos, n_pos);
	if (rc)
		return rc;
	if (is_mount && opts[1].value && daemon_options_parse(&dp, opts[1].value, bad, sizeof(bad)) != 0) {
		log_error("bad mount option '%s': want timeout=SECONDS (1-3600), cache_size=MiB, port=N, "
			  "bind=IP, rendezvous=HOST:PORT|none, test_online, test_tamper", quote(q, bad));
		return EXIT_USAGE;
	}
	if (strcmp(cmd->name, "umount") == 0) {
		/* the home is optional here: the mount names its daemon */
		if (identity_home_resolve(cli->home, sizeof(cli->home), cli->home_opt) != 0)
			cli->home[0] = '\0';
		return daemon_umount(cli->home[0] ? cli->home : NULL, pos[0]) ? EXIT_FAIL : EXIT_OK;
	}
	rc = need_home(cli);
	if (rc)
		return rc;
	if (is_mount) {
		dp.home = cli->home;
		dp.mountpoint = pos[0];
		dp.foreground = opts[0].value != NULL;
		return daemon_mount(&dp) ? EXIT_FAIL : EXIT_OK;
	}
	rc = daemon_status(cli->home, &text);
	if (rc == -ESRCH) {
		log_error("no buddyfs daemon runs for %s ('buddyfs mount DIR' starts one)", cli->home);
		return EXIT_FAIL;
	}
	if (rc)
		return EXIT_FAIL;
	fputs(text, stdout);
	free(text);
	return EXIT_OK;
}

static int run_group(struct cli *cli, const struct command *cmds, const struct command *group, int argc,
		     char **argv);

static int cmd_group(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	return run_group(cli, cmd->subs, cmd, argc, argv);
}

static int cmd_help(struct cli *cli, const struct command *cmd, int argc, char **argv);

static const struct command buddy_commands[] = {
	{
		.name = "add", .run = cmd_buddy_add, .path = "buddy add", .args = "NAME [--id PEERID]",
		.summary = "pin a buddy's name to their peer id",
		.help = "Adds NAME as a buddy and pins the name to PEERID (64 hex digits: what\n"
			"'buddyfs id' prints on your buddy's machine).  Sharing starts once\n"
			"your buddy adds you too.  Adding the same name and peer id again does\n"
			"nothing; a name pinned to another peer id must be removed first.\n"
			"Without --id, NAME is looked up at your rendezvous (see 'buddyfs init\n"
			"--rendezvous') and the peer id it answers with is pinned: from then on\n"
			"a different peer id for NAME is refused.\n"
			"\n"
			"  --id PEERID   the buddy's peer id (no lookup)\n",
	},
	{
		.name = "remove", .run = cmd_buddy_remove, .path = "buddy remove", .args = "NAME",
		.summary = "forget a buddy",
		.help = "Removes NAME and its pinned peer id from your buddies.\n",
	},
	{
		.name = "list", .run = cmd_buddy_list, .path = "buddy list", .args = "",
		.summary = "list buddies and their state",
		.help = "Prints a header line, then one line per buddy, sorted by name:\n"
			"  NAME      the buddy's name\n"
			"  PEERID    the pinned peer id (64 hex digits)\n"
			"  SHARING   mutual (both added each other) or pending\n"
			"  PRESENCE  online or offline, as the running daemon sees it\n"
			"            (the rendezvous's presence, or an open session);\n"
			"            offline while no daemon runs\n"
			"  ADDRESS   the far address of the session with the buddy, else the\n"
			"            address the rendezvous sees it at, or -\n"
			"  PATH      direct, or relayed through the rendezvous, while a session\n"
			"            is open; - otherwise\n",
	},
	{ 0 },
};

static const struct command commands[] = {
	{
		.name = "init", .run = cmd_init, .path = "init", .args = "NAME [--rendezvous HOST:PORT]",
		.summary = "make a new identity in the home directory",
		.help = "Makes the home directory (mode 0700), a new Ed25519 key pair, its\n"
			"certificate and your peer id (SHA-256 of the certificate), and prints\n"
			"  peer id PEERID (NAME)\n"
			"NAME: 1-32 of a-z 0-9 . _ - (upper case is folded to lower), not '.'\n"
			"or '..'.  An existing identity is never overwritten: use another\n"
			"--home for another identity.\n"
			"\n"
			"  --rendezvous HOST:PORT   the rendezvous server to use (port 1935 if\n"
			"                           left out; [IPV6]:PORT for IPv6).  NAME is\n"
			"                           registered there (first come, first\n"
			"                           served: a taken name fails init and keeps\n"
			"                           nothing); if the server cannot be reached,\n"
			"                           the identity is kept and the daemon\n"
			"                           registers when it connects.\n",
	},
	{
		.name = "id", .run = cmd_id, .path = "id", .args = "",
		.summary = "print your name and peer id",
		.help = "Prints 'NAME PEERID': give both to your buddies.\n",
	},
	{
		.name = "buddy", .run = cmd_group, .path = "buddy", .args = "SUBCOMMAND [ARGS...]",
		.summary = "manage buddies",
		.help = "Manages the people you share a folder with.\n",
		.subs = buddy_commands,
	},
	{
		.name = "mount", .run = cmd_daemon, .path = "mount", .args = "DIR [-f] [-o OPTS]",
		.summary = "start the daemon and mount",
		.help = "Starts the daemon and mounts your buddies' folders on DIR: one\n"
			"directory per online buddy.  Returns once the mount is live.  One\n"
			"daemon per home; a stale mount left by a crashed daemon is cleaned.\n"
			"\n"
			"The daemon keeps one UDP socket: buddies and the rendezvous (set by\n"
			"'buddyfs init --rendezvous') reach it there.\n"
			"\n"
			"  -f, --foreground        stay in the foreground (Ctrl-C unmounts)\n"
			"  -o, --options OPTS      comma-separated:\n"
			"      timeout=SECONDS     a read waiting for a silent buddy fails (EIO)\n"
			"                          after this long (1-3600, default 15)\n"
			"      cache_size=MiB      the cap of the cache of buddies' blocks\n"
			"      port=N              the UDP port (default 0: any free port)\n"
			"      bind=IP             the UDP socket's address (numeric; default all)\n"
			"      rendezvous=HOST:PORT  another rendezvous than the home's for this\n"
			"                          run; rendezvous=none for none\n"
			"      test_online         TESTS ONLY: every buddy counts as online and\n"
			"                          mutual\n"
			"      test_tamper         TESTS ONLY: corrupt every block served to\n"
			"                          buddies (their reads must refuse it)\n",
	},
	{
		.name = "umount", .run = cmd_daemon, .path = "umount", .args = "DIR",
		.summary = "unmount DIR and stop the daemon",
		.help = "Unmounts DIR cleanly and waits until the daemon exits.  With no\n"
			"daemon answering, DIR is unmounted directly (a stale mount is\n"
			"detached).\n",
	},
	{
		.name = "status", .run = cmd_daemon, .path = "status", .args = "",
		.summary = "the running daemon's view",
		.help = "Prints the running daemon's view as 'key value' lines:\n"
			"  home DIR, mount DIR, pid N, peer PEERID NAME\n"
			"  udp ADDR                  the socket buddies reach\n"
			"  rendezvous none, or rendezvous ADDR connected|connecting\n"
			"             observed=ADDR registered=yes|-|WHY\n"
			"  buddy NAME PEERID sharing=mutual|pending online=yes|no   per buddy\n"
			"  link NAME direct|relayed FARADDR rtt_ms=RTT   per open session\n"
			"  folder NAME up|down applied=N conflicts=N refused=N   per buddy\n"
			"         the folder protocol has seen\n"
			"  blocks fetched=N fetched_bytes=B bad=N timeouts=N served=N\n"
			"         served_bytes=B                  since the daemon started\n"
			"  transfers none, or transfers N and per transfer\n"
			"  transfer NAME fetching|serving done=B total=B rate=B/s in_flight=N\n"
			"Exits 1 when no daemon runs.\n",
	},
	{
		.name = "help", .run = cmd_help, .path = "help", .args = "[COMMAND [SUBCOMMAND]]",
		.summary = "help for buddyfs or a command",
		.help = "Prints the help of buddyfs, of COMMAND, or of COMMAND SUBCOMMAND;\n"
			"'buddyfs COMMAND --help' does the same.\n",
	},
	{ 0 },
};

static void print_usage(FILE *f)
{
	fprintf(f,
		"usage: buddyfs [--home DIR] [-v|--verbose] COMMAND [ARGS...]\n"
		"\n"
		"buddyfs shares one folder with each of your buddies, peer to peer over\n"
		"RTMFP (RFC 7016).  Each buddy directory is the folder two people share.\n"
		"\n"
		"Commands:\n");
	print_command_list(f, commands);
	fprintf(f,
		"\n"
		"Options:\n"
		"  --home DIR      the home directory that holds the identity and the store\n"
		"                  (default: $BUDDYFS_HOME, else $XDG_DATA_HOME/buddyfs,\n"
		"                  else ~/.local/share/buddyfs)\n"
		"  -v, --verbose   more messages on stderr (twice for debug)\n"
		"  -h, --help      this help; 'buddyfs COMMAND --help' for a command\n"
		"\n%s",
		exit_status_text);
}

static const struct command *find(const struct command *cmds, const char *name)
{
	for (const struct command *c = cmds; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static int cmd_help(struct cli *cli, const struct command *cmd, int argc, char **argv)
{
	const char *pos[2];
	const struct command *c, *sub;
	char q[QUOTE_BYTES];
	int rc;

	rc = parse_args(cli, cmd, argc, argv, NULL, 0, pos, 0, 2);
	if (rc)
		return rc;
	if (!pos[0]) {
		print_usage(stdout);
		return EXIT_OK;
	}
	c = find(commands, pos[0]);
	if (!c) {
		log_error("no command '%s' (see 'buddyfs --help')", quote(q, pos[0]));
		return EXIT_USAGE;
	}
	if (pos[1]) {
		sub = c->subs ? find(c->subs, pos[1]) : NULL;
		if (!sub) {
			log_error("no command '%s %s' (see 'buddyfs %s --help')", c->name, quote(q, pos[1]),
				  c->name);
			return EXIT_USAGE;
		}
		c = sub;
	}
	print_command_help(stdout, c);
	return EXIT_OK;
}

/*
 * run_group - global options, then the name of a command from @cmds and its
 * arguments.  @group is the command that owns @cmds, NULL at the top.
 */
static int run_group(struct cli *cli, const struct command *cmds, const struct command *group, int argc,
		     char **argv)
{
	const char *where = group ? group->path : "", *sp = group ? " " : "";
	const struct command *c;
	char q[QUOTE_BYTES];
	int i, rc;

	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
		rc = global_opt(cli, group, argc, argv, &i);
		if (rc == 1)
			continue;
		if (rc != 0)
			return rc;
		log_error("unknown option '%s' (see 'buddyfs%s%s --help')", quote(q, argv[i]), sp, where);
		return EXIT_USAGE;
	}
	if (i == argc) {
		if (group)
			log_error("'buddyfs %s' needs a subcommand (see 'buddyfs %s --help')", where, where);
		else
			print_usage(stderr);
		return EXIT_USAGE;
	}
	c = find(cmds, argv[i]);
	if (!c) {
		log_error("unknown command '%s%s%s' (see 'buddyfs%s%s --help')", where, sp, quote(q, argv[i]),
			  sp, where);
		return EXIT_USAGE;
	}
	return c->run(cli, c, argc - i, argv + i);
}

int main(int argc, char **argv)
{
	struct cli cli = { 0 };
	int rc;

	log_init("buddyfs");
	if (identity_crypto_init() != 0) {
		log_error("libsodium failed to start");
		return EXIT_FAIL;
	}
	rc = run_group(&cli, commands, NULL, argc, argv);
	if (rc == HELP_SHOWN)
		rc = EXIT_OK;
	if (fflush(stdout) != 0 || ferror(stdout)) {
		log_error("cannot write to standard output: %s", strerror(errno));
		return EXIT_FAIL;
	}
	return rc;
}
