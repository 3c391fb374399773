/* What workload.c and https.c share. */
#include <netinet/in.h>

double now_ns(void);
void read_file(const char *path);
/* A TCP listener on a free loopback port; its address in *addr. */
int listener(struct sockaddr_in *addr);
/* The https workload (https.c): prints ns per request, returns the exit status. */
int https(long n, const char *file);
