/* A SQLite VFS shim for the crash campaign (tests/chaos/chaos.py): it wraps the
 * default "unix" VFS and, driven by environment variables, injects faults
 * below SQLite the way a failing disk would, then simulates a power cut.
 *
 * Loaded with LD_PRELOAD into a process that links libsqlite3; a constructor
 * registers it as the default VFS before main() runs.
 *
 *   VOXQ_FAULT_KIND   eio | full | fsync | lying-fsync | short   (unset: none)
 *   VOXQ_FAULT_AT     the N-th counted operation (write, sync, truncate) is
 *                     the first to fail
 *   VOXQ_FAULT_COUNT  how many operations fail from there (default 1)
 *   VOXQ_POWER_CUT_AT at the N-th counted operation the power goes: every
 *                     write since its file's last successful sync is undone
 *                     (all of them, or with VOXQ_POWER_CUT_MODE=random each
 *                     with probability 1/2, newest first) and the process
 *                     dies with SIGKILL, so nothing else reaches the disk.
 *   VOXQ_FAULT_LOG    a file that gets one line per injected fault
 *
 * "lying-fsync" reports success without syncing: the writes stay undoable, so
 * a later power cut loses them although SQLite was told they were durable.
 * Only the main database and its WAL are tracked (the -shm file is rebuilt
 * from the WAL after a crash). One process: the power cut models the machine
 * when this process is the only writer. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct Undo {
    sqlite3_int64 offset;
    sqlite3_int64 old_size; /* the file's size before the operation */
    int length;             /* bytes of old content saved (within old_size) */
    unsigned char* old;
    struct Undo* prev;
} Undo;

typedef struct Tracked {
    char path[512];
    int fd; /* our own descriptor, for undoing */
    Undo* undo;
    struct Tracked* next;
} Tracked;

typedef struct ShimFile {
    sqlite3_file base;
    sqlite3_file* real;
    Tracked* tracked; /* NULL for files not tracked */
} ShimFile;

static sqlite3_vfs* g_real;
static sqlite3_vfs g_shim;
static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
/* Writes hold it shared from saving their undo to landing; the power cut takes
 * it exclusively, so no write lands after the undo. */
static pthread_rwlock_t g_io = PTHREAD_RWLOCK_INITIALIZER;
static Tracked* g_tracked;
static long g_ops;
static const char* g_kind;
static long g_fault_at = -1, g_fault_count = 1, g_power_cut_at = -1;
static int g_random_cut;
static FILE* g_log;

static long env_long(const char* name, long fallback) {
    const char* v = getenv(name);
    return v != NULL && *v != '\0' ? atol(v) : fallback;
}

static void note(const char* what, const char* path) {
    if (g_log == NULL) return;
    fprintf(g_log, "op %ld: %s %s\n", g_ops, what, path);
    fflush(g_log);
}

static void power_cut(void) {
    pthread_rwlock_wrlock(&g_io); /* writes in flight land first; no more start */
    pthread_mutex_lock(&g_mutex);
    unsigned seed = (unsigned)getpid();
    for (Tracked* t = g_tracked; t != NULL; t = t->next) {
        if (t->fd < 0) continue;
        for (Undo* u = t->undo; u != NULL; u = u->prev) {
            if (g_random_cut && (rand_r(&seed) & 1) == 0) continue; /* this write survived */
            if (u->length > 0) (void)!pwrite(t->fd, u->old, (size_t)u->length, u->offset);
            struct stat st;
            if (fstat(t->fd, &st) == 0 && st.st_size > u->old_size) {
                (void)!ftruncate(t->fd, u->old_size);
            }
        }
        fsync(t->fd);
    }
    note("power cut", "");
    kill(getpid(), SIGKILL);
    for (;;) pause();
}

/* Counts one operation; returns the fault to inject (0: none). Called
 * without g_io held. */
