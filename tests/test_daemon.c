/*
 * test_daemon.c - the daemon's option parser (the rest of the daemon runs
 * with real mounts in tests/sys_fs.sh and tests/sys_mount_net.sh).
 */
#include <errno.h>
#include <string.h>

#include "buddyfs/daemon.h"
#include "t.h"

T_CASE(options_good)
{
	struct daemon_params p = { .timeout_s = DAEMON_TIMEOUT_DEFAULT_S };
	char bad[64] = "";

	T_CHECK_EQ_INT(daemon_options_parse(&p, "timeout=5,cache_size=64,test_online", bad, sizeof(bad)), 0);
	T_CHECK_EQ_INT(p.timeout_s, 5);
	T_CHECK_EQ_INT(p.cache_bytes, (uint64_t)64 << 20);
	T_CHECK(p.test_online);
	T_CHECK_EQ_INT(daemon_options_parse(&p, "", bad, sizeof(bad)), 0);
	T_CHECK_EQ_INT(daemon_options_parse(&p, ",,timeout=3600,", bad, sizeof(bad)), 0);
	T_CHECK_EQ_INT(p.timeout_s, 3600);
}

T_CASE(options_network)
{
	struct daemon_params p = { 0 };
	char bad[64] = "";

	T_CHECK_EQ_INT(daemon_options_parse(&p, "port=4000,bind=127.0.0.1,rendezvous=127.0.0.1:1999,test_tamper",
					   bad, sizeof(bad)), 0);
	T_CHECK_EQ_INT(p.port, 4000);
	T_CHECK(strcmp(p.bind, "127.0.0.1") == 0);
	T_CHECK(strcmp(p.rendezvous, "127.0.0.1:1999") == 0);
	T_CHECK(p.test_tamper);
	T_CHECK(!p.test_online);
	T_CHECK_EQ_INT(daemon_options_parse(&p, "port=0,bind=::1,rendezvous=none", bad, sizeof(bad)), 0);
	T_CHECK_EQ_INT(p.port, 0);
	T_CHECK(strcmp(p.bind, "::1") == 0);
	T_CHECK(strcmp(p.rendezvous, "none") == 0);
	T_CHECK_EQ_INT(daemon_options_parse(&p, "port=65535,rendezvous=[::1]:7,rendezvous=rdv.example.net", bad,
					   sizeof(bad)), 0);
	T_CHECK_EQ_INT(p.port, 65535);
	T_CHECK(strcmp(p.rendezvous, "rdv.example.net") == 0); /* the last one wins; resolved at start */
}

T_CASE(options_bad)
{
	static const char *const bads[] = {
		"timeout=0", "timeout=3601", "timeout=", "timeout=-1", "timeout=1x", "timeout= 1",
		"cache_size=0", "cache_size=1048577", "cache_size=99999999999999999999", "frob",
		"test_online=1", "allow_other", "port=65536", "port=-1", "port=", "port=x",
		"bind=localhost", "bind=1.2.3", "bind=", "bind=127.0.0.1:5", "rendezvous=", "rendezvous=a b",
		"rendezvous=127.0.0.1:0", "rendezvous=::1", "test_tamper=1",
	};
	struct daemon_params p = { 0 };
	char bad[64];

	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		T_CHECK_EQ_INT(daemon_options_parse(&p, bads[i], bad, sizeof(bad)), -EINVAL);
		T_CHECK(strcmp(bad, bads[i]) == 0);
	}
	T_CHECK_EQ_INT(daemon_options_parse(&p, "timeout=5,nope,test_online", bad, sizeof(bad)), -EINVAL);
	T_CHECK(strcmp(bad, "nope") == 0);
}

int main(void)
{
	T_RUN(options_good);
	T_RUN(options_network);
	T_RUN(options_bad);
	return t_done();
}
