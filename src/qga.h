/* SPDX-License-Identifier: MIT */
/* What the parts of qga share: see qga.c for the map. */
#ifndef QGA_H
#define QGA_H
#define _GNU_SOURCE
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../json.h"

extern char **environ;

#define VERSION "0.2"
#ifdef __GNUC__
#define PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF(f, a)
#endif
#define MSG_MAX 512 /* a message's longest, its end included */

enum {
	EX_OK = 0,      /* success */
	EX_AGENT = 1,   /* the agent answered with an error */
	EX_USAGE = 2,   /* bad command line or request */
	EX_IO = 3,      /* connection or I/O failure */
	EX_TIMEOUT = 4, /* no reply in time */
	EX_PROTO = 5    /* the peer broke the protocol */
};

struct options {
	const char *addr;
	long long timeout;   /* milliseconds; 0: none */
	size_t maxreply;
	unsigned long long maxsize; /* the most a get, cat or get -r takes; 0: no bound */
	int timeout_set;     /* -t was given: it overrides every default */
	int addr_default;    /* neither -s nor QGA_SOCKET said where */
	int qmp, nosync, ret, pretty, json;
};

struct buf {
	char *p;
	size_t len, cap;
	int fixed;  /* p is not malloc's: it is copied when it must grow */
};

/* The kernel's struct sockaddr_vm, spelt out because musl ships no
 * <linux/vm_sockets.h>. */
struct vsock_addr {
	unsigned short family, reserved;
	unsigned int port, cid;
	unsigned char flags, zero[3];
};

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

struct conn {
	int up;                /* opened, and not yet closed */
	int fd;
	char name[300];        /* the address, as messages show it */
	struct buf in;         /* bytes received and not yet consumed */
	size_t off;            /* the first byte not consumed */
	struct json_scan sc;
	int qmp;               /* the peer is a QMP monitor */
	int dirty;             /* a timeout left replies in flight: resync */
	int fresh;             /* nothing received yet: a greeting may come */
	int sock;              /* a socket, which blocks; else it is polled */
	int partial;           /* a request was cut short: its rest never comes */
	int owed;              /* requests sent whose replies are not read */
	long long rcvto, sndto; /* the socket's timeouts, in ms; -1: not set */
	long long timeout;     /* for connecting and resynchronising */
	long long tmo;         /* the timeout of the wait under way, for messages */
	/* The first 64 KiB received go here: a short exchange then needs
	 * no allocation at all, which a whole process's ping feels. Last,
	 * so that resetting the rest does not touch its pages. */
	char first[65536];
};

/* A reply, as offsets into the connection's buffer, parsed two levels
 * deep, the object, its members and their values, or three when they fit
 * (see reply_parse). */
struct reply {
	const char *js;
	size_t len;
	struct json_tok tok[64];
	int ret, err, id;
};

/* With several targets the command runs on each in a child process of
 * its own, forked at the command's fan_out(): every built-in works as it
 * does on one, and a dead agent costs its timeout to its own child
 * alone. The parent relays the children's output a whole line at a time,
 * tagged with the target. */
struct many {
	const char **addr;
	int n, max, notag, quiet, json;
	int fanned;       /* the command has taken its fan-out step */
	struct buf *held; /* when not NULL, where each target's stdout goes */
	const char *tag;  /* in a child: its target, and its index */
	int index;
};

struct target {
	const char *name;
	pid_t pid;
	int fd[3];          /* its stdout and stderr, and its stdin */
	size_t fed;         /* how much of stdin it has been given */
	struct buf part[2]; /* what came after the last newline of each */
	struct buf js;      /* -j: its replies, held until it ends */
	char err[256];      /* its last message */
	/* In this process (fan_in): the replies to show, the first kept when
	 * it is tried again as guest-NAME, and the agent's commands. */
	int step;
	struct buf reply, first;
	char *list;
};

/* A file system of guest-get-fsinfo's reply (fs_at). */
struct fs {
	char *mnt, *type, *dev;
	long long used, total, priv;
};

/* A row of the table of the agent's commands (agent_cmds). */
struct agent_cmd {
	const char *name, *since, *shape;
};

/* What a command has left half done, which leave() undoes once armed:
 * the guest's open file handles, its temporary file (put), a streamed
 * program and its output files (exec), and here a partial download and
 * get -r's unpacking child. */
