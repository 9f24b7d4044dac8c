/*
 * echo_client.c - load generator of `netcore bench` (ping-pong echo).
 *
 * Single-threaded, epoll (level-triggered), non-blocking sockets, loopback only.
 * Modes (one per run):
 *   ping-pong (default)  N connections; each sends a message of S bytes, waits until all
 *                        S bytes have come back (content verified), records the round-trip
 *                        latency and sends the next one.
 *   --reconnect          the same, but every message on a fresh connection: connect, send,
 *                        read the echo, close.  Latency then includes the connect; the
 *                        figure of interest is connections per second (the herd preset).
 *   --burst              each of the N connections is opened once, all at the same moment,
 *                        sends one message and closes after its echo; the connect-to-echo
 *                        time of each is recorded (the backlog preset: a connect whose SYN
 *                        was dropped by a full accept queue takes >= 1 s, the SYN
 *                        retransmission timeout).
 *   --idle K             before the active connections, K connections are opened and then
 *                        left silent for the whole run (the idle preset).
 *   --rcvbuf/--sndbuf B  SO_RCVBUF/SO_SNDBUF of the active sockets (the edge preset: small
 *                        buffers force partial reads and writes on the server).
 *
 * Timeline: warm-up W seconds (not counted), then D seconds measured (--burst: no warm-up;
 * the measured window ends when every connection has finished, or after D seconds).
 * On stderr it prints "warm\n" when the warm-up ends and "done\n" when the measured
 * window ends (both flushed), so that a driver can sample the server's CPU time exactly
 * around the measured window.  Then it prints ONE JSON object on stdout.
 *
 * Exit status: 0 on success; 1 if a connection fails, is closed by the server or
 * receives wrong bytes (ping-pong mode; --reconnect and --burst count failed connects in
 * "connect_errors" instead, since refusing them is what those presets measure);
 * 2 on usage errors.
 *
 * Build: cc -O2 -Wall -Wextra -o echo_client echo_client.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- histogram
 * Linear buckets of 1 us from 0 to LIN_MAX_US (100 ms), then logarithmic
 * buckets: for v >= LIN_MAX_US, bucket = (msb(v) - LOG_FIRST_MSB) * 8 + the
 * next 3 bits below the msb (8 sub-buckets per power of two, <= 12.5% wide).
 * Fixed size: ~800 KB, independent of run length.
 */
#define LIN_MAX_US 100000u
#define LOG_SUB_BITS 3
#define LOG_SUB (1u << LOG_SUB_BITS)
#define LOG_FIRST_MSB 16 /* 2^16 = 65536 < 100000 < 2^17 */
#define LOG_LAST_MSB 40  /* ~12.7 days: far beyond any run */
#define LOG_BUCKETS ((LOG_LAST_MSB - LOG_FIRST_MSB + 1) * LOG_SUB)

static uint64_t hist_lin[LIN_MAX_US];
static uint64_t hist_log[LOG_BUCKETS];
static uint64_t hist_count;
static uint64_t hist_max_ns;
static long double hist_sum_ns;

static int msb64(uint64_t v) { return 63 - __builtin_clzll(v); }

static void hist_add(uint64_t ns)
{
    uint64_t us = ns / 1000u;
    hist_count++;
    hist_sum_ns += (long double)ns;
    if (ns > hist_max_ns)
        hist_max_ns = ns;
    if (us < LIN_MAX_US) {
        hist_lin[us]++;
        return;
    }
    int m = msb64(us);
    if (m > LOG_LAST_MSB) {
        hist_log[LOG_BUCKETS - 1]++;
        return;
    }
    unsigned sub = (unsigned)((us >> (m - LOG_SUB_BITS)) & (LOG_SUB - 1));
    hist_log[(unsigned)(m - LOG_FIRST_MSB) * LOG_SUB + sub]++;
}

