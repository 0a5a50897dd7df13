/* Write-ahead log: see core/wal.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/wal.h"
#include "core/buf.h"
#include "core/datadir.h"
#include "crypto/sy_err.h"

#define WAL_MAGIC 0x5359574cu /* 'SYWL' */
#define WAL_HDR (4 + 4 + 8 + SY_CHECKSUM_LEN)
#define WAL_VERSION 1

struct sy_wal {
    int fd;
    uint64_t size;     /* of the file */
    uint64_t off;      /* where the next record goes */
    uint64_t seq;      /* of the last record written or replayed */
    uint64_t id;       /* this store's log id (meta "wal_id"), in every checksum */
    bool recovered;
    bool created;      /* sy_wal_open made the file */
    sy_buf rec;        /* scratch: one encoded record */
    char path[4096];
};

static void set_err(char *errmsg, const char *fmt, const char *path, int e)
{
    if (errmsg)
        snprintf(errmsg, SY_STORAGE_ERRMSG, fmt, path, strerror(e));
}

/* Writes a zero-filled file of `size` bytes at tmp, synced, then renames it
 * to path and syncs the directory: a crash leaves no half-made wal. */
static int create_file(const char *dir, const char *path, uint64_t size, char *errmsg)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        set_err(errmsg, "cannot create %.160s: %s", tmp, e);
        return e == EACCES || e == EPERM ? SY_EPERM : SY_EIO;
    }
    static const uint8_t zero[65536];
    for (uint64_t done = 0; done < size;) {
        size_t n = size - done < sizeof zero ? (size_t)(size - done) : sizeof zero;
        ssize_t w = write(fd, zero, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            set_err(errmsg, "cannot fill %.160s: %s", tmp, w < 0 ? errno : ENOSPC);
            close(fd);
            unlink(tmp);
            return SY_EIO;
        }
        done += (uint64_t)w;
    }
    int e = fsync(fd) != 0 ? errno : 0;
    if (close(fd) != 0 && !e)
        e = errno;
    if (!e && rename(tmp, path) != 0)
        e = errno;
    if (e) {
        set_err(errmsg, "cannot create %.160s: %s", path, e);
        unlink(tmp);
        return SY_EIO;
    }
    /* the new name must be durable too, or a power cut could take the file
     * (and every record written to it) away */
    if ((e = sy_dir_sync(dir))) {
        set_err(errmsg, "cannot sync directory %.160s: %s", dir, e);
        return SY_EIO;
    }
    return SY_OK;
}

int sy_wal_open(const char *dir, uint64_t size, sy_wal **out, char *errmsg)
{
    char path[4096];
    if (!size)
        size = SY_WAL_DEFAULT_SIZE;
    if (size < WAL_HDR + 64) {
        if (errmsg)
            snprintf(errmsg, SY_STORAGE_ERRMSG, "write-ahead log size %llu is too small",
                     (unsigned long long)size);
        return SY_EINVAL;
    }
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, SY_WAL_FILE) >= sizeof path) {
        if (errmsg)
            snprintf(errmsg, SY_STORAGE_ERRMSG, "data directory path too long");
        return SY_EINVAL;
    }
    int fd = open(path, O_RDWR | O_CLOEXEC);
    bool created = false;
    if (fd < 0 && errno == ENOENT) {
        int rc = create_file(dir, path, size, errmsg);
        if (rc)
            return rc;
        fd = open(path, O_RDWR | O_CLOEXEC);
        created = true;
    }
    if (fd < 0) {
        int e = errno;
        set_err(errmsg, "cannot open %.160s: %s", path, e);
        return e == EACCES || e == EPERM ? SY_EPERM : SY_EIO;
    }
    struct stat stt;
    if (fstat(fd, &stt) != 0 || stt.st_size < (off_t)(WAL_HDR + 64)) {
        if (errmsg)
            snprintf(errmsg, SY_STORAGE_ERRMSG, "%.200s is not a write-ahead log (too small)", path);
        close(fd);
        return SY_ECORRUPT;
    }
    sy_wal *w = calloc(1, sizeof *w);
    if (!w) {
        close(fd);
        return SY_ENOMEM;
    }
    w->fd = fd;
    w->created = created;
    memcpy(w->path, path, sizeof w->path);
    w->size = (uint64_t)stt.st_size;
    sy_buf_init(&w->rec);
    *out = w;
    return SY_OK;
}

