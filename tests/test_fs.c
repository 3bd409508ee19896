/*
 * test_fs.c - the file system's parts that need no mount: name checks,
 * and fs_new preparing the home (objects/, staging/ emptied of interrupted
 * writes).  Real mounts are in tests/sys_fs.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buddyfs/fs.h"
#include "buddyfs/identity.h"
#include "buddyfs/loop.h"
#include "buddyfs/store.h"
#include "t.h"

T_CASE(name_check)
{
	char name[300];

	T_CHECK_EQ_INT(fs_name_check("a"), 0);
	T_CHECK_EQ_INT(fs_name_check("..."), 0);
	T_CHECK_EQ_INT(fs_name_check(".hidden"), 0);
	T_CHECK_EQ_INT(fs_name_check(""), -EINVAL);
	T_CHECK_EQ_INT(fs_name_check("."), -EINVAL);
	T_CHECK_EQ_INT(fs_name_check(".."), -EINVAL);
	T_CHECK_EQ_INT(fs_name_check("a/b"), -EINVAL);
	T_CHECK_EQ_INT(fs_name_check("/"), -EINVAL);
	memset(name, 'x', 255);
	name[255] = '\0';
	T_CHECK_EQ_INT(fs_name_check(name), 0);
	name[255] = 'x';
	name[256] = '\0';
	T_CHECK_EQ_INT(fs_name_check(name), -ENAMETOOLONG);
}

T_CASE(new_prepares_home)
{
	char home[] = "/tmp/test_fs.XXXXXX", path[PATH_MAX];
	struct identity *id = NULL;
	struct store *s = NULL;
	struct loop *loop = NULL;
	struct fs *fs = NULL;
	struct fs_params p = { 0 };
	struct stat st;
	int fd;

	T_CHECK(mkdtemp(home) != NULL);
	T_CHECK_EQ_INT(identity_create(&id, home, "alice", "", 0), 0);
	T_CHECK_EQ_INT(store_open(&s, home, 0), 0);
	T_CHECK_EQ_INT(loop_new(&loop), 0);
	snprintf(path, sizeof(path), "%s/staging", home);
	T_CHECK_EQ_INT(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/staging/123.0.tmp", home);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	T_CHECK(fd >= 0);
	T_CHECK(write(fd, "half", 4) == 4);
	close(fd);
	p.home = home;
	p.loop = loop;
	p.store = s;
	p.id = id;
	T_CHECK_EQ_INT(fs_new(&fs, &p), 0);
	T_CHECK(access(path, F_OK) != 0); /* the interrupted write is gone */
	snprintf(path, sizeof(path), "%s/objects", home);
	T_CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
	T_CHECK(fs_mountpoint(fs) == NULL);
	{
		uint8_t bob[STORE_PEER_ID_BYTES];

		memset(bob, 0xbb, sizeof(bob));
		T_CHECK(!fs_buddy_online(fs, bob));
		fs_buddy_set_online(fs, bob, true);
		T_CHECK(fs_buddy_online(fs, bob));
		fs_buddy_set_online(fs, bob, true);
		fs_buddy_set_online(fs, bob, false);
		T_CHECK(!fs_buddy_online(fs, bob));
		fs_entry_changed(fs, bob, "a/b"); /* not mounted: nothing to tell */
		fs_block_arrived(fs, bob, 0);     /* nobody waits: nothing to do */
		fs_block_arrived(fs, bob, -EIO);
	}
	fs_free(fs);
	loop_free(loop);
	store_close(s);
	identity_free(id);
	{
		char cmd[PATH_MAX + 16];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", home);
		T_CHECK(system(cmd) == 0);
	}
}

int main(void)
{
	T_RUN(name_check);
	T_RUN(new_prepares_home);
	return t_done();
}