struct undo {
	int armed;              /* a command is under way: undo at exit */
	long long handle[2];    /* guest file handles, closed */
	long long stream_pid;   /* a streamed program, stopped */
	pid_t untar;            /* get -r's child, killed */
	char stream[32];        /* the stem of exec's output files, removed */
	/* Buffers of PATH_MAX bytes of their own, which a command that
	 * leaves no path never touches. */
	char *guest_tmp;        /* a partial upload, removed */
	char *local_tmp;        /* a partial download, removed */
};

/* A reply's return value, parsed whole. */
struct doc {
	const char *js;
	struct json_tok *t;
};

/* The shapes of the replies that more than one command reads. */
#define SHAPE_INFO "{version:s,supported_commands:[{name:s,enabled:b,success-response:b}]}"

#define SHAPE_OSINFO "{kernel-release:s,kernel-version:s,machine:s,id:s,name:s," \
	"pretty-name:s,version:s,version-id:s,variant:s,variant-id:s}"

#define SHAPE_EXEC "{pid:i}"

#define SHAPE_STATUS "{exited:b,exitcode:i,signal:i,out-data:s,err-data:s," \
	"out-truncated:b,err-truncated:b}"

/* Iterates over the elements of the array token arr. */
#define each(d, arr, i, k) \
	for ((k) = 0, (i) = (arr) + 1; (arr) >= 0 && \
	     (unsigned)(k) < (d)->t[arr].size; (k)++, (i) = (int)(d)->t[i].next)

/* Rows of text printed as aligned columns, the last one unpadded. */
struct table {
	char **cell;
	int ncol, n, cap;
};

/* Long options without a letter: their values stay clear of letters. */
enum {
	O_QMP = 256, O_NOSYNC, O_MAXREPLY, O_NOWAIT, O_MERGE, O_HTTP, O_ALLOW,
	O_DENY, O_MAXCLIENTS, O_MAXREQUEST, O_MODE, O_INPLACE, O_PS, O_RUN, O_MAX,
	O_STREAM, O_NOSTREAM, O_VERIFY, O_TOKEN, O_TARGETS, O_NOTAG, O_LOG, O_MAXSIZE,
	O_FSTYPES, O_MOUNTS, O_DISKS
};

/* The options every command takes, before its name or after it. */
#define GLOBAL_SHORTS "s:t:rpjP:qhV"

/* A built-in command: fn runs it, or else the command uses names is sent
 * (without arguments) and its return value shown with show. shorts and
 * longs are its own options; text is its usage (after the name), a
 * newline and its help; uses names the agent's commands it sends, which
 * serve's --allow and --deny take its name for; json says that it can
 * print the agent's reply (-j), and 2 that what it shows is the reply's
 * value as indented JSON. */
struct cmd {
	const char *name;
	int (*fn)(int, char **);
	void (*show)(const struct doc *);
	const char *shorts;
	const struct option *longs;
	const char *text, *uses;
	char json;
};

/* A folder or a symbolic link kept for the end: a folder gets its mode
 * and time once all within it is made; a link is made after every file,
 * in the place of an empty file that holds its name meanwhile (as GNU
 * tar does), so that no later entry can go through it, and only if that
 * file is still there: a later entry of the same name wins, as in tar. */
struct tar_late {
	char *path, *link;   /* link: the target; NULL for a folder */
	unsigned mode;
	long long mtime;
	struct stat st;      /* the link's placeholder */
};

struct untar {
	int in, root;
	const char *what;              /* the guest's folder, for messages */
	unsigned long long got, max;   /* bytes read; --max-size, 0 for none */
	mode_t mask;
	struct tar_late *late;
	size_t nlate, cap, bytes;
};

/* SHA-256 (FIPS 180-4), for --verify: what qga copied, as it went. */
struct sha256 {
	uint32_t h[8];
	uint64_t len;
	unsigned char blk[64];
};

/* Bytes per guest-file-read or -write: the agent allows 48 MiB; 4 MiB
 * keeps memory small and the round trips few. */
#define CHUNK (4 << 20)

/* The longest wait for a program that qga runs in the guest for its own
 * ends (rm, mv, tar), which a guest that never says it ended would make
 * endless. */