/* Lower bound (us) of the log bucket with index i. */
static double log_bucket_low(unsigned i)
{
    unsigned m = i / LOG_SUB + LOG_FIRST_MSB;
    unsigned sub = i % LOG_SUB;
    uint64_t low = ((uint64_t)1 << m) | ((uint64_t)sub << (m - LOG_SUB_BITS));
    return (double)low;
}

/* Nearest-rank percentile, p in (0, 1]; returns the bucket's lower bound in
 * microseconds (clamped up to LIN_MAX_US for the first log buckets). */
static double hist_percentile(double p)
{
    if (hist_count == 0)
        return 0.0;
    uint64_t rank = (uint64_t)(p * (double)hist_count + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > hist_count)
        rank = hist_count;
    uint64_t cum = 0;
    for (unsigned i = 0; i < LIN_MAX_US; i++) {
        cum += hist_lin[i];
        if (cum >= rank)
            return (double)i;
    }
    for (unsigned i = 0; i < LOG_BUCKETS; i++) {
        cum += hist_log[i];
        if (cum >= rank) {
            double low = log_bucket_low(i);
            return low < LIN_MAX_US ? (double)LIN_MAX_US : low;
        }
    }
    return (double)hist_max_ns / 1000.0;
}

/* ---------------------------------------------------------------- helpers */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds_self(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: echo_client [--host 127.0.0.1] --port PORT [-c CONNS] [-s SIZE]\n"
            "                   [-w WARMUP_S] [-d DURATION_S] [--idle K] [--reconnect | --burst]\n"
            "                   [--rcvbuf BYTES] [--sndbuf BYTES]\n"
            "  -H, --host        server address, loopback only (127.0.0.0/8 or ::1)\n"
            "  -p, --port        server port (required)\n"
            "  -c, --connections number of connections (default 64)\n"
            "  -s, --size        message size in bytes (default 64)\n"
            "  -w, --warmup      warm-up seconds, not counted (default 1)\n"
            "  -d, --duration    measured seconds (default 5)\n"
            "  -i, --idle        silent connections opened first and held (default 0)\n"
            "  -r, --reconnect   a new connection for every message\n"
            "  -b, --burst       open all connections at once, one message each, then stop\n"
            "      --rcvbuf      SO_RCVBUF of the active sockets (default: kernel's)\n"
            "      --sndbuf      SO_SNDBUF of the active sockets (default: kernel's)\n");
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo) || !(v <= hi))
        return -1;
    *out = v;
    return 0;
}

/* ---------------------------------------------------------------- connections */
enum { ST_CONNECTING = 1, ST_ACTIVE = 2 };

struct conn {
    int fd;
    int state;         /* 0 closed, ST_CONNECTING, ST_ACTIVE */
    uint32_t id;
    uint32_t seq;      /* message sequence number on this connection slot */
    size_t sent;       /* bytes of the current message sent */
    size_t recvd;      /* bytes of the current message received back */
    int want_out;      /* EPOLLOUT currently registered */
    uint64_t start_ns; /* when the current message (or its connect) started */
    unsigned char *msg;
};

static size_t g_size;
static int g_epfd;
static unsigned char *g_rbuf;
static struct sockaddr_storage g_ss;
static socklen_t g_sslen;
static long g_rcvbuf, g_sndbuf;
static uint64_t g_connect_errors;
static char g_last_connect_error[128];

static void fill_msg(struct conn *c)
{
    /* Content differs per connection and per message so that a stale,
     * duplicated, reordered or cross-connection echo is detected. */
    uint32_t x = c->id * 2654435761u ^ (c->seq * 40503u + 0x9e3779b9u);
    for (size_t i = 0; i < g_size; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c->msg[i] = (unsigned char)x;
    }
}

