/*
 * fs_notify.c - telling the kernel to drop what it cached (attributes,
 * pages, names) from a thread of its own.
 *
 * Why a thread: a notification is a write to the FUSE device that the
 * kernel handles in the writer's context, and it takes locks there: the
 * parent directory's inode lock for a name (held meanwhile by a lookup,
 * create, readdir... of that directory waiting for our answer) and the
 * page locks of a file for its pages (held by a read waiting for its
 * blocks).  The loop answers those requests, so the loop writing the
 * notification itself could wait forever (libfuse's deadlock note on
 * fuse_lowlevel_notify_inval_entry).  The notifier thread may wait; the
 * loop goes on answering, which releases the lock.
 *
 * The loop queues notices (inode numbers and names, copied: the thread
 * touches no node, store or loop) under a mutex; the thread writes them in
 * order.  Inode numbers are never reused, so a notice about an inode the
 * kernel forgot meanwhile just fails with ENOENT, which is fine.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "buddyfs/log.h"
#include "fs_internal.h"

struct notice {
	struct notice *next;
	fuse_ino_t ino;   /* the inode, or the directory of @name */
	bool pages;       /* inode: its pages too, not only its attributes */
	bool entry;       /* a name: @name in directory @ino */
	char name[];
};

struct notifier {
	struct fuse_session *se;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct notice *head, **tail; /* under @mu */
	bool stop;                   /* under @mu */
	bool done;                   /* under @mu: the thread is about to return */
};

/* deliver - write one notice to the device (on the notifier thread). */
static void deliver(struct notifier *nt, const struct notice *n)
{
	int rc;

	if (n->entry)
		rc = fuse_lowlevel_notify_inval_entry(nt->se, n->ino, n->name, strlen(n->name));
	else
		rc = fuse_lowlevel_notify_inval_inode(nt->se, n->ino, n->pages ? 0 : -1, 0);
	if (rc && rc != -ENOENT && rc != -ENODEV && rc != -EBADF)
		log_debug("kernel cache invalidation of inode %llu: %s", (unsigned long long)n->ino,
			  strerror(-rc));
}

static void *notifier_main(void *arg)
{
	struct notifier *nt = arg;

	pthread_mutex_lock(&nt->mu);
	for (;;) {
		struct notice *n;

		while (!nt->head && !nt->stop)
			pthread_cond_wait(&nt->cv, &nt->mu);
		if (nt->stop)
			break;
		n = nt->head;
		nt->head = n->next;
		if (!nt->head)
			nt->tail = &nt->head;
		pthread_mutex_unlock(&nt->mu);
		deliver(nt, n);
		free(n);
		pthread_mutex_lock(&nt->mu);
	}
	nt->done = true;
	pthread_mutex_unlock(&nt->mu);
	return NULL;
}

int fs_notify_start(struct fs *fs)
{
	struct notifier *nt = calloc(1, sizeof(*nt));
	sigset_t all, old;
	int rc;

	if (!nt)
		return -ENOMEM;
	nt->se = fs->se;
	nt->tail = &nt->head;
	pthread_mutex_init(&nt->mu, NULL);
	pthread_cond_init(&nt->cv, NULL);
	/* the thread takes no signal: the loop reads them from its signalfd */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&nt->thread, NULL, notifier_main, nt);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		pthread_cond_destroy(&nt->cv);
		pthread_mutex_destroy(&nt->mu);
		free(nt);
		return rc;
	}
	fs->nt = nt;
	return 0;
}

static void queue(struct fs *fs, fuse_ino_t ino, bool pages, const char *name)
{
	struct notifier *nt = fs->nt;
	size_t len = name ? strlen(name) + 1 : 0;
	struct notice *n;

	if (!nt)
		return;
	n = malloc(sizeof(*n) + len);
	if (!n) {
		log_warn("cannot queue a kernel cache invalidation: %s", strerror(ENOMEM));
		return;
	}
	n->next = NULL;
	n->ino = ino;
	n->pages = pages;
	n->entry = name != NULL;
	if (name)
		memcpy(n->name, name, len);
	pthread_mutex_lock(&nt->mu);
	*nt->tail = n;
	nt->tail = &n->next;
	pthread_cond_signal(&nt->cv);
	pthread_mutex_unlock(&nt->mu);
}

void fs_notify_inode(struct fs *fs, fuse_ino_t ino, bool pages)
{
	queue(fs, ino, pages, NULL);
}

void fs_notify_entry(struct fs *fs, fuse_ino_t parent, const char *name)
{
	queue(fs, parent, false, name);
}

void fs_notify_stop(struct fs *fs, void (*pump)(struct fs *fs))
{
	struct notifier *nt = fs->nt;
	struct notice *n, *next;
	bool done;

	if (!nt)
		return;
	pthread_mutex_lock(&nt->mu);
	nt->stop = true;
	n = nt->head;
	nt->head = NULL;
	nt->tail = &nt->head;
	pthread_cond_signal(&nt->cv);
	done = nt->done;
	pthread_mutex_unlock(&nt->mu);
	for (; n; n = next) {
		next = n->next;
		free(n);
	}
	/* the notice being written may wait for a request only we answer */
	while (!done) {
		struct pollfd p = { .fd = fuse_session_fd(fs->se), .events = POLLIN };

		pump(fs);
		(void)poll(&p, 1, 10);
		pthread_mutex_lock(&nt->mu);
		done = nt->done;
		pthread_mutex_unlock(&nt->mu);
	}
	pthread_join(nt->thread, NULL);
	pthread_cond_destroy(&nt->cv);
	pthread_mutex_destroy(&nt->mu);
	free(nt);
	fs->nt = NULL;
}