static int count_op(const char* what, Tracked* t) {
    pthread_mutex_lock(&g_mutex);
    long n = ++g_ops;
    if (g_power_cut_at > 0 && n >= g_power_cut_at) {
        pthread_mutex_unlock(&g_mutex);
        power_cut();
    }
    int fault =
        g_kind != NULL && g_fault_at > 0 && n >= g_fault_at && n < g_fault_at + g_fault_count;
    if (fault) note(what, t != NULL ? t->path : "");
    pthread_mutex_unlock(&g_mutex);
    return fault;
}

static void save_undo(Tracked* t, sqlite3_int64 offset, int amount) {
    if (t == NULL || t->fd < 0) return;
    struct stat st;
    if (fstat(t->fd, &st) != 0) return;
    Undo* u = calloc(1, sizeof *u);
    u->offset = offset;
    u->old_size = st.st_size;
    sqlite3_int64 end = offset + amount < st.st_size ? offset + amount : st.st_size;
    u->length = end > offset ? (int)(end - offset) : 0;
    if (u->length > 0) {
        u->old = malloc((size_t)u->length);
        u->length = (int)pread(t->fd, u->old, (size_t)u->length, offset);
        if (u->length < 0) u->length = 0;
    }
    pthread_mutex_lock(&g_mutex);
    u->prev = t->undo;
    t->undo = u;
    pthread_mutex_unlock(&g_mutex);
}

static void forget_undo(Tracked* t) {
    if (t == NULL) return;
    pthread_mutex_lock(&g_mutex);
    Undo* u = t->undo;
    t->undo = NULL;
    pthread_mutex_unlock(&g_mutex);
    while (u != NULL) {
        Undo* prev = u->prev;
        free(u->old);
        free(u);
        u = prev;
    }
}