#define RUN_TIMEOUT 600000

/* How long shutdown waits for the reply that tells acceptance apart from
 * refusal, when the guest goes down too fast to give it. */
#define POWER_WAIT 3000

/* The reply timeouts of what takes long, as Proxmox's agent client has
 * them (-t overrides them): a freeze first syncs every filesystem. */
#define FREEZE_TIMEOUT 3600000

#define THAW_TIMEOUT 180000

#define TRIM_TIMEOUT 600000

struct client {
	int fd, http;
	unsigned gen;         /* tells a reused slot from the client gone */
	struct buf in, out;
	size_t outoff;
	struct json_scan sc;
	int pending;          /* its items not yet given back */
	int eof;              /* it sent all it will: it goes once answered */
	int last;             /* HTTP: its last request is taken */
	long long since;      /* HTTP: when its unfinished request began */
	int drain;            /* HTTP: refused, its bytes are read and dropped */
	unsigned seen;        /* the delivery pass that last found one waiting */
	int xf;               /* HTTP: its /file transfer's slot + 1, or 0 */
	int ln;               /* the listener it came through */
	size_t held;          /* its replies done, waiting behind an earlier one */
	char name[64];
};

/* A GET or PUT /file under way. */
struct xfer {
	pid_t pid;            /* the child that runs get or put; 0: a free slot */
	int cl, put, keep;
	unsigned gen;
	int data, err;        /* the data's pipe (to the child for PUT), its stderr */
	int status;           /* the child's exit status; -1 until it is known */
	int started, v11;     /* GET: the head has gone out; in chunks, for HTTP/1.1 */
	int chunked, after;   /* PUT: a chunked body; a chunk's CRLF comes next */
	int whole, bad;       /* PUT: all the body taken; why it is refused */
	int blocked, killed;  /* PUT: the pipe is full; the child was told to stop */
	unsigned long long left, bytes; /* PUT: the rest of the body or chunk; all given */
	struct buf msg;       /* the child's stderr, its first KiB */
};

/* A local reply is answered by the proxy itself: ITEM_LOCAL (HTTP 200,
 * or the status it is given), ITEM_BAD for what is not a request (400),
 * ITEM_DENIED (403); ITEM_NOREPLY goes to the agent, which answers it
 * only when it fails; ITEM_SCRAPE (metrics --listen) waits for the
 * collection under way. */
enum { ITEM_AGENT, ITEM_LOCAL, ITEM_NOREPLY, ITEM_EXEC, ITEM_FILE, ITEM_BAD, ITEM_DENIED,
       ITEM_SCRAPE };

/* WAIT: a POST /exec between two polls of its program's status; RUNNING:
 * a /file transfer, whose child talks to the agent as a client;
 * COLLECTING: a scrape, until the collection under way ends. */
enum { QUEUED, SENT, WAIT, RUNNING, COLLECTING, DONE, GONE };

/* The steps of reaching a peer, each a state of its link: connecting, a
 * VMM's answer to CONNECT (hvsock), QMP's greeting and its answer to
 * qmp_capabilities, the sync (a guest agent), QMP's answer to the sync
 * when a monitor greeted in its place (qmp_detect), and the wait for the
 * owner after the sync (see on_synced). */
enum { LINK_DOWN, LINK_CONNECTING, LINK_VMM, LINK_GREETING, LINK_CAPS, LINK_SYNCING,
       LINK_QMPSYNC, LINK_SYNCED, LINK_UP };

/* An address of the peer's, one of those to try in turn. */
struct link_addr {
	int family;
	socklen_t len;
	struct sockaddr_storage sa;
};

/* A link to one agent or QMP monitor that never blocks (src/link.c): its
 * owner polls fd for link_events(), hands what poll saw to link_io(),
 * calls link_tick() and link_flush() each time round its loop, and hears
 * from the peer through the hooks. Many links can share one loop. */