void sy_wal_close(sy_wal *w)
{
    if (!w)
        return;
    close(w->fd);
    sy_buf_free(&w->rec);
    free(w);
}

bool sy_wal_loggable(const sy_ready *rd)
{
    return !rd->snapshot_install && !rd->compact_to && !rd->checkpoint_index;
}

uint64_t sy_wal_used(const sy_wal *w)
{
    return w->off;
}

bool sy_wal_missing(const sy_wal *w)
{
    return w->recovered && w->created && w->seq > 0;
}

int sy_wal_mark_clean(sy_wal *w, sy_txn *t)
{
    return sy_txn_meta_put_u64(t, "wal_clean", w->seq + 1);
}

void sy_wal_reset(sy_wal *w)
{
    w->off = 0;
}

/* ---- payload codec ---- */

static int put(sy_buf *b, const void *p, size_t n) { return sy_buf_append(b, p, n); }

static int put_u8(sy_buf *b, uint8_t v) { return put(b, &v, 1); }

static int put_u32(sy_buf *b, uint32_t v)
{
    uint8_t x[4];
    sy_put_u32be(x, v);
    return put(b, x, 4);
}

static int put_u64(sy_buf *b, uint64_t v)
{
    uint8_t x[8];
    sy_put_u64be(x, v);
    return put(b, x, 8);
}

static void encode_payload(const sy_ready *rd, sy_buf *b)
{
    put_u8(b, WAL_VERSION);
    put_u8(b, (uint8_t)((rd->hardstate_dirty ? 1 : 0) |
                        (rd->records_drop_below || rd->n_records ? 2 : 0)));
    if (rd->hardstate_dirty) {
        put_u32(b, rd->hardstate.len);
        put(b, rd->hardstate.p, rd->hardstate.len);
    }
    put_u64(b, rd->truncate_from);
    put_u32(b, (uint32_t)rd->n_entries);
    for (size_t i = 0; i < rd->n_entries; i++) {
        const sy_entry *e = &rd->entries[i];
        put_u64(b, e->index);
        put_u64(b, e->term);
        put_u8(b, e->type);
        put_u32(b, e->data.len);
        put(b, e->data.p, e->data.len);
    }
    if (rd->records_drop_below || rd->n_records) {
        put_u64(b, rd->records_drop_below);
        put_u32(b, (uint32_t)rd->n_records);
        for (size_t i = 0; i < rd->n_records; i++) {
            put_u64(b, rd->records[i].key);
            put_u32(b, rd->records[i].val.len);
            put(b, rd->records[i].val.p, rd->records[i].val.len);
        }
    }
}

/* Decodes a payload into rd; entries (*ents, free()) and engine records
 * (*recs, free()) borrow from p. */
