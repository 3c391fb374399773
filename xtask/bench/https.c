/* The https workload: a client sends N small requests on one keep-alive TLS connection to a
 * server of its own (a child process on loopback, OpenSSL both), and reads each answer. What it
 * measures is what keytrail's proof of use adds to a TLS client: a uprobe on every SSL_write
 * (the server's too) and a map lookup on every socket send. The certificate and key are
 * KEYTRAIL_BENCH_CERT and KEYTRAIL_BENCH_KEY (xtask makes them).
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "workload.h"

static const char ANSWER[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

static void fail(const char *what) {
    fprintf(stderr, "https: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* Answers every request on the one connection it accepts, until the client closes. */
static void serve(int l, const char *cert, const char *key) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) fail("server certificate");
    int c = accept(l, 0, 0);
    SSL *s = SSL_new(ctx);
    SSL_set_fd(s, c);
    if (SSL_accept(s) != 1) fail("server handshake");
    char buf[4096];
    while (SSL_read(s, buf, sizeof buf) > 0)
        if (SSL_write(s, ANSWER, sizeof ANSWER - 1) <= 0) break;
    _exit(0);
}

int https(long n, const char *file) {
    const char *cert = getenv("KEYTRAIL_BENCH_CERT"), *key = getenv("KEYTRAIL_BENCH_KEY");
    if (!cert || !key) fail("KEYTRAIL_BENCH_CERT and KEYTRAIL_BENCH_KEY are not set");
    read_file(file);
    struct sockaddr_in addr;
    int l = listener(&addr);
    pid_t server = fork();
    if (server == 0) serve(l, cert, key);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&addr, sizeof addr)) fail("connect");
    SSL *s = SSL_new(ctx);
    SSL_set_fd(s, c);
    if (SSL_connect(s) != 1) fail("client handshake");
    char request[256], buf[4096];
    int len = snprintf(request, sizeof request,
                       "GET /v1/items HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                       "kt-bench-token-not-a-real-secret\r\n\r\n");
    double start = 0;
    for (long i = -1; i < n; i++) { /* the first request warms the connection up */
        if (i == 0) start = now_ns();
        if (SSL_write(s, request, len) != len) fail("write");
        if (SSL_read(s, buf, sizeof buf) <= 0) fail("read");
    }
    double per_request = (now_ns() - start) / n;
    SSL_shutdown(s);
    close(c);
    waitpid(server, 0, 0);
    printf("%.0f\n", per_request);
    return 0;
}