struct link {
	int state;              /* LINK_DOWN to LINK_UP */
	int fd, sock;           /* sock: a socket, not a device */
	int qmp;                /* the peer is a QMP monitor */
	int qmp_detect;         /* a monitor that greets in the sync's place is one */
	int heard;              /* the peer has sent something in this try */
	int lean;               /* one of many: no buffer kept between replies */
	const char *addr;       /* as given, for messages */
	char name[300];         /* what is connected to, for messages */
	char dev[300];          /* a character device's path; a bare path's */
	unsigned vmmport;       /* hvsock: the guest's port, after CONNECT */
	struct link_addr *aa;   /* where the peer is, worked out once */
	int naa, ai;            /* how many, the one being tried */
	struct buf in, out;     /* from the peer, not yet framed; to it, unsent */
	size_t outoff;
	struct json_scan sc;
	long long timeout;      /* for a try to reach the peer, all its steps */
	size_t maxreply;
	long long sync_id, try_deadline, retry_at, backoff;
	int connects;           /* how many times it was reached */
	int status;             /* why it is down: an exit status, */
	char why[MSG_MAX];      /* and in words */
	/* A reply or event once the link is up (or synced), r the owner's
	 * to change; the link lost (up: it was up); the link up; after the
	 * sync, whether the owner holds the link until it calls link_up();
	 * a value dropped, and why. */
	void (*on_reply)(struct link *, const char *js, size_t len, struct reply *r);
	void (*on_lost)(struct link *, int up);
	void (*on_up)(struct link *);
	int (*on_synced)(struct link *);
	void (*on_note)(struct link *, const char *msg);
};

/* A target's job in the engine (src/engine.c): its link, first, so
 * that the link's hooks find the job; the requests it waits for, at most
 * the engine's window of them. */
#define ENGINE_WINDOW 16
enum { JOB_WAITING, JOB_RUNNING, JOB_DONE };

struct job {
	struct link link;
	struct engine *e;
	int index, state;
	int up;                 /* the agent was reached and synced */
	const char *asked[ENGINE_WINDOW]; /* the requests whose replies are owed, */
	int first, nasked;      /* in the order sent */
	long long t0, deadline, ms;
	int status;             /* 0, or why it ended early: an exit status, */
	char why[MSG_MAX];      /* and in words */
};

/* Many targets at once: a job each, at most max of them running. Its
 * owner gives each job's requests in turn (next: the request's name, its
 * JSON into b; NULL for no more; engine_wait while what comes next
 * depends on replies still owed), up to window of them sent before their
 * replies come, takes each reply, with the name of what it answers
 * (answer), and hears that a job ended (on_end). */
struct engine {
	const char *const *addr;
	int n, max, started, running, window;
	int qmp, qmp_detect;     /* as the link's */
	long long timeout;
	size_t maxreply;
	struct job *job;
	struct buf req;
	const char *(*next)(struct engine *, struct job *, struct buf *b);
	void (*answer)(struct engine *, struct job *, const char *name, const char *js,
	               size_t len, const struct reply *r);
	void (*on_end)(struct engine *, struct job *);
};

/* frame()'s result for a value under way larger than its bound. */
#define FRAME_LARGE (-64)

struct item {
	int cl, kind, keep;   /* keep: HTTP keep-alive */
	int raw;              /* its reply is HTTP already */
	int text;             /* its reply is Prometheus' text, not JSON */
	int state, code;      /* code: the HTTP status of the reply */
	unsigned gen;
	long long id, mark;   /* the proxy's ids: the request's, its guest-ping's */
	long long deadline, t0;
	long long pid, until, next, delay; /* POST /exec: its program, its end */
	int polls;            /* POST /exec: its status asked for so far */
	char *req;            /* the request as the agent gets it */
	size_t len;
	char *cid;            /* the client's id, as it wrote it */
	size_t cidlen;
	struct buf reply;     /* what the client gets */
	char name[64];
};

/* What /metrics counts of each command: its requests by outcome. */
enum { OUT_OK, OUT_ERROR, OUT_DENIED, OUT_BAD, OUT_UNAVAILABLE, OUT_TIMEOUT, NOUT };

struct stat_row {
	char name[64];
	unsigned long long n[NOUT];
};