static int set_events(struct conn *c, int want_out)
{
    if (c->want_out == want_out)
        return 0;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLRDHUP | (want_out ? EPOLLOUT : 0);
    ev.data.ptr = c;
    if (epoll_ctl(g_epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        return -1;
    c->want_out = want_out;
    return 0;
}

/* Send as much of the current message as possible.  0 ok, -1 error. */
static int conn_send(struct conn *c)
{
    while (c->sent < g_size) {
        ssize_t n = send(c->fd, c->msg + c->sent, g_size - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return set_events(c, 1);
        fprintf(stderr, "echo_client: conn %u: send: %s\n", c->id,
                n < 0 ? strerror(errno) : "returned 0");
        return -1;
    }
    return set_events(c, 0);
}

static int conn_start_msg(struct conn *c)
{
    c->seq++;
    fill_msg(c);
    c->sent = 0;
    c->recvd = 0;
    return conn_send(c);
}

static void conn_close(struct conn *c)
{
    if (c->state) {
        epoll_ctl(g_epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->state = 0;
    }
}

static int new_socket(void)
{
    int fd = socket(g_ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (g_rcvbuf > 0) {
        int v = (int)g_rcvbuf;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    }
    if (g_sndbuf > 0) {
        int v = (int)g_sndbuf;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    }
    return fd;
}

/* Start a non-blocking connect on slot c at time t.  0 ok (connecting), -1 error. */
static int conn_open(struct conn *c, uint64_t t)
{
    c->fd = new_socket();
    if (c->fd < 0) {
        snprintf(g_last_connect_error, sizeof g_last_connect_error, "socket: %s", strerror(errno));
        return -1;
    }
    c->start_ns = t;
    c->want_out = 1;
    int r = connect(c->fd, (struct sockaddr *)&g_ss, g_sslen);
    if (r < 0 && errno != EINPROGRESS) {
        snprintf(g_last_connect_error, sizeof g_last_connect_error, "connect: %s", strerror(errno));
        close(c->fd);
        return -1;
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.ptr = c;
    if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        snprintf(g_last_connect_error, sizeof g_last_connect_error, "epoll_ctl: %s", strerror(errno));
        close(c->fd);
        return -1;
    }
    c->state = ST_CONNECTING;
    return 0;
}

/* The connect of c finished (EPOLLOUT/ERR/HUP): 0 connected, -1 failed. */
static int conn_connected(struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        snprintf(g_last_connect_error, sizeof g_last_connect_error, "connect: %s", strerror(err));
        return -1;
    }
    c->state = ST_ACTIVE;
    return 0;
}

/* ---------------------------------------------------------------- main */
int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = -1, nconn = 64, size = 64, nidle = 0;
    double warmup = 1.0, duration = 5.0;
    int reconnect = 0, burst = 0;

    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"connections", required_argument, NULL, 'c'},
        {"size", required_argument, NULL, 's'},
        {"warmup", required_argument, NULL, 'w'},
        {"duration", required_argument, NULL, 'd'},
        {"idle", required_argument, NULL, 'i'},
        {"reconnect", no_argument, NULL, 'r'},
        {"burst", no_argument, NULL, 'b'},
        {"rcvbuf", required_argument, NULL, 'R'},
        {"sndbuf", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "H:p:c:s:w:d:i:rbh", opts, NULL)) != -1) {
        switch (o) {
        case 'H': host = optarg; break;
        case 'p':
            if (parse_long(optarg, 1, 65535, &port)) {
                fprintf(stderr, "echo_client: bad --port '%s'\n", optarg);
                return 2;
            }
            break;
        case 'c':
            if (parse_long(optarg, 1, 100000, &nconn)) {
                fprintf(stderr, "echo_client: bad --connections '%s' (1..100000)\n", optarg);
                return 2;
            }
            break;
        case 's':
            if (parse_long(optarg, 1, 16L * 1024 * 1024, &size)) {
                fprintf(stderr, "echo_client: bad --size '%s' (1..16777216)\n", optarg);
                return 2;
            }
            break;
        case 'w':
            if (parse_double(optarg, 0.0, 3600.0, &warmup)) {
                fprintf(stderr, "echo_client: bad --warmup '%s' (0..3600)\n", optarg);
                return 2;
            }
            break;
        case 'd':
            if (parse_double(optarg, 0.001, 3600.0, &duration)) {
                fprintf(stderr, "echo_client: bad --duration '%s' (0.001..3600)\n", optarg);
                return 2;
            }
            break;
        case 'i':
            if (parse_long(optarg, 0, 1000000, &nidle)) {
                fprintf(stderr, "echo_client: bad --idle '%s' (0..1000000)\n", optarg);
                return 2;
            }
            break;
        case 'r': reconnect = 1; break;
        case 'b': burst = 1; break;
        case 'R':
            if (parse_long(optarg, 1, 1L << 30, &g_rcvbuf)) {
                fprintf(stderr, "echo_client: bad --rcvbuf '%s'\n", optarg);
                return 2;
            }
            break;
        case 'S':
            if (parse_long(optarg, 1, 1L << 30, &g_sndbuf)) {
                fprintf(stderr, "echo_client: bad --sndbuf '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || port < 0) {
        usage(stderr);
        return 2;
    }
    if (reconnect && burst) {
        fprintf(stderr, "echo_client: --reconnect and --burst exclude each other\n");
        return 2;
    }
    if ((unsigned long long)nconn * (unsigned long long)size > (1ULL << 31)) {
        fprintf(stderr, "echo_client: connections * size exceeds 2 GiB\n");
        return 2;
    }

    /* Loopback only. */
    memset(&g_ss, 0, sizeof g_ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)&g_ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&g_ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127) {
            fprintf(stderr, "echo_client: refusing non-loopback address %s (127.0.0.0/8 only)\n", host);
            return 2;
        }
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        g_sslen = sizeof *sin;
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)) {
            fprintf(stderr, "echo_client: refusing non-loopback address %s (::1 only)\n", host);
            return 2;
        }
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        g_sslen = sizeof *sin6;
    } else {
        fprintf(stderr, "echo_client: --host must be a numeric loopback address, got '%s'\n", host);
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);

    /* Make room for the sockets: as far as the hard limit allows. */
    struct rlimit rl;
    rlim_t want = (rlim_t)nconn + (rlim_t)nidle + 16;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    g_size = (size_t)size;
    g_rbuf = malloc(g_size);
    struct conn *conns = calloc((size_t)nconn, sizeof *conns);
    int *idle_fds = calloc((size_t)nidle + 1, sizeof *idle_fds);
    if (!g_rbuf || !conns || !idle_fds) {
        fprintf(stderr, "echo_client: out of memory\n");
        return 1;
    }
    g_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g_epfd < 0) {
        perror("echo_client: epoll_create1");
        return 1;
    }

    /* Idle connections first, with blocking connects: they are all in the server's
     * accept queue (or accepted) before the first active message is sent. */
    uint64_t ti0 = now_ns();
    for (long i = 0; i < nidle; i++) {
        int fd = socket(g_ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            fprintf(stderr, "echo_client: socket (idle conn %ld of %ld): %s\n", i + 1, nidle, strerror(errno));
            return 1;
        }
        int r;
        do {
            r = connect(fd, (struct sockaddr *)&g_ss, g_sslen);
        } while (r < 0 && errno == EINTR);
        if (r < 0) {
            fprintf(stderr, "echo_client: connect (idle conn %ld of %ld) failed: %s\n", i + 1, nidle,
                    strerror(errno));
            return 1;
        }
        idle_fds[i] = fd;
    }
    double idle_connect_s = (double)(now_ns() - ti0) / 1e9;

    for (long i = 0; i < nconn; i++) {
        conns[i].id = (uint32_t)i;
        conns[i].msg = malloc(g_size);
        if (!conns[i].msg) {
            fprintf(stderr, "echo_client: out of memory\n");
            return 1;
        }
    }

    uint64_t t0 = now_ns();
    uint64_t warm_end = t0 + (uint64_t)(warmup * 1e9);
    uint64_t meas_start = 0, meas_end = 0, deadline = warm_end;
    int measuring = 0;
    uint64_t messages = 0, errors = 0, connections_done = 0, delayed = 0;
    double cpu_start = 0.0, cpu_end = 0.0;
    long pending = nconn; /* --burst: connections not finished yet */

    if (burst || warmup <= 0.0) {
        measuring = 1;
        meas_start = t0;
        cpu_start = cpu_seconds_self();
        deadline = meas_start + (uint64_t)(duration * 1e9);
        fputs("warm\n", stderr);
        fflush(stderr);
    }

    for (long i = 0; i < nconn; i++) {
        if (conn_open(&conns[i], now_ns()) < 0) {
            if (!reconnect && !burst) {
                fprintf(stderr, "echo_client: conn %ld of %ld: %s\n", i + 1, nconn, g_last_connect_error);
                errors++;
                break;
            }
            g_connect_errors++;
            if (burst)
                pending--;
        }
    }

    enum { MAXEV = 256 };
    struct epoll_event evs[MAXEV];
    int stop = errors > 0 || (burst && pending == 0);

    while (!stop) {
        uint64_t t = now_ns();
        if (t >= deadline) {
            if (!measuring) {
                measuring = 1;
                meas_start = t;
                cpu_start = cpu_seconds_self();
                deadline = meas_start + (uint64_t)(duration * 1e9);
                fputs("warm\n", stderr);
                fflush(stderr);
            } else {
                meas_end = t;
                cpu_end = cpu_seconds_self();
                break;
            }
        }
        uint64_t left_ns = deadline > t ? deadline - t : 0;
        int timeout_ms = (int)((left_ns + 999999u) / 1000000u);
        if (reconnect) {
            /* Slots whose reconnect failed (EMFILE, port exhaustion) retry every 10 ms. */
            for (long i = 0; i < nconn; i++)
                if (!conns[i].state) {
                    timeout_ms = timeout_ms > 10 ? 10 : timeout_ms;
                    break;
                }
        }
        int n = epoll_wait(g_epfd, evs, MAXEV, timeout_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("echo_client: epoll_wait");
            errors++;
            break;
        }
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;
            if (!c->state)
                continue;
            int bad = 0, finished = 0;
            if (c->state == ST_CONNECTING) {
                if (conn_connected(c) < 0) {
                    g_connect_errors++;
                    if (!reconnect && !burst) {
                        fprintf(stderr, "echo_client: conn %u: %s\n", c->id, g_last_connect_error);
                        bad = 1;
                    } else {
                        conn_close(c);
                        if (burst)
                            pending--;
                        else if (conn_open(c, now_ns()) < 0)
                            g_connect_errors++;
                        continue;
                    }
                } else {
                    if (!reconnect && !burst)
                        c->start_ns = now_ns(); /* ping-pong latency excludes the connect */
                    if (conn_start_msg(c) < 0)
                        bad = 1;
                }
                if (!bad)
                    continue;
            }
            if (!bad && (evs[k].events & EPOLLOUT)) {
                if (conn_send(c) < 0)
                    bad = 1;
            }
            if (!bad && (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))) {
                for (;;) {
                    size_t want_n = g_size - c->recvd;
                    ssize_t r = recv(c->fd, g_rbuf, want_n, 0);
                    if (r < 0 && errno == EINTR)
                        continue;
                    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        break;
                    if (r < 0) {
                        fprintf(stderr, "echo_client: conn %u: recv: %s\n", c->id, strerror(errno));
                        bad = 1;
                        break;
                    }
                    if (r == 0) {
                        fprintf(stderr,
                                "echo_client: conn %u: server closed the connection "
                                "(after %zu of %zu bytes of message %u)\n",
                                c->id, c->recvd, g_size, c->seq);
                        bad = 1;
                        break;
                    }
                    if (c->recvd + (size_t)r > c->sent ||
                        memcmp(g_rbuf, c->msg + c->recvd, (size_t)r) != 0) {
                        size_t off = 0;
                        while (off < (size_t)r && c->recvd + off < c->sent &&
                               g_rbuf[off] == c->msg[c->recvd + off])
                            off++;
                        fprintf(stderr,
                                "echo_client: conn %u: wrong bytes echoed at offset %zu of "
                                "message %u (%zu bytes sent so far, %zu received)\n",
                                c->id, c->recvd + off, c->seq, c->sent, c->recvd + (size_t)r);
                        bad = 1;
                        break;
                    }
                    c->recvd += (size_t)r;
                    if (c->recvd == g_size) {
                        uint64_t te = now_ns();
                        if (measuring) {
                            messages++;
                            hist_add(te - c->start_ns);
                            if (te - c->start_ns >= 900000000u)
                                delayed++;
                        }
                        if (reconnect || burst) {
                            finished = 1;
                            break;
                        }
                        c->start_ns = te;
                        if (conn_start_msg(c) < 0) {
                            bad = 1;
                            break;
                        }
                        /* Ping-pong: nothing more can be pending right now. */
                        break;
                    }
                }
            }
            if (finished) {
                conn_close(c);
                if (measuring)
                    connections_done++;
                if (burst) {
                    if (--pending == 0)
                        stop = 1;
                } else if (conn_open(c, now_ns()) < 0) {
                    g_connect_errors++;
                }
            } else if (bad) {
                errors++;
                conn_close(c);
                stop = 1; /* a broken server invalidates the run */
                if (burst && --pending == 0)
                    stop = 1;
            }
        }
        if (reconnect) {
            uint64_t tn = now_ns();
            for (long i = 0; i < nconn; i++)
                if (!conns[i].state && conn_open(&conns[i], tn) < 0)
                    g_connect_errors++;
        }
    }

    uint64_t tend = now_ns();
    if (!measuring) {
        meas_start = tend;
        cpu_start = cpu_seconds_self();
    }
    if (meas_end == 0) {
        meas_end = tend;
        cpu_end = cpu_seconds_self();
    }
    fputs("done\n", stderr);
    fflush(stderr);

    long unfinished = burst ? pending : 0;
    for (long i = 0; i < nconn; i++)
        conn_close(&conns[i]);
    for (long i = 0; i < nidle; i++)
        close(idle_fds[i]);

    double secs = (double)(meas_end - meas_start) / 1e9;
    double cpu = cpu_end - cpu_start;
    double rate = secs > 0 ? (double)messages / secs : 0.0;
    double mean = hist_count ? (double)(hist_sum_ns / (long double)hist_count) / 1000.0 : 0.0;
    const char *mode = burst ? "burst" : reconnect ? "reconnect" : "pingpong";
    printf("{\"mode\": \"%s\", \"messages\": %llu, \"seconds\": %.6f, \"messages_per_s\": %.1f, "
           "\"p50_us\": %.0f, \"p90_us\": %.0f, \"p99_us\": %.0f, \"p999_us\": %.0f, "
           "\"max_us\": %.1f, \"mean_us\": %.1f, \"errors\": %llu, "
           "\"connections_done\": %llu, \"connect_errors\": %llu, \"delayed_1s\": %llu, "
           "\"unfinished\": %ld, \"last_connect_error\": \"%s\", "
           "\"cpu_seconds\": %.4f, \"cpu_percent\": %.1f, "
           "\"connections\": %ld, \"idle\": %ld, \"idle_connect_s\": %.3f, \"size\": %ld, "
           "\"warmup_s\": %.3f, \"duration_s\": %.3f}\n",
           mode, (unsigned long long)messages, secs, rate,
           hist_percentile(0.50), hist_percentile(0.90), hist_percentile(0.99),
           hist_percentile(0.999), (double)hist_max_ns / 1000.0, mean,
           (unsigned long long)errors, (unsigned long long)connections_done,
           (unsigned long long)g_connect_errors, (unsigned long long)delayed, unfinished,
           g_last_connect_error, cpu, secs > 0 ? 100.0 * cpu / secs : 0.0,
           nconn, nidle, idle_connect_s, size, warmup, duration);
    fflush(stdout);
    return errors ? 1 : 0;
}