static int decode_payload(const uint8_t *p, size_t len, sy_ready *rd, sy_entry **ents,
                          sy_record **recs)
{
    sy_rd c = {.p = p, .len = len};
    memset(rd, 0, sizeof *rd);
    *ents = NULL;
    *recs = NULL;
    if (sy_rd_u8(&c) != WAL_VERSION)
        return SY_ECORRUPT;
    uint8_t flags = sy_rd_u8(&c);
    if (flags & ~3u)
        return SY_ECORRUPT;
    if (flags & 1u) {
        uint32_t hl = sy_rd_u32(&c);
        const uint8_t *hs = sy_rd_take(&c, hl);
        if (!hs)
            return SY_ECORRUPT;
        rd->hardstate_dirty = true;
        rd->hardstate = (sy_bytes){hs, hl};
    }
    rd->truncate_from = sy_rd_u64(&c);
    uint32_t n = sy_rd_u32(&c);
    /* each entry takes at least 21 bytes: a count past that is corrupt */
    if (c.bad || n > sy_rd_left(&c) / 21)
        return SY_ECORRUPT;
    if (n && !(*ents = calloc(n, sizeof **ents)))
        return SY_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        sy_entry *e = &(*ents)[i];
        e->index = sy_rd_u64(&c);
        e->term = sy_rd_u64(&c);
        e->type = sy_rd_u8(&c);
        uint32_t dl = sy_rd_u32(&c);
        const uint8_t *d = sy_rd_take(&c, dl);
        if (c.bad) {
            free(*ents);
            *ents = NULL;
            return SY_ECORRUPT;
        }
        e->data = (sy_bytes){dl ? d : NULL, dl};
    }
    rd->entries = *ents;
    rd->n_entries = n;
    if (flags & 2u) {
        rd->records_drop_below = sy_rd_u64(&c);
        uint32_t nr = sy_rd_u32(&c);
        /* each record takes at least 12 bytes */
        if (c.bad || nr > sy_rd_left(&c) / 12)
            goto err_corrupt;
        if (nr && !(*recs = calloc(nr, sizeof **recs))) {
            free(*ents);
            *ents = NULL;
            return SY_ENOMEM;
        }
        for (uint32_t i = 0; i < nr; i++) {
            (*recs)[i].key = sy_rd_u64(&c);
            uint32_t vl = sy_rd_u32(&c);
            const uint8_t *v = sy_rd_take(&c, vl);
            (*recs)[i].val = (sy_bytes){vl ? v : NULL, vl};
        }
        rd->records = *recs;
        rd->n_records = nr;
    }
    if (c.bad || c.off != c.len)
        goto err_corrupt;
    return SY_OK;
err_corrupt:
    free(*ents);
    free(*recs);
    *ents = NULL;
    *recs = NULL;
    memset(rd, 0, sizeof *rd);
    return SY_ECORRUPT;
}

/* Covers the log's id too: a record of another store's log (a data.mdb
 * replaced under an old wal file) never checks out. */
static void header_sum(uint64_t id, uint32_t len, uint64_t seq, const uint8_t *payload,
                       uint8_t out[SY_CHECKSUM_LEN])
{
    uint8_t h[20];
    sy_put_u64be(h, id);
    sy_put_u32be(h + 8, len);
    sy_put_u64be(h + 12, seq);
    sy_checksum(h, sizeof h, payload, len, out);
}