struct serve {
	struct client *cl;
	int ncl, max;
	struct item *q;
	size_t qhead, qlen, qcap;
	struct xfer *xf;      /* as many as clients */
	int nxf;              /* the slots up to the last one in use */
	int lfd[16], lhttp[16], nl;
	unsigned lport[16];   /* a TCP listener's port; 0 for a unix socket */
	char laddr[16][64], lname[16][64]; /* its address, as Host says it; its name */
	int quiet;
	int exporter;         /* metrics --listen: no agent, scrapes */
	mode_t mode;
	struct link link;      /* to the agent */
	long long next_id;
	long long info_id;    /* the guest-info that checks --allow and --deny */
	int checked;          /* that guest-info was sent */
	size_t maxreq;
	size_t maxout;        /* replies a client may leave unread: maxreq + maxreply */
	char **allow, **deny;
	int nallow, ndeny;
	char token[256];  /* what HTTP clients must send, when not empty */
	FILE *log;        /* --log: a line per request */
	struct stat_row *stats;
	int nstats;
	unsigned long long le[6]; /* requests answered within each bucket */
	double seconds;           /* their time, in all */
};

/* What serve needs of an HTTP request's head. */
struct http_req {
	const char *method, *target;
	size_t mlen, tlen;
	size_t head;          /* its bytes, the blank line included */
	unsigned long long body; /* Content-Length, or 0 */
	int keep, haslen, chunked, expect, auth;
	int v11;              /* HTTP/1.1, which chunked replies need */
	const char *host, *origin; /* Host and Origin, when sent */
	size_t hostlen, originlen;
	int json;             /* Content-Type: application/json */
	int xsite;            /* Sec-Fetch-Site names another origin */
};

/* undo.c */
extern struct undo undo;
extern const char *const stream_rm[];
void undo_run(void);

/* util.c */
/* The last failure, as fail(), fail_at() and die() record it: its exit
 * status, its message, and its cause: the system's words for it when it
 * had some (strerror's, the end of msg), else the message after the
 * place fail_at() names, else all of it. One a process, as errno
 * is: nothing saves it or restores it. */
struct failure {
	int status;
	const char *cause;
	char msg[MSG_MAX];
};
extern struct failure failure;
extern int exec_mode;
extern volatile sig_atomic_t interrupted;
extern volatile sig_atomic_t signals;
extern int progress_shown;
void catch_signals(void);
void hold_signals(int hold);
int wait_input(int fd);
pid_t spawn(const char *const *argv, int in, int out);
int reap(pid_t pid);
size_t escape(char *out, size_t size, const char *s, size_t n);
PRINTF(3, 0) size_t vformat(char *out, size_t size, const char *fmt, va_list ap);
PRINTF(2, 3) int fail(int status, const char *fmt, ...);
PRINTF(3, 4) int fail_at(int status, const char *where, const char *fmt, ...);
PRINTF(1, 2) void warn(const char *fmt, ...);
void say(void);
_Noreturn void leave(int status);
_Noreturn void quit(int status);
PRINTF(2, 3) _Noreturn void die(int status, const char *fmt, ...);
const char * excerpt(const char *s, size_t n);
void copy(char *out, size_t size, const char *s);
void * xrealloc(void *p, size_t n);
char * xstrdup(const char *s);
int write_all(int fd, const char *p, size_t n);
extern struct options opt;
long long num(const char *s, char **end, int base, long long max);
int parse_seconds(const char *s, long long *ms);
int parse_bytes(const char *s, unsigned long long *v);
int parse_size(const char *s, size_t *v);
long long now_ms(void);
const char * seconds(long long ms);
long long deadline_in(long long timeout);
int ms_left(long long deadline);
void buf_need(struct buf *b, size_t n);
void buf_add(struct buf *b, const void *s, size_t n);
int read_all(int fd, struct buf *b, size_t max);
void buf_str(struct buf *b, const char *s);
void buf_jstr(struct buf *b, const char *s, size_t n);

/* conn.c */
long long conn_deadline(struct conn *c, long long timeout);
int set_raw(int fd, const char *path);
int unix_trusted(int fd, const char *path);
int split_hostport(char *s, char **host, char **port);
int resolve(const char *spec, const char *host, const char *port, int passive, struct addrinfo **res);
int parse_u32(const char *s, char **end, unsigned *v);
void conn_init(struct conn *c, long long timeout);
int conn_open(struct conn *c, const char *addr, long long timeout);
void conn_shut(struct conn *c);
void fd_release(int fd, int sock, int owed, int partial);
void conn_close(struct conn *c);
int conn_write(struct conn *c, const char *p, size_t n, long long deadline);
int frame(struct json_scan *sc, const struct buf *b, size_t max);
int conn_next(struct conn *c, long long deadline, const char *what, int *got);
void conn_consume(struct conn *c);

