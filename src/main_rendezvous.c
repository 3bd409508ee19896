/*
 * main_rendezvous.c - the buddyfs-rendezvous command line.
 *
 * The service itself (sessions, names, presence, introductions) is built on
 * the RTMFP transport; until that lands this program only parses its
 * options and says so.
 */
#include <stdio.h>
#include <string.h>

#include "buddyfs/log.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: buddyfs-rendezvous [--listen ADDR:PORT] [--db DIR]\n"
		"\n"
		"The buddyfs rendezvous service (the Stratus role): names, presence and\n"
		"introductions for peers behind NATs.  Default port 1935.\n");
}

int main(int argc, char **argv)
{
	log_init(argv[0]);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		}
	}
	log_error("the rendezvous service is not built yet in this version");
	return 1;
}
