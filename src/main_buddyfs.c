/*
 * main_buddyfs.c - placeholder; the CLI arrives with the identity module.
 */
#include <stdio.h>

int main(void)
{
	fprintf(stderr, "buddyfs: not built yet\n");
	return 1;
}