/* proto.c */
const char * tok_text(const char *js, const struct json_tok *t, size_t *n);
int reply_text(struct reply *r, const char *js, size_t len, const char *who);
const char * member_str(const char *js, const struct json_tok *o, const char *key, char *out, size_t size);
int reply_error(const struct reply *r, const char *name);
unsigned random_id(void);
int read_reply(struct conn *c, struct reply *r, long long deadline, const char *what);
int session_open(struct conn *c, const char *addr, long long timeout);
int transact(struct conn *c, const char *req, size_t len, struct reply *r, const char *name, long long timeout);
int is_json(const char *s, size_t n);
void req_begin(struct buf *b, const char *name);
void req_key(struct buf *b, const char *key);
void req_str(struct buf *b, const char *key, const char *val);
void req_int(struct buf *b, const char *key, long long v);
void req_bool(struct buf *b, const char *key, int v);
void req_json(struct buf *b, const char *key, const char *js, size_t n);
void req_b64(struct buf *b, const char *key, const void *p, size_t n);
void req_strv(struct buf *b, const char *key, const char *const *v, int n);
void req_list(struct buf *b, const char *key, const struct buf *items);
void req_members(struct buf *b, const char *obj, size_t n);
void req_end(struct buf *b, long long id);
int silent_agent(const char *name, long long timeout, int sock);
void req_sync(struct buf *b, int delimited, long long id);
int build_request(struct buf *b, const char *name, char **words, int n);
int check_request(const char *s, size_t n, char *name, size_t size);

/* output.c */
/* The longest label value prom_label() gives, in bytes. */
#define PROM_LABEL_MAX 256
void prom_label(struct buf *b, const char *key, const char *v);
void prom_family(struct buf *b, const char *name, const char *type, const char *help);
void print_json(const char *s, size_t n);
void print_result(const struct reply *r);
void print_value(const struct reply *r);
int print_reply(const struct reply *r, const char *name, int batch);
char * escaped(const char *s);
PRINTF(1, 2) void text_line(const char *fmt, ...);
void table_cell(struct table *t, const char *s);
void table_add(struct table *t, ...);
void table_print(struct table *t);
void b64_encode(struct buf *b, const unsigned char *s, size_t n);
int b64_decode(struct buf *b, const char *js, const struct json_tok *t);

/* raw.c */
int run_batch(struct conn *c);
void rename_request(struct buf *b, const struct buf *req, const char *name);
int raw_request(struct conn *c, const struct buf *req, const char *name, int named, int batch);

/* many.c */
extern struct many many;
void add_target(const char *a);
void read_targets(const char *path);
const char *target_addr(void);
void one_target(const char *what);
int run_targets(int reads_stdin);
void fan_out(int reads_stdin);
void fan_in(const struct buf *req, const char *name, int named, const struct cmd *row);

/* session.c */
extern struct conn sess;
void need_session(void);
void session_adopt(int fd);
void session_end(void);
extern const struct agent_cmd agent_cmds[];
extern const size_t nagent_cmds;
const struct agent_cmd *agent_cmd(const char *name);
const char *shape_of(const char *name);
const char * missing_why(const char *name);
int disabled(const char *name);
int agent_error(const struct reply *r, const char *name);
void call_any(const struct buf *req, const char *name, struct reply *r, long long timeout);
void call_for(const struct buf *req, const char *name, struct reply *r, long long timeout);
void call(const struct buf *req, const char *name, struct reply *r);
long long timeout_or(long long dflt);
int doc_parse(struct doc *d, const char *js, size_t len, const char *shape, const char *name);
int doc_return(struct doc *d, const struct reply *r, const char *name, const char *shape);
void doc_reply(struct doc *d, const struct reply *r, const char *name, const char *shape);
int dget(const struct doc *d, int obj, const char *key);
char * dstr(const struct doc *d, int i);
char * dtext(const struct doc *d, int i);
long long dint(const struct doc *d, int i, long long dflt);
int dtrue(const struct doc *d, int i);
int command_list(const struct reply *r, int qmp, struct buf *names);
int peer_commands(struct conn *c, const char **list);
int wait_agent(long long total);
int enabled(const char *name);

