/*
 * fs_mount.h - the real FUSE mount that the in-process fs tests share:
 * alice's home in /tmp with her identity and store, bob's identity in
 * home/bob and pinned as her mutual buddy, an fs mounted on home/mnt with
 * bob online, its loop running in a helper thread (the only one touching
 * fs and store once mounted) and a pipe from the test thread to the loop.
 * Owns: the skip check (root and /dev/fuse), making and removing all of
 * that.
 *
 * Leaves to the includer: what the pipe carries (its loop_fd callback),
 * the rest of fs_params (fetch, published, timeout), the files put in
 * bob's folder, stopping the loop and joining the thread before
 * tmount_close(), and every check.
 *
 * Static inline functions: include it from one test file per binary.
 */
#ifndef BUDDYFS_TESTS_FS_MOUNT_H
#define BUDDYFS_TESTS_FS_MOUNT_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buddyfs/fs.h"
#include "buddyfs/identity.h"
#include "buddyfs/loop.h"
#include "buddyfs/store.h"

struct tmount {
	char home[40], bob_home[64], mnt[64];
	struct identity *me, *bob;  /* alice (who mounts) and her buddy */
	struct store *s;            /* alice's */
	struct loop *loop;
	struct fs *fs;
	int cmd[2];                 /* the test writes cmd[1]; the loop reads cmd[0] */
	pthread_t th;               /* runs the loop */
};

/* tmount_can_run - root and /dev/fuse are here; else say test @name is skipped. */
static inline bool tmount_can_run(const char *name)
{
	if (getuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
		printf("# %s skipped: needs root and /dev/fuse\n", name);
		return false;
	}
	return true;
}

/*
 * tmount_open - make /tmp/@name.XXXXXX with alice's identity and store,
 * the mount point mnt/ and bob's identity in bob/, and pin bob as alice's
 * mutual buddy.  Returns 0 or the first error; tmount_close() frees what
 * was made.
 */
static inline int tmount_open(struct tmount *m, const char *name)
{
	struct store_peer p;
	int rc;

	snprintf(m->home, sizeof(m->home), "/tmp/%s.XXXXXX", name);
	if (!mkdtemp(m->home))
		return -errno;
	snprintf(m->bob_home, sizeof(m->bob_home), "%s/bob", m->home);
	snprintf(m->mnt, sizeof(m->mnt), "%s/mnt", m->home);
	rc = identity_create(&m->me, m->home, "alice", "", 0);
	if (rc)
		return rc;
	if (mkdir(m->mnt, 0700))
		return -errno;
	rc = identity_create(&m->bob, m->bob_home, "bob", "", 0);
	if (rc == 0)
		rc = store_open(&m->s, m->home, 0);
	if (rc)
		return rc;
	memset(&p, 0, sizeof(p));
	memcpy(p.id, m->bob->peer_id, sizeof(p.id));
	snprintf(p.name, sizeof(p.name), "bob");
	memcpy(p.cert, m->bob->cert, IDENTITY_CERT_BYTES);
	p.cert_len = IDENTITY_CERT_BYTES;
	p.buddy = STORE_BUDDY_ADDED;
	p.mutual = true;
	return store_peer_put(m->s, &p);
}

static inline void *tmount_loop_main(void *arg)
{
	loop_run(((struct tmount *)arg)->loop);
	return NULL;
}

/*
 * tmount_start - a loop with @on_cmd reading the pipe, an fs made from @fp
 * (its home, loop, store and id filled in here) with bob online, mounted
 * on m->mnt, and the loop running in m->th.
 */
static inline int tmount_start(struct tmount *m, struct fs_params *fp, loop_fd_fn *on_cmd)
{
	int rc = loop_new(&m->loop);

	if (rc)
		return rc;
	if (pipe(m->cmd))
		return -errno;
	rc = loop_fd_add(m->loop, m->cmd[0], LOOP_IN, on_cmd, NULL, NULL);
	if (rc)
		return rc;
	fp->home = m->home;
	fp->loop = m->loop;
	fp->store = m->s;
	fp->id = m->me;
	rc = fs_new(&m->fs, fp);
	if (rc)
		return rc;
	fs_buddy_set_online(m->fs, m->bob->peer_id, true);
	rc = fs_mount(m->fs, m->mnt, m->home);
	if (rc)
		return rc;
	return -pthread_create(&m->th, NULL, tmount_loop_main, m);
}

/*
 * tmount_close - once the loop thread has ended: free the fs (unmounting),
 * the loop, the pipe, the store and identities, and remove the home.
 * Returns whether the home was removed.
 */
static inline bool tmount_close(struct tmount *m)
{
	char cmd[128];

	fs_free(m->fs);
	m->fs = NULL;
	loop_free(m->loop);
	close(m->cmd[0]);
	close(m->cmd[1]);
	store_close(m->s);
	identity_free(m->me);
	identity_free(m->bob);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", m->home);
	return system(cmd) == 0;
}

#endif