static int x_close(sqlite3_file* f) {
    ShimFile* s = (ShimFile*)f;
    int rc = s->real->pMethods != NULL ? s->real->pMethods->xClose(s->real) : SQLITE_OK;
    sqlite3_free(s->real);
    return rc;
}
static int x_read(sqlite3_file* f, void* buf, int amount, sqlite3_int64 offset) {
    ShimFile* s = (ShimFile*)f;
    return s->real->pMethods->xRead(s->real, buf, amount, offset);
}
static int x_write(sqlite3_file* f, const void* buf, int amount, sqlite3_int64 offset) {
    ShimFile* s = (ShimFile*)f;
    if (s->tracked == NULL) return s->real->pMethods->xWrite(s->real, buf, amount, offset);
    int fault = count_op("write", s->tracked);
    if (fault && strcmp(g_kind, "eio") == 0) return SQLITE_IOERR_WRITE;
    if (fault && strcmp(g_kind, "full") == 0) return SQLITE_FULL;
    pthread_rwlock_rdlock(&g_io);
    save_undo(s->tracked, offset, amount);
    int rc;
    if (fault && strcmp(g_kind, "short") == 0) {
        /* Half the bytes land, then the error: a torn write. */
        (void)s->real->pMethods->xWrite(s->real, buf, amount / 2, offset);
        rc = SQLITE_IOERR_WRITE;
    } else {
        rc = s->real->pMethods->xWrite(s->real, buf, amount, offset);
    }
    pthread_rwlock_unlock(&g_io);
    return rc;
}
static int x_truncate(sqlite3_file* f, sqlite3_int64 size) {
    ShimFile* s = (ShimFile*)f;
    if (s->tracked == NULL) return s->real->pMethods->xTruncate(s->real, size);
    int fault = count_op("truncate", s->tracked);
    if (fault && (strcmp(g_kind, "eio") == 0 || strcmp(g_kind, "short") == 0)) {
        return SQLITE_IOERR_TRUNCATE;
    }
    pthread_rwlock_rdlock(&g_io);
    struct stat st;
    if (s->tracked->fd >= 0 && fstat(s->tracked->fd, &st) == 0 && st.st_size > size) {
        save_undo(s->tracked, size, (int)(st.st_size - size));
    }
    int rc = s->real->pMethods->xTruncate(s->real, size);
    pthread_rwlock_unlock(&g_io);
    return rc;
}
static int x_sync(sqlite3_file* f, int flags) {
    ShimFile* s = (ShimFile*)f;
    if (s->tracked == NULL) return s->real->pMethods->xSync(s->real, flags);
    int fault = count_op("sync", s->tracked);
    if (fault && strcmp(g_kind, "lying-fsync") == 0) return SQLITE_OK; /* nothing synced */
    if (fault && (strcmp(g_kind, "fsync") == 0 || strcmp(g_kind, "eio") == 0)) {
        return SQLITE_IOERR_FSYNC;
    }
    pthread_rwlock_rdlock(&g_io);
    int rc = s->real->pMethods->xSync(s->real, flags);
    if (rc == SQLITE_OK) forget_undo(s->tracked);
    pthread_rwlock_unlock(&g_io);
    return rc;
}
static int x_file_size(sqlite3_file* f, sqlite3_int64* size) {
    ShimFile* s = (ShimFile*)f;
    return s->real->pMethods->xFileSize(s->real, size);
}
static int x_lock(sqlite3_file* f, int level) {
    ShimFile* s = (ShimFile*)f;
    return s->real->pMethods->xLock(s->real, level);
}
static int x_unlock(sqlite3_file* f, int level) {
    ShimFile* s = (ShimFile*)f;
    return s->real->pMethods->xUnlock(s->real, level);
}
static int x_check_reserved(sqlite3_file* f, int* out) {
    ShimFile* s = (ShimFile*)f;
    return s->real->pMethods->xCheckReservedLock(s->real, out);
}
static int x_file_control(sqlite3_file* f, int op, void* arg) {
    ShimFile* s = (ShimFile*)f;
    return s->real->pMethods->xFileControl(s->real, op, arg);
}
static int x_sector_size(sqlite3_file* f) {
    ShimFile* s = (ShimFile*)f;
    return s->real->pMethods->xSectorSize(s->real);
}
static int x_device_characteristics(sqlite3_file* f) {
    ShimFile* s = (ShimFile*)f;
    /* Claim nothing (no powersafe overwrite, no atomic writes): SQLite must
     * assume the worst of this disk. */
    return s->real->pMethods->xDeviceCharacteristics(s->real) & ~SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}
static int x_shm_map(sqlite3_file* f, int page, int size, int extend, void volatile** out) {
    ShimFile* s = (ShimFile*)f;
    return s->real->pMethods->xShmMap(s->real, page, size, extend, out);
}
static int x_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
    ShimFile* s = (ShimFile*)f;
    return s->real->pMethods->xShmLock(s->real, offset, n, flags);
}
static void x_shm_barrier(sqlite3_file* f) {
    ShimFile* s = (ShimFile*)f;
    s->real->pMethods->xShmBarrier(s->real);
}
static int x_shm_unmap(sqlite3_file* f, int delete_flag) {
    ShimFile* s = (ShimFile*)f;
    return s->real->pMethods->xShmUnmap(s->real, delete_flag);
}
static int x_fetch(sqlite3_file* f, sqlite3_int64 offset, int amount, void** out) {
    /* No memory-mapped reads: every byte goes through xRead, past our undo. */
    (void)f;
    (void)offset;
    (void)amount;
    *out = NULL;
    return SQLITE_OK;
}
static int x_unfetch(sqlite3_file* f, sqlite3_int64 offset, void* p) {
    (void)f;
    (void)offset;
    (void)p;
    return SQLITE_OK;
}

static const sqlite3_io_methods g_methods = {
    3,
    x_close,
    x_read,
    x_write,
    x_truncate,
    x_sync,
    x_file_size,
    x_lock,
    x_unlock,
    x_check_reserved,
    x_file_control,
    x_sector_size,
    x_device_characteristics,
    x_shm_map,
    x_shm_lock,
    x_shm_barrier,
    x_shm_unmap,
    x_fetch,
    x_unfetch,
};