/* guest.c */
int guest_windows(void);
const char * guest_base(const char *path);
long long guest_start(const char *const *argv, int capture);
int guest_wait(long long pid, struct buf *out, long long ms);
int guest_run(const char *const *argv);
void buf_ps(struct buf *b, const char *s);
int guest_rm(const char *path);
int guest_clear(const char *prefix, const char *target);
void guest_chmod(const char *mode, const char *path);
int guest_replace(const char *tmp, const char *target, const char *mode);
const char *guest_sha_tool(void);
int guest_sha256(const char *path, struct buf *out, long long ms);
const char *guest_shell(struct buf *args, int ps, int *merge, int argc, char **argv);
void guest_env(struct buf *envw, int path, int root);

/* cli.c */
extern const struct option global_longs[];
extern const struct cmd *cur;
void cmd_usage(const struct cmd *c, FILE *f);
void cmd_help_text(const struct cmd *c);
int global_opt(int ch, const char *arg);
_Noreturn void badopt(int argc, char **argv, const char *shorts, const struct option *lo, int ch);
void options_done(void);
int cmdopt(int argc, char **argv);
void plain_operands(int *argc, char ***argv);

/* cmd-exec.c */
int exec_json(struct buf *js, const struct doc *d);
int exec_finish(const struct doc *dp, const char *prog);
extern const struct option exec_longs[];
void exec_request(struct buf *req, const char *path, const char *const *pre, const struct buf *args, const struct buf *more, const struct buf *in, const char *capture);
int exec_ended(const struct buf *req, struct doc *d);
void exec_nap(long long deadline, long long ns, const char *prog, long long pid);
int cmd_exec(int argc, char **argv);
int cmd_exec_status(int argc, char **argv);
int exec_stream(const struct buf *args, const struct buf *env, const struct buf *in, const char *prog, int merge, long long deadline, int asked, int out);

/* untar.c */
void rm_tree(int dirfd, const char *name);
int untar(struct untar *u);

/* cmd-file.c */
void sha_init(struct sha256 *c);
void sha_add(struct sha256 *c, const void *data, size_t n);
long long file_open(const char *path, const char *mode, int soft);
void file_close(int quiet);
void progress(const char *what, unsigned long long bytes, unsigned long long size, long long t0, int last);
void sha_file(struct sha256 *sha, int fd, long long n, const char *name);
void verify(const char *what, const char *path, struct sha256 *sha);
int cmd_cat(int argc, char **argv);
void tree_status(const char *what, int guest, int here, const char *name);
_Noreturn void untar_ended(void);
int cmd_get(int argc, char **argv);

/* cmd-put.c */
unsigned long long put_data(int fd, long long at, const char *local, const char *remote, struct sha256 *sha);
long long guest_seek(long long h, long long off, const char *whence);
extern const struct option get_longs[];
extern const struct option put_longs[];
int cmd_put(int argc, char **argv);
void put_tree(const char *local, const char *remote);

/* cmd-info.c */
void simple_call(const char *name, struct reply *r, struct doc *d);
const char * iso_time(long long secs, long nsec);
void show_info(const struct doc *d);
void show_osinfo(const struct doc *d);
void show_text(const struct doc *d);
void show_hostname(const struct doc *d);
void show_time(const struct doc *d);
void show_timezone(const struct doc *d);
void show_ifconfig(const struct doc *d);
extern const struct option ip_longs[];
int cmd_ip(int argc, char **argv);
void fs_at(const struct doc *d, int i, struct fs *f);
void fs_free(struct fs *f);
void show_df(const struct doc *d);
void show_disks(const struct doc *d);
void show_users(const struct doc *d);
void show_vcpus(const struct doc *d);
void show_load(const struct doc *d);
void show_routes(const struct doc *d);

/* cmd-admin.c */
int cmd_power(int argc, char **argv);
extern const struct option settime_longs[];
int cmd_set_time(int argc, char **argv);
extern const struct option fsfreeze_longs[];
int cmd_fsfreeze(int argc, char **argv);
int cmd_fstrim(int argc, char **argv);
extern const struct option passwd_longs[];
int cmd_passwd(int argc, char **argv);
int cmd_ssh_keys(int argc, char **argv);
extern const struct option wait_longs[];
int cmd_wait(int argc, char **argv);

