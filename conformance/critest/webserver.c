/* critest's web server images (nginx, httpd, hostnet-nginx), made here: a
 * static HTTP server answering every request with 200 and a page. Named as
 * the image's server (argv[0] is its name, for pidof), it writes its pid to
 * PIDFILE and prints BANNER, as the real servers' logs do.
 *
 *   webserver PORT PIDFILE BANNER */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s PORT PIDFILE BANNER\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    FILE *p = fopen(argv[2], "w");
    if (p) {
        fprintf(p, "%d\n", getpid());
        fclose(p);
    }
    printf("%s\n", argv[3]);
    fflush(stdout);
    int s = socket(AF_INET6, SOCK_STREAM, 0);
    int no = 0, yes = 1;
    setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &no, sizeof no);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(atoi(argv[1])),
                             .sin6_addr = in6addr_any};
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 64)) {
        perror("bind/listen");
        return 1;
    }
    static const char page[] = "<html><body><h1>Welcome to nginx!</h1></body></html>\n";
    char reply[512], buf[4096];
    int n = snprintf(reply, sizeof reply,
                     "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s", sizeof page - 1, page);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0)
            continue;
        (void)read(c, buf, sizeof buf);
        (void)write(c, reply, n);
        close(c);
    }
}