/* The tracking entry of `path`, its descriptor on the file now at that path
 * (a WAL deleted and made again is a new file). */
static Tracked* track(const char* path) {
    pthread_mutex_lock(&g_mutex);
    Tracked* t = g_tracked;
    while (t != NULL && strcmp(t->path, path) != 0) t = t->next;
    if (t == NULL) {
        t = calloc(1, sizeof *t);
        snprintf(t->path, sizeof t->path, "%s", path);
        t->fd = -1;
        t->next = g_tracked;
        g_tracked = t;
    }
    struct stat ours, now;
    int same = t->fd >= 0 && fstat(t->fd, &ours) == 0 && stat(path, &now) == 0 &&
               ours.st_ino == now.st_ino && ours.st_dev == now.st_dev;
    if (!same) {
        if (t->fd >= 0) close(t->fd);
        t->fd = open(path, O_RDWR | O_CLOEXEC);
    }
    pthread_mutex_unlock(&g_mutex);
    if (!same) forget_undo(t);
    return t;
}

static int x_open(sqlite3_vfs* vfs, const char* name, sqlite3_file* f, int flags, int* out_flags) {
    (void)vfs;
    ShimFile* s = (ShimFile*)f;
    memset(s, 0, sizeof *s);
    s->real = sqlite3_malloc(g_real->szOsFile);
    if (s->real == NULL) return SQLITE_NOMEM;
    memset(s->real, 0, (size_t)g_real->szOsFile);
    int rc = g_real->xOpen(g_real, name, s->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        sqlite3_free(s->real);
        s->real = NULL;
        return rc;
    }
    s->base.pMethods = &g_methods;
    if (name != NULL && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) != 0) {
        s->tracked = track(name);
    }
    return SQLITE_OK;
}

static int x_delete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
    (void)vfs;
    pthread_rwlock_rdlock(&g_io);
    pthread_mutex_lock(&g_mutex);
    Tracked* t = g_tracked;
    while (t != NULL && strcmp(t->path, name) != 0) t = t->next;
    if (t != NULL && t->fd >= 0) {
        close(t->fd);
        t->fd = -1;
    }
    pthread_mutex_unlock(&g_mutex);
    if (t != NULL) forget_undo(t);
    int rc = g_real->xDelete(g_real, name, sync_dir);
    pthread_rwlock_unlock(&g_io);
    return rc;
}
static int x_access(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
    (void)vfs;
    return g_real->xAccess(g_real, name, flags, out);
}
static int x_full_pathname(sqlite3_vfs* vfs, const char* name, int n, char* out) {
    (void)vfs;
    return g_real->xFullPathname(g_real, name, n, out);
}

__attribute__((constructor)) static void register_fault_vfs(void) {
    g_real = sqlite3_vfs_find(NULL);
    if (g_real == NULL) return;
    g_kind = getenv("VOXQ_FAULT_KIND");
    if (g_kind != NULL && *g_kind == '\0') g_kind = NULL;
    g_fault_at = env_long("VOXQ_FAULT_AT", -1);
    g_fault_count = env_long("VOXQ_FAULT_COUNT", 1);
    g_power_cut_at = env_long("VOXQ_POWER_CUT_AT", -1);
    const char* mode = getenv("VOXQ_POWER_CUT_MODE");
    g_random_cut = mode != NULL && strcmp(mode, "random") == 0;
    const char* log = getenv("VOXQ_FAULT_LOG");
    if (log != NULL && *log != '\0') g_log = fopen(log, "a");
    g_shim = *g_real;
    g_shim.zName = "voxq-fault";
    g_shim.szOsFile = (int)sizeof(ShimFile);
    g_shim.xOpen = x_open;
    g_shim.xDelete = x_delete;
    g_shim.xAccess = x_access;
    g_shim.xFullPathname = x_full_pathname;
    g_shim.pNext = NULL;
    sqlite3_vfs_register(&g_shim, 1);
}