/* cmd-ls.c */
struct found {
	char *addr, *name;
	dev_t dev;
	ino_t ino;
	int libvirt, held;
};
extern struct found *found;
extern int nfound;
void find_agents(void);
void forget_agents(void);
int cmd_ls(int argc, char **argv);
extern const struct option ls_longs[];

/* cmd-metrics.c */
int exporter_tick(int wait);
int exporter_poll(struct pollfd *pfd);
void exporter_io(const struct pollfd *pfd, int n);
void exporter_stop(void);
void exporter_http(int i, const struct http_req *r);
extern const struct option metrics_longs[];
int cmd_metrics(int argc, char **argv);

/* serve.c */
extern const char *const outcomes[NOUT];
extern const int buckets[6];
extern struct serve sv;
PRINTF(1, 2) void note(const char *fmt, ...);
int denied(const char *name);
void check_names(const struct reply *r);
int mark_denied(struct buf *b, const struct reply *r);
void client_close(int i, const char *why);
void client_flush(int i);
struct item * enqueue(int i, int kind, const char *req, size_t len, const char *name, int keep);
void add_id(struct buf *b, const char *id, size_t idlen);
void error_reply(struct buf *b, const char *cls, const char *desc, const char *id, size_t idlen);
void refusal(struct buf *b, const char *name, const char *id, size_t idlen);
void item_done(struct item *it, int code, const char *reply, size_t len);
void item_fail(struct item *it, int code, const char *cls, const char *desc);
void take_request(int i, const char *js, size_t len, int keep);
void scan_compact(struct buf *b, struct json_scan *sc);
int client_slot(void);
int client_add(int fd, int http, const char *what);
void serve_listen(const char *addr, int http);
int serve_run(char **addrs, int na, int extra);
extern const struct option serve_longs[];
int cmd_serve(int argc, char **argv);

/* http.c */
void http_reply(int i, int code, const char *body, size_t len, int keep, int text);
void read_token(const char *path);
int http_parse(const char *s, size_t n, const char *token, struct http_req *r);
long http_chunk(const char *s, size_t n, int after, unsigned long long *size);
long http_query(const struct http_req *r, const char *key, char *out, size_t size);

/* serve-http.c */
void http_closing(int i, int drain);
void http_local(int i, int code, int keep);
int http_is(const struct http_req *r, const char *method, const char *target);
void client_http(int i);
int http_deadlines(int wait);

/* serve-file.c */
struct xfer * xfer_of(int i);
void take_file(int i, const struct http_req *r);
void xfer_body(struct xfer *x);
void xfer_poll(struct pollfd *p);
void xfer_io(const struct pollfd *p);
int transfers_stop(void);
int xfer_pump(int wait);

/* engine.c */
extern const char engine_wait[];
int engine_room(int max, int reserve);
void engine_init(struct engine *e, const char *const *addr, int n, long long timeout, int max);
long long engine_tick(struct engine *e, long long now);
int engine_poll(const struct engine *e, struct pollfd *pfd);
void engine_io(struct engine *e, const struct pollfd *pfd, int n);
void engine_stop(struct engine *e, int status, const char *why);
void engine_run(struct engine *e);

/* link.c */
int link_init(struct link *l, const char *addr, int qmp, long long timeout, size_t maxreply);
void link_close(struct link *l);
void link_free(struct link *l);
void link_lose(struct link *l, int status, const char *why);
void link_up(struct link *l);
void link_send(struct link *l, const char *p, size_t n);
void link_request(struct link *l, const char *name, long long id);
void link_start(struct link *l);
void link_flush(struct link *l);
short link_events(const struct link *l);
void link_io(struct link *l, short revents);
long long link_tick(struct link *l, long long now);

/* serve-agent.c */
void agent_init(void);
int agent_pump(void);

/* help.c */
const struct cmd * find_cmd(const char *name);
int not_found(const struct reply *r);
void suggest(struct conn *c, const char *name);
void suggest_from(const char *list, const char *name);
int cmd_help(int argc, char **argv);
int cmd_completion(int argc, char **argv);

/* qga.c */
extern const struct cmd cmds[];
extern const size_t ncmds;
_Noreturn void usage(int status);
_Noreturn void run_builtin(int argc, char **argv);

#endif
