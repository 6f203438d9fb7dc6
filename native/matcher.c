/* spillguard._native: the detection engine's hot loops in C (column digests: native/digests.c).
 *
 * A Matcher holds one compiled Vectorscan database (the rule patterns of a field plan). scan() takes an
 * Arrow string column as its raw buffers, runs the database once over all values, and returns which rule
 * matched in which value as two int64 buffers, without calling back into Python per match.
 *
 * The buffer scanned is every value followed by "\n", exactly what the Python engine joined before: the
 * rules' boundaries (multi-line ^ and $) see the same text, so the matches are the same.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hs.h>
#include <xxhash.h>

#include "native.h"

typedef struct {
    int64_t *ids;
    int64_t *ends;
    size_t len;
    size_t cap;
    int failed;
} Matches;

static int on_match(unsigned int id, unsigned long long from, unsigned long long to, unsigned int flags, void *ctx) {
    (void)from;
    (void)flags;
    Matches *m = (Matches *)ctx;
    if (m->len == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 4096;
        int64_t *ids = realloc(m->ids, cap * sizeof(int64_t));
        if (ids == NULL) {
            m->failed = 1;
            return 1; /* stop scanning */
        }
        m->ids = ids;
        int64_t *ends = realloc(m->ends, cap * sizeof(int64_t));
        if (ends == NULL) {
            m->failed = 1;
            return 1;
        }
        m->ends = ends;
        m->cap = cap;
    }
    m->ids[m->len] = (int64_t)id;
    m->ends[m->len] = (int64_t)to;
    m->len++;
    return 0;
}

typedef struct {
    PyObject_HEAD
    hs_database_t *db;
    hs_scratch_t *scratch; /* the object's own; a concurrent scan (another thread) clones one */
    int busy;
    size_t mapped; /* a database mapped from an image file (Matcher.map): the mapping's length, else 0 */
} MatcherObject;

static PyObject *NativeError;

/* Free the object's scratch space and database (unmapped, for one mapped from the cache). */
static void release(MatcherObject *self) {
    if (self->scratch != NULL) hs_free_scratch(self->scratch);
    if (self->mapped)
        munmap(self->db, self->mapped);
    else if (self->db != NULL)
        hs_free_database(self->db);
    self->scratch = NULL;
    self->db = NULL;
    self->mapped = 0;
}