int sy_wal_log(sy_wal *w, sy_txn *t, const sy_ready *rd, bool *full)
{
    *full = false;
    if (!w->recovered || !sy_wal_loggable(rd))
        return SY_EINVAL;
    sy_buf *b = &w->rec;
    sy_buf_reset(b);
    uint8_t hdr[WAL_HDR] = {0};
    put(b, hdr, sizeof hdr);
    encode_payload(rd, b);
    if (b->err) {
        int rc = b->err;
        sy_buf_free(b);
        sy_buf_init(b);
        return rc;
    }
    size_t plen = b->len - WAL_HDR;
    if (plen > UINT32_MAX || w->off + b->len > w->size) {
        if (b->cap > (4u << 20)) {  /* a huge ready: do not keep its buffer */
            sy_buf_free(b);
            sy_buf_init(b);
        }
        *full = true;
        return SY_OK;
    }
    uint64_t seq = w->seq + 1;
    sy_put_u32be(b->p, WAL_MAGIC);
    sy_put_u32be(b->p + 4, (uint32_t)plen);
    sy_put_u64be(b->p + 8, seq);
    header_sum(w->id, (uint32_t)plen, seq, b->p + WAL_HDR, b->p + 16);
    int rc = sy_txn_meta_put_u64(t, "wal_seq", seq);
    if (rc)
        return rc;
    for (size_t done = 0; done < b->len;) {
        ssize_t n = pwrite(w->fd, b->p + done, b->len - done, (off_t)(w->off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return sy_storage_fail(t->s, SY_EIO, "write-ahead log: write failed: %s",
                                   n < 0 ? strerror(errno) : "no progress");
        done += (size_t)n;
    }
    if (fdatasync(w->fd) != 0)
        return sy_storage_fail(t->s, SY_EIO, "write-ahead log: fdatasync failed: %s",
                               strerror(errno));
    w->off += b->len;
    w->seq = seq;
    return SY_OK;
}

/* Reads the record at off if it checks out and its number is `want`
 * (want_min == 0) or at least want_min: SY_OK with the payload in w->rec
 * (from its start) and its number in *seq; SY_ENOTFOUND if there is none
 * there; SY_EIO if the file cannot be read. */
static int read_record(sy_wal *w, uint64_t off, uint64_t want, uint64_t want_min, size_t *plen,
                       uint64_t *seq)
{
    uint8_t hdr[WAL_HDR];
    if (off + WAL_HDR > w->size)
        return SY_ENOTFOUND;
    ssize_t r = pread(w->fd, hdr, sizeof hdr, (off_t)off);
    if (r < 0)
        return SY_EIO;
    if (r != (ssize_t)sizeof hdr)
        return SY_ENOTFOUND;
    uint32_t len = sy_get_u32be(hdr + 4);
    uint64_t sq = sy_get_u64be(hdr + 8);
    if (sy_get_u32be(hdr) != WAL_MAGIC || len > w->size - off - WAL_HDR ||
        (want_min ? sq < want_min : sq != want))
        return SY_ENOTFOUND;
    sy_buf *b = &w->rec;
    sy_buf_reset(b);
    if (sy_buf_reserve(b, len ? len : 1))
        return SY_ENOMEM;
    if (len) {
        r = pread(w->fd, b->p, len, (off_t)(off + WAL_HDR));
        if (r < 0)
            return SY_EIO;
        if (r != (ssize_t)len)
            return SY_ENOTFOUND;
    }
    b->len = len;
    uint8_t sum[SY_CHECKSUM_LEN];
    header_sum(w->id, len, sq, b->p, sum);
    if (memcmp(sum, hdr + 16, SY_CHECKSUM_LEN) != 0)
        return SY_ENOTFOUND;   /* torn or rotten */
    *plen = len;
    *seq = sq;
    return SY_OK;
}

/* After the replay stopped at off, expecting record `want`: the end of the
 * log is a record that was being written at the crash (or nothing). A
 * record numbered `want` or later further on means the one at off rotted
 * in the middle of the log: records after it were acknowledged, so that is
 * corruption, not an end. (Records of earlier rounds carry smaller
 * numbers.) Scans every offset where the magic appears. */
static int check_rest(sy_wal *w, uint64_t off, uint64_t want)
{
    uint8_t buf[65536];
    for (uint64_t base = off + 1; base + 4 <= w->size;) {
        size_t n = w->size - base < sizeof buf ? (size_t)(w->size - base) : sizeof buf;
        ssize_t r = pread(w->fd, buf, n, (off_t)base);
        if (r < 0)
            return SY_EIO;
        if (r < 4)
            break;
        for (size_t i = 0; i + 4 <= (size_t)r; i++) {
            if (sy_get_u32be(buf + i) != WAL_MAGIC)
                continue;
            size_t plen;
            uint64_t sq;
            int rc = read_record(w, base + i, 0, want, &plen, &sq);
            if (rc == SY_OK)
                return SY_ECORRUPT;
            if (rc != SY_ENOTFOUND)
                return rc;
        }
        base += (uint64_t)r - 3;   /* a magic may straddle the chunks */
    }
    return SY_OK;
}

int sy_wal_recover(sy_wal *w, sy_storage *s, size_t *replayed)
{
    sy_txn t;
    size_t n = 0;
    uint64_t base, off = 0;
    bool dirty = false;
    int rc = sy_txn_begin(s, true, &t);
    if (rc)
        return rc;
    uint64_t clean;
    if ((rc = sy_txn_meta_get_u64(&t, "wal_seq", &base)) ||
        (rc = sy_txn_meta_get_u64(&t, "wal_id", &w->id)) ||
        (rc = sy_txn_meta_get_u64(&t, "wal_clean", &clean)))
        goto err_abort;
    /* The file is new but the store had logged records: only a clean stop
     * (everything committed to LMDB, marked) makes that harmless. */
    if (w->created && base > 0 && clean != base + 1) {
        /* the file sy_wal_open just made goes again: left in place, it
         * made the next start find a log and go ahead (a service manager
         * restarting the node on failure did exactly that) */
        unlink(w->path);
        rc = sy_storage_fail(s, SY_ECORRUPT,
                             "write-ahead log file missing after an unclean stop: writes "
                             "acknowledged after record %llu may be lost; treat the disk as "
                             "failed (docs/operations.md, section 7)",
                             (unsigned long long)base);
        goto err_abort;
    }
    /* the mark holds only until the next record: clear it durably first */
    if (clean) {
        if ((rc = sy_txn_meta_put_u64(&t, "wal_clean", 0)))
            goto err_abort;
        dirty = true;
    }
    if (!w->id) {
        /* a store without a log id yet: nothing of any log is its own */
        while (!w->id)
            if (getrandom(&w->id, sizeof w->id, 0) != (ssize_t)sizeof w->id) {
                rc = sy_storage_fail(s, SY_EIO, "write-ahead log: no random id: %s",
                                     strerror(errno));
                goto err_abort;
            }
        if ((rc = sy_txn_meta_put_u64(&t, "wal_id", w->id)))
            goto err_abort;
        dirty = true;
    }
    for (;;) {
        size_t plen;
        uint64_t sq;
        rc = read_record(w, off, base + n + 1, 0, &plen, &sq);
        if (rc == SY_ENOTFOUND)
            break;
        if (rc) {
            sy_storage_fail(s, rc, "write-ahead log: cannot read record %llu",
                            (unsigned long long)(base + n + 1));
            goto err_abort;
        }
        sy_ready rd;
        sy_entry *ents;
        sy_record *recs;
        if ((rc = decode_payload(w->rec.p, plen, &rd, &ents, &recs))) {
            sy_storage_fail(s, rc, "write-ahead log record %llu checks out but does not decode",
                            (unsigned long long)(base + n + 1));
            goto err_abort;
        }
        rc = sy_txn_persist_ready(&t, &rd);
        free(ents);
        free(recs);
        if (rc == SY_OK)
            rc = sy_txn_meta_put_u64(&t, "wal_seq", base + n + 1);
        if (rc)
            goto err_abort;
        n++;
        dirty = true;
        off += WAL_HDR + plen;
    }
    if ((rc = check_rest(w, off, base + n + 1))) {
        sy_storage_fail(s, rc, rc == SY_ECORRUPT
                                   ? "write-ahead log record %llu is damaged but later records "
                                     "exist (the disk lost acknowledged writes)"
                                   : "write-ahead log: cannot read past record %llu",
                        (unsigned long long)(base + n + 1));
        goto err_abort;
    }
    if (dirty) {
        if ((rc = sy_txn_commit(&t))) {
            /* the log was read in full: what failed is the store (a full
             * disk at restart lands here), and the line must say so */
            char was[SY_STORAGE_ERRMSG];
            snprintf(was, sizeof was, "%s", sy_storage_errmsg(s));
            return sy_storage_fail(s, rc, "storing the %zu replayed write-ahead log record%s "
                                   "in LMDB: %s", n, n == 1 ? "" : "s", was);
        }
    } else {
        sy_txn_abort(&t);
    }
    w->seq = base + n;
    w->off = 0;
    w->recovered = true;
    if (replayed)
        *replayed = n;
    return SY_OK;
err_abort:
    sy_txn_abort(&t);
    return rc;
}
