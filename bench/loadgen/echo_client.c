/*
 * echo_client.c - ping-pong echo load generator for the netcore benchmark.
 *
 * Single-threaded, epoll (level-triggered), non-blocking sockets.
 * N connections to HOST:PORT (loopback only).  Each connection sends a
 * message of S bytes, waits until all S bytes have come back (content is
 * verified), records the round-trip latency and sends the next message.
 *
 * Timeline: warm-up W seconds (not counted), then D seconds measured.
 * On stderr it prints "warm\n" when the warm-up ends and "done\n" when the
 * measured window ends (both flushed), so that a driver can sample the
 * server's CPU time exactly around the measured window.  Then it prints ONE
 * JSON object on stdout.
 *
 * Exit status: 0 on success; 1 if a connection fails, is closed by the
 * server or receives wrong bytes (a message is printed on stderr and the
 * JSON, if the run got that far, carries "errors" > 0); 2 on usage errors.
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
            "                   [-w WARMUP_S] [-d DURATION_S]\n"
            "  -H, --host        server address, loopback only (127.0.0.0/8 or ::1)\n"
            "  -p, --port        server port (required)\n"
            "  -c, --connections number of connections (default 64)\n"
            "  -s, --size        message size in bytes (default 64)\n"
            "  -w, --warmup      warm-up seconds, not counted (default 1)\n"
            "  -d, --duration    measured seconds (default 5)\n");
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
struct conn {
    int fd;
    int alive;
    uint32_t id;
    uint32_t seq;      /* message sequence number on this connection */
    size_t sent;       /* bytes of the current message sent */
    size_t recvd;      /* bytes of the current message received back */
    int want_out;      /* EPOLLOUT currently registered */
    uint64_t start_ns; /* when the current message started */
    unsigned char *msg;
};

static size_t g_size;
static int g_epfd;
static unsigned char *g_rbuf;

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

static int conn_start_msg(struct conn *c, uint64_t t)
{
    c->seq++;
    fill_msg(c);
    c->sent = 0;
    c->recvd = 0;
    c->start_ns = t;
    return conn_send(c);
}