static void Matcher_dealloc(MatcherObject *self) {
    release(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int take_scratch(MatcherObject *self) {
    hs_error_t err = hs_alloc_scratch(self->db, &self->scratch);
    if (err != HS_SUCCESS) {
        PyErr_Format(NativeError, "cannot allocate Vectorscan scratch space (error %d)", (int)err);
        return -1;
    }
    return 0;
}

/* Matcher(expressions: list[bytes], flags: list[int], ids: list[int]) */
static int Matcher_init(MatcherObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"expressions", "flags", "ids", NULL};
    PyObject *exprs_obj, *flags_obj, *ids_obj;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO", kwlist, &exprs_obj, &flags_obj, &ids_obj)) return -1;
    PyObject *exprs = PySequence_Fast(exprs_obj, "expressions must be a sequence of bytes");
    if (exprs == NULL) return -1;
    PyObject *flags = PySequence_Fast(flags_obj, "flags must be a sequence of int");
    if (flags == NULL) {
        Py_DECREF(exprs);
        return -1;
    }
    PyObject *ids = PySequence_Fast(ids_obj, "ids must be a sequence of int");
    if (ids == NULL) {
        Py_DECREF(exprs);
        Py_DECREF(flags);
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(exprs);
    int rc = -1;
    const char **c_exprs = NULL;
    unsigned int *c_flags = NULL, *c_ids = NULL;
    if (n == 0 || PySequence_Fast_GET_SIZE(flags) != n || PySequence_Fast_GET_SIZE(ids) != n) {
        PyErr_SetString(PyExc_ValueError, "expressions, flags and ids must be non-empty and of one length");
        goto done;
    }
    c_exprs = calloc((size_t)n, sizeof(char *));
    c_flags = calloc((size_t)n, sizeof(unsigned int));
    c_ids = calloc((size_t)n, sizeof(unsigned int));
    if (c_exprs == NULL || c_flags == NULL || c_ids == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PySequence_Fast_GET_ITEM(exprs, i);
        if (!PyBytes_Check(e)) {
            PyErr_SetString(PyExc_TypeError, "expressions must be bytes");
            goto done;
        }
        c_exprs[i] = PyBytes_AS_STRING(e);
        unsigned long f = PyLong_AsUnsignedLong(PySequence_Fast_GET_ITEM(flags, i));
        unsigned long d = PyLong_AsUnsignedLong(PySequence_Fast_GET_ITEM(ids, i));
        if (PyErr_Occurred()) goto done;
        c_flags[i] = (unsigned int)f;
        c_ids[i] = (unsigned int)d;
    }
    hs_compile_error_t *cerr = NULL;
    hs_database_t *db = NULL;
    hs_error_t err;
    Py_BEGIN_ALLOW_THREADS
    err = hs_compile_multi(c_exprs, c_flags, c_ids, (unsigned int)n, HS_MODE_BLOCK, NULL, &db, &cerr);
    Py_END_ALLOW_THREADS
    if (err != HS_SUCCESS) {
        if (cerr != NULL) {
            /* (message, index of the expression or -1) so the caller can name the rule */
            PyObject *detail = Py_BuildValue("(si)", cerr->message, cerr->expression);
            if (detail != NULL) {
                PyErr_SetObject(NativeError, detail);
                Py_DECREF(detail);
            }
            hs_free_compile_error(cerr);
        } else {
            PyErr_Format(NativeError, "Vectorscan compile failed (error %d)", (int)err);
        }
        goto done;
    }
    release(self);
    self->db = db;
    rc = take_scratch(self);
done:
    free(c_exprs);
    free(c_flags);
    free(c_ids);
    Py_DECREF(exprs);
    Py_DECREF(flags);
    Py_DECREF(ids);
    return rc;
}

/* The compile cache holds a database as an image: the library's in-memory form as it lies at a page boundary,
 * then a trailer naming its size and its XXH3 digest. Loading maps the file and scans from the mapping, where
 * hs_deserialize_database read the file, allocated, checked a CRC and copied (~90 ms of a 200,000-record scan for
 * its ~50 databases, ~25 ms now), and processes on one machine share the pages. The in-memory form places its
 * bytecode at an offset from its own start, aligned for the start's address modulo 64: a page boundary when
 * written (below) and when mapped. The library still checks its CRC when it sizes the scratch space for the
 * database (hs_alloc_scratch), but it trusts the header's offsets to find the bytes it checks: the digest is
 * checked first, so a damaged entry is refused before the library reads it, and compiled again. Entries are
 * replaced by a rename, never rewritten in place (cache.write_cached): a mapping never sees its file change. */
#define IMAGE_MAGIC "spillguard-hsdb1"
#define IMAGE_ALIGN 4096

typedef struct {
    char magic[16];
    uint64_t size;   /* bytes of the in-memory form before the trailer */
    uint64_t digest; /* XXH3_64bits of those bytes */
} ImageTrailer;

/* Matcher.image() -> bytes: the database as the cache keeps it (Matcher.map reads it) */
static PyObject *Matcher_image(MatcherObject *self, PyObject *Py_UNUSED(ignored)) {
    if (self->db == NULL) {
        PyErr_SetString(NativeError, "matcher not compiled");
        return NULL;
    }
    char *serialized = NULL;
    size_t serialized_len = 0, size = 0;
    void *mem = NULL;
    PyObject *out = NULL;
    if (hs_serialize_database(self->db, &serialized, &serialized_len) != HS_SUCCESS ||
        hs_serialized_database_size(serialized, serialized_len, &size) != HS_SUCCESS) {
        PyErr_SetString(NativeError, "cannot serialize the database");
        goto done;
    }
    if (posix_memalign(&mem, IMAGE_ALIGN, size) != 0) {
        mem = NULL;
        PyErr_NoMemory();
        goto done;
    }
    memset(mem, 0, size); /* bytes the library leaves unwritten (padding) are zeros in the file, not heap contents */
    if (hs_deserialize_database_at(serialized, serialized_len, (hs_database_t *)mem) != HS_SUCCESS) {
        PyErr_SetString(NativeError, "cannot lay out the database");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(size + sizeof(ImageTrailer)));
    if (out == NULL) goto done;
    ImageTrailer t;
    memcpy(t.magic, IMAGE_MAGIC, sizeof(t.magic));
    t.size = size;
    t.digest = XXH3_64bits(mem, size);
    memcpy(PyBytes_AS_STRING(out), mem, size);
    memcpy(PyBytes_AS_STRING(out) + size, &t, sizeof(t));
done:
    free(serialized);
    free(mem);
    return out;
}

/* Matcher.map(path) -> Matcher: an image file (Matcher.image) mapped read-only. OSError if it cannot be opened or
 * mapped; NativeError if it is not whole (size, trailer, the library's magic and version, the digest). */
static PyObject *Matcher_map(PyTypeObject *type, PyObject *arg) {
    PyObject *path = NULL;
    if (!PyUnicode_FSConverter(arg, &path)) return NULL;
    int fd = open(PyBytes_AS_STRING(path), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, arg);
        Py_DECREF(path);
        return NULL;
    }
    Py_DECREF(path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    size_t len = (size_t)st.st_size;
    if (st.st_size < (off_t)(sizeof(ImageTrailer) + 64)) {
        close(fd);
        PyErr_SetString(NativeError, "not a database image (too short)");
        return NULL;
    }
    int flags = MAP_PRIVATE;
#ifdef MAP_POPULATE
    flags |= MAP_POPULATE; /* every page is read below: one call maps them all */
#endif
    void *map;
    int whole = 0;
    Py_BEGIN_ALLOW_THREADS
    map = mmap(NULL, len, PROT_READ, flags, fd, 0);
    if (map != MAP_FAILED) {
        ImageTrailer t;
        size_t db_size = 0;
        memcpy(&t, (const char *)map + len - sizeof(t), sizeof(t));
        whole = memcmp(t.magic, IMAGE_MAGIC, sizeof(t.magic)) == 0 && t.size == len - sizeof(t) &&
                hs_database_size((const hs_database_t *)map, &db_size) == HS_SUCCESS && db_size == t.size &&
                XXH3_64bits(map, t.size) == t.digest;
    }
    Py_END_ALLOW_THREADS
    close(fd);
    if (map == MAP_FAILED) return PyErr_SetFromErrno(PyExc_OSError);
    if (!whole) {
        munmap(map, len);
        PyErr_SetString(NativeError, "not a whole database image of this Vectorscan build");
        return NULL;
    }
    MatcherObject *self = (MatcherObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        munmap(map, len);
        return NULL;
    }
    self->db = (hs_database_t *)map;
    self->mapped = len;
    if (take_scratch(self) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* Whether position `at` belongs to value v (from its start to the next value's). */
static inline int in_value(const int64_t *starts, Py_ssize_t n, Py_ssize_t v, int64_t at) {
    return at >= starts[v] && (v + 1 == n || at < starts[v + 1]);
}

static Py_ssize_t upper_bound(const int64_t *a, Py_ssize_t n, int64_t x) {
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (a[mid] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* scan(offsets, data, start, n, wide) -> (rule ids: bytes of int64, value indices: bytes of int64)
 * offsets: the column's offsets buffer (int32, or int64 when wide); start: the array's offset into it;
 * n: values; data: the column's data buffer. Null slots must be empty (the caller fills nulls with ""). */
static PyObject *Matcher_scan(MatcherObject *self, PyObject *args) {
    if (self->db == NULL) {
        PyErr_SetString(NativeError, "matcher not compiled");
        return NULL;
    }
    Column c;
    if (column_from_args(args, &c) < 0) return NULL;
    Py_ssize_t n = c.n;
    if (n == 0) {
        column_close(&c);
        return Py_BuildValue("(y#y#)", "", (Py_ssize_t)0, "", (Py_ssize_t)0);
    }
    PyObject *result = NULL;
    int64_t *starts = NULL;
    char *joined = NULL;
    Matches m = {0};
    hs_scratch_t *scratch = NULL;
    int owned_scratch = 0;
    int64_t first = column_offset(&c, 0);
    int64_t total = (column_offset(&c, n) - first) + n;
    if (total > (int64_t)UINT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "column over 4 GB: scan it in parts");
        goto done;
    }
    starts = malloc((size_t)n * sizeof(int64_t));
    joined = malloc((size_t)total);
    if (starts == NULL || joined == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (self->busy) { /* another thread is scanning with this matcher */
        if (hs_clone_scratch(self->scratch, &scratch) != HS_SUCCESS) {
            PyErr_SetString(NativeError, "cannot clone Vectorscan scratch space");
            goto done;
        }
        owned_scratch = 1;
    } else {
        scratch = self->scratch;
        self->busy = 1;
    }
    hs_error_t err;
    const char *src = c.have_data ? (const char *)c.data.buf : NULL;
    Py_BEGIN_ALLOW_THREADS
    char *p = joined;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t a = column_offset(&c, i), b = column_offset(&c, i + 1);
        starts[i] = (int64_t)(p - joined);
        if (b > a) {
            memcpy(p, src + a, (size_t)(b - a));
            p += b - a;
        }
        *p++ = '\n';
    }
    err = hs_scan(self->db, joined, (unsigned int)total, 0, scratch, on_match, &m);
    Py_END_ALLOW_THREADS
    if (owned_scratch)
        hs_free_scratch(scratch);
    else
        self->busy = 0;
    if (m.failed) {
        PyErr_NoMemory();
        goto done;
    }
    if (err != HS_SUCCESS && err != HS_SCAN_TERMINATED) {
        PyErr_Format(NativeError, "Vectorscan scan failed (error %d)", (int)err);
        goto done;
    }
    /* A match ends one past the "\n" it may have consumed: position end - 2 lies inside the value or on the
     * separator right after it, both that value's. Vectorscan reports matches mostly in order of their ends, so
     * the value of the match before is tried first, then the next few; a binary search decides the rest. */
    Py_ssize_t v = 0;
    for (size_t k = 0; k < m.len; k++) {
        int64_t at = m.ends[k] - 2;
        if (!in_value(starts, n, v, at)) {
            for (int step = 0; step < 4 && v + 1 < n && at >= starts[v + 1]; step++) v++;
            if (!in_value(starts, n, v, at)) v = upper_bound(starts, n, at) - 1;
            if (v < 0) v = 0; /* before the first value's start: the first value (as before) */
        }
        m.ends[k] = v;
    }
    /* (y# of a NULL pointer would give None: no match is two empty byte strings) */
    result = Py_BuildValue("(y#y#)", m.len ? (const char *)m.ids : "", (Py_ssize_t)(m.len * sizeof(int64_t)),
                           m.len ? (const char *)m.ends : "", (Py_ssize_t)(m.len * sizeof(int64_t)));
done:
    free(starts);
    free(joined);
    free(m.ids);
    free(m.ends);
    column_close(&c);
    return result;
}

static PyMethodDef Matcher_methods[] = {
    {"scan", (PyCFunction)Matcher_scan, METH_VARARGS,
     "scan(offsets, data, start, n, wide) -> (rule ids, value indices) as int64 bytes"},
    {"image", (PyCFunction)Matcher_image, METH_NOARGS, "the database as the compile cache keeps it"},
    {"map", (PyCFunction)Matcher_map, METH_O | METH_CLASS, "a Matcher of an image file (image()), mapped read-only"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MatcherType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "spillguard._native.Matcher",
    .tp_basicsize = sizeof(MatcherObject),
    .tp_dealloc = (destructor)Matcher_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A compiled Vectorscan database of rule patterns (block mode).",
    .tp_methods = Matcher_methods,
    .tp_init = (initproc)Matcher_init,
    .tp_new = PyType_GenericNew,
};

static PyObject *native_version(PyObject *self, PyObject *Py_UNUSED(ignored)) {
    (void)self;
    return PyUnicode_FromString(hs_version());
}

/* The platform a database compiled here is built for (hs_compile_multi with no platform tunes it for this CPU and
 * may use its instruction sets): a database built for one does not load on a CPU without its features. */
static PyObject *native_platform(PyObject *self, PyObject *Py_UNUSED(ignored)) {
    (void)self;
    hs_platform_info_t plat;
    if (hs_populate_platform(&plat) != HS_SUCCESS) {
        PyErr_SetString(NativeError, "Vectorscan cannot describe this platform");
        return NULL;
    }
    return PyUnicode_FromFormat("tune%u-features%llu", plat.tune, (unsigned long long)plat.cpu_features);
}

static PyMethodDef module_methods[] = {
    {"vectorscan_version", native_version, METH_NOARGS, "the linked Vectorscan library's version string"},
    {"vectorscan_platform", native_platform, METH_NOARGS, "the CPU tuning and features a database compiled here uses"},
    {"sha256", native_sha256, METH_VARARGS, "sha256(offsets, data, start, n, wide) -> n SHA-256 digests (bytes)"},
    {"hmac_sha256", native_hmac_sha256, METH_VARARGS,
     "hmac_sha256(key, offsets, data, start, n, wide) -> n HMAC-SHA-256 digests (bytes)"},
    {"keyed_hash64", native_keyed_hash64, METH_VARARGS,
     "keyed_hash64(keys, len_key, offsets, data, start, n, wide) -> n keyed 64-bit hashes (bytes of uint64)"},
    {"entropy", native_entropy, METH_VARARGS,
     "entropy(offsets, data, start, n, wide) -> n Shannon entropies in bits per byte (bytes of float64)"},
    {"secret_check", native_secret_check, METH_VARARGS,
     "secret_check(offsets, data, start, n, wide, min_len, max_len, min_entropy, schemes) -> n verdicts (1 pass, 0 fail, 2 undecided)"},
    {"name_shape", native_name_shape, METH_VARARGS,
     "name_shape(offsets, data, start, n, wide, whitespace, max_len) -> n verdicts of the person_name check (2 undecided)"},
    {"phone_shape", native_phone_shape, METH_VARARGS,
     "phone_shape(offsets, data, start, n, wide, whitespace, codes) -> n verdicts of phones.vec_typed_shape (2 undecided)"},
    {"card_check", native_card_check, METH_VARARGS,
     "card_check(offsets, data, start, n, wide, issuers) -> n verdicts of validators._vec_card (Luhn, issuer table)"},
    {"shapes", native_shapes, METH_VARARGS,
     "shapes(offsets, data, start, n, wide, kind) -> n bytes: 1 where the value has the shape (validators.SHAPES)"},
    {"any_byte", native_any_byte, METH_VARARGS,
     "any_byte(offsets, data, start, n, wide, table) -> n verdicts (1 an ASCII byte flagged, 0 none, 2 none but non-ASCII bytes)"},
    {"whole_linear", native_whole_linear, METH_VARARGS,
     "whole_linear(offsets, data, start, n, wide, program) -> n bytes: 1 where the linear program matches the whole value"},
    {"byte_set", native_byte_set, METH_VARARGS,
     "byte_set(offsets, data, start, n, wide) -> 32 bytes: the set of byte values the values hold (bit b: byte b)"},
    {"byte_runs", native_byte_runs, METH_VARARGS,
     "byte_runs(offsets, data, start, n, wide, table) -> 48 bytes: byte_set's, then per class (16) the longest run of a value's bytes in it (up to 255)"},
    {"byte_counts", native_byte_counts, METH_VARARGS,
     "byte_counts(offsets, data, start, n, wide, byte) -> the byte's count in each value (bytes of int32)"},
    {"count_byte", native_count_byte, METH_VARARGS, "count_byte(data, byte) -> occurrences of the byte in the buffer (memchr)"},
    {"json_lines_scan", native_json_lines_scan, METH_VARARGS,
     "json_lines_scan(data, max_depth) -> (indices of lines that are not shallow objects: bytes of int64, object lines, "
     "whether the block is UTF-8)"},
    {"json_lines_columns", native_json_lines_columns, METH_O,
     "json_lines_columns(data) -> the lines' objects as nested column buffers, or None for Arrow's reader to read"},
    {"merge_unique64", native_merge_unique64, METH_VARARGS,
     "merge_unique64(a, b, out) -> n: the union of two ascending uint64 runs, without repeats or 0, in out[:n]"},
    {"union_count64", native_union_count64, METH_O,
     "union_count64(runs) -> distinct keys in ascending uint64 runs (each without repeats or 0), one k-way pass"},
    {"sort64", native_sort64, METH_VARARGS, "sort64(buffer, signed) sorts 64-bit integer keys in place (radix sort)"},
    {"copy_text_columns", native_copy_text_columns, METH_VARARGS,
     "copy_text_columns(block, ncols, first_row=1) -> (rows, [(offsets, data, validity, nulls, wide)]): PostgreSQL COPY text decoded"},
    {"value_pairs", native_value_pairs, METH_VARARGS,
     "value_pairs(rules, values, category, priority, spanning, collapse) -> (values, rules, multi): a column's hits as distinct (value, rule) pairs"},
    {"json_object_lines", native_json_object_lines, METH_VARARGS,
     "json_object_lines(prefixes, columns, rows) -> bytes: per row an object line of the columns' JSON values (null where invalid)"},
    {"copy_out_read", native_copy_out_read, METH_VARARGS,
     "copy_out_read(libpq_path, pgconn, fd, block, max_bytes) -> status: the COPY rows libpq has appended to the bytearray block, read without waiting"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "spillguard._native",
    .m_doc = "spillguard's native detection core",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&MatcherType) < 0 || jsonl_ready() < 0) return NULL;
    PyObject *mod = PyModule_Create(&native_module);
    if (mod == NULL) return NULL;
    NativeError = PyErr_NewException("spillguard._native.NativeError", NULL, NULL);
    if (NativeError == NULL || PyModule_AddObjectRef(mod, "NativeError", NativeError) < 0 ||
        PyModule_AddObjectRef(mod, "Matcher", (PyObject *)&MatcherType) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    PyModule_AddIntConstant(mod, "FLAG_CASELESS", HS_FLAG_CASELESS);
    PyModule_AddIntConstant(mod, "FLAG_MULTILINE", HS_FLAG_MULTILINE);
    PyModule_AddIntConstant(mod, "FLAG_DOTALL", HS_FLAG_DOTALL);
    PyModule_AddIntConstant(mod, "FLAG_SINGLEMATCH", HS_FLAG_SINGLEMATCH);
    PyModule_AddIntConstant(mod, "FLAG_ALLOWEMPTY", HS_FLAG_ALLOWEMPTY);
    PyModule_AddIntConstant(mod, "FLAG_UTF8", HS_FLAG_UTF8);
    PyModule_AddIntConstant(mod, "FLAG_UCP", HS_FLAG_UCP);
    return mod;
}