static void conn_close(struct conn *c)
{
    if (c->alive) {
        epoll_ctl(g_epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->alive = 0;
    }
}

/* ---------------------------------------------------------------- main */
int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = -1, nconn = 64, size = 64;
    double warmup = 1.0, duration = 5.0;

    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"connections", required_argument, NULL, 'c'},
        {"size", required_argument, NULL, 's'},
        {"warmup", required_argument, NULL, 'w'},
        {"duration", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "H:p:c:s:w:d:h", opts, NULL)) != -1) {
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
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || port < 0) {
        usage(stderr);
        return 2;
    }
    if ((unsigned long long)nconn * (unsigned long long)size > (1ULL << 31)) {
        fprintf(stderr, "echo_client: connections * size exceeds 2 GiB\n");
        return 2;
    }

    /* Loopback only. */
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127) {
            fprintf(stderr, "echo_client: refusing non-loopback address %s (127.0.0.0/8 only)\n", host);
            return 2;
        }
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        sslen = sizeof *sin;
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)) {
            fprintf(stderr, "echo_client: refusing non-loopback address %s (::1 only)\n", host);
            return 2;
        }
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        sslen = sizeof *sin6;
    } else {
        fprintf(stderr, "echo_client: --host must be a numeric loopback address, got '%s'\n", host);
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);

    /* Make room for the sockets. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nconn + 16) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)nconn + 16 ? rl.rlim_max : (rlim_t)nconn + 16;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    g_size = (size_t)size;
    g_rbuf = malloc(g_size);
    struct conn *conns = calloc((size_t)nconn, sizeof *conns);
    if (!g_rbuf || !conns) {
        fprintf(stderr, "echo_client: out of memory\n");
        return 1;
    }
    g_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g_epfd < 0) {
        perror("echo_client: epoll_create1");
        return 1;
    }

    /* Connect all (blocking connect on loopback, then non-blocking I/O). */
    for (long i = 0; i < nconn; i++) {
        struct conn *c = &conns[i];
        c->id = (uint32_t)i;
        c->msg = malloc(g_size);
        if (!c->msg) {
            fprintf(stderr, "echo_client: out of memory\n");
            return 1;
        }
        c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            fprintf(stderr, "echo_client: socket (conn %ld): %s\n", i, strerror(errno));
            return 1;
        }
        int r;
        do {
            r = connect(c->fd, (struct sockaddr *)&ss, sslen);
        } while (r < 0 && errno == EINTR);
        if (r < 0) {
            fprintf(stderr, "echo_client: connect to %s:%ld (conn %ld of %ld) failed: %s\n",
                    host, port, i + 1, nconn, strerror(errno));
            return 1;
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int fl = fcntl(c->fd, F_GETFL);
        if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
            perror("echo_client: fcntl");
            return 1;
        }
        struct epoll_event ev;
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.ptr = c;
        if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
            perror("echo_client: epoll_ctl");
            return 1;
        }
        c->alive = 1;
    }

    uint64_t t0 = now_ns();
    uint64_t warm_end = t0 + (uint64_t)(warmup * 1e9);
    uint64_t meas_start = 0, meas_end = 0, deadline = warm_end;
    int measuring = 0;
    uint64_t messages = 0, errors = 0;
    double cpu_start = 0.0, cpu_end = 0.0;
    long alive = nconn;

    if (warmup <= 0.0) {
        measuring = 1;
        meas_start = t0;
        cpu_start = cpu_seconds_self();
        deadline = meas_start + (uint64_t)(duration * 1e9);
        fputs("warm\n", stderr);
        fflush(stderr);
    }

    for (long i = 0; i < nconn; i++) {
        if (conn_start_msg(&conns[i], now_ns()) < 0) {
            errors++;
            conn_close(&conns[i]);
            alive--;
        }
    }

    enum { MAXEV = 256 };
    struct epoll_event evs[MAXEV];
    int stop = errors > 0;

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
            if (!c->alive)
                continue;
            int bad = 0;
            if (evs[k].events & EPOLLOUT) {
                if (conn_send(c) < 0)
                    bad = 1;
            }
            if (!bad && (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))) {
                for (;;) {
                    size_t want = g_size - c->recvd;
                    ssize_t r = recv(c->fd, g_rbuf, want, 0);
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
                        }
                        if (conn_start_msg(c, te) < 0) {
                            bad = 1;
                            break;
                        }
                        /* Ping-pong: nothing more can be pending right now. */
                        break;
                    }
                }
            }
            if (bad) {
                errors++;
                conn_close(c);
                alive--;
                stop = 1; /* a broken server invalidates the run */
            }
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

    for (long i = 0; i < nconn; i++)
        conn_close(&conns[i]);
    (void)alive;

    double secs = (double)(meas_end - meas_start) / 1e9;
    double cpu = cpu_end - cpu_start;
    double rate = secs > 0 ? (double)messages / secs : 0.0;
    double mean = hist_count ? (double)(hist_sum_ns / (long double)hist_count) / 1000.0 : 0.0;
    printf("{\"messages\": %llu, \"seconds\": %.6f, \"messages_per_s\": %.1f, "
           "\"p50_us\": %.0f, \"p90_us\": %.0f, \"p99_us\": %.0f, \"p999_us\": %.0f, "
           "\"max_us\": %.1f, \"mean_us\": %.1f, \"errors\": %llu, "
           "\"cpu_seconds\": %.4f, \"cpu_percent\": %.1f, "
           "\"connections\": %ld, \"size\": %ld, \"warmup_s\": %.3f, \"duration_s\": %.3f}\n",
           (unsigned long long)messages, secs, rate,
           hist_percentile(0.50), hist_percentile(0.90), hist_percentile(0.99),
           hist_percentile(0.999), (double)hist_max_ns / 1000.0, mean,
           (unsigned long long)errors, cpu, secs > 0 ? 100.0 * cpu / secs : 0.0,
           nconn, size, warmup, duration);
    fflush(stdout);
    return errors ? 1 : 0;
}
