/* SHA-256 and HMAC-SHA-256 (RFC 2104) of every value of an Arrow string column, in one call.
 *
 * Pseudonyms (copy's hmac transform), leaked-token digests (scan --secrets-out) and respond's token matching
 * hash whole columns; per value the Python path cost a bytes object and two hashlib calls. Here the key's inner
 * and outer pad states are computed once per column and copied per value. Nulls must be filled with "" by the
 * caller (a null hashes as the empty value, as before). OpenSSL's libcrypto does the hashing.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_API_COMPAT 0x10100000L /* the one-shot SHA256_* API, kept by OpenSSL 3 */
#include <Python.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>

#include "native.h"

/* sha256(offsets, data, start, n, wide) -> bytes of n * 32 */
PyObject *native_sha256(PyObject *self, PyObject *args) {
    (void)self;
    Column c;
    if (column_from_args(args, &c) < 0) return NULL;
    Py_ssize_t n = c.n;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * SHA256_DIGEST_LENGTH);
    if (out != NULL) {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
        const unsigned char *src = c.have_data ? (const unsigned char *)c.data.buf : (const unsigned char *)"";
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t a = column_offset(&c, i), b = column_offset(&c, i + 1);
            SHA256(src + a, (size_t)(b - a), dst + i * SHA256_DIGEST_LENGTH);
        }
        Py_END_ALLOW_THREADS
    }
    column_close(&c);
    return out;
}

/* hmac_sha256(key, offsets, data, start, n, wide) -> bytes of n * 32 */
PyObject *native_hmac_sha256(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer key;
    PyObject *off_obj, *data_obj;
    Py_ssize_t start, n;
    int wide;
    if (!PyArg_ParseTuple(args, "y*OOnnp", &key, &off_obj, &data_obj, &start, &n, &wide)) return NULL;
    Column c;
    if (column_open(&c, off_obj, data_obj, start, n, wide) < 0) {
        PyBuffer_Release(&key);
        return NULL;
    }
    unsigned char k0[SHA256_CBLOCK];
    memset(k0, 0, sizeof(k0));
    if ((size_t)key.len > SHA256_CBLOCK)
        SHA256((const unsigned char *)key.buf, (size_t)key.len, k0);
    else
        memcpy(k0, key.buf, (size_t)key.len);
    PyBuffer_Release(&key);
    unsigned char ipad[SHA256_CBLOCK], opad[SHA256_CBLOCK];
    for (int i = 0; i < SHA256_CBLOCK; i++) {
        ipad[i] = k0[i] ^ 0x36;
        opad[i] = k0[i] ^ 0x5c;
    }
    SHA256_CTX inner0, outer0;
    SHA256_Init(&inner0);
    SHA256_Update(&inner0, ipad, sizeof(ipad));
    SHA256_Init(&outer0);
    SHA256_Update(&outer0, opad, sizeof(opad));
    memset(k0, 0, sizeof(k0));
    memset(ipad, 0, sizeof(ipad));
    memset(opad, 0, sizeof(opad));
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * SHA256_DIGEST_LENGTH);
    if (out != NULL) {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
        const unsigned char *src = c.have_data ? (const unsigned char *)c.data.buf : (const unsigned char *)"";
        Py_BEGIN_ALLOW_THREADS
        unsigned char mid[SHA256_DIGEST_LENGTH];
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t a = column_offset(&c, i), b = column_offset(&c, i + 1);
            SHA256_CTX ctx = inner0;
            SHA256_Update(&ctx, src + a, (size_t)(b - a));
            SHA256_Final(mid, &ctx);
            ctx = outer0;
            SHA256_Update(&ctx, mid, sizeof(mid));
            SHA256_Final(dst + i * SHA256_DIGEST_LENGTH, &ctx);
        }
        Py_END_ALLOW_THREADS
    }
    memset(&inner0, 0, sizeof(inner0));
    memset(&outer0, 0, sizeof(outer0));
    column_close(&c);
    return out;
}

/* keyed_hash64(keys, len_key, offsets, data, start, n, wide) -> bytes of n uint64 (spillguard.keys.Hasher):
 * per value, the sum mod 2**64 of (byte + 1) * keys[position & (len(keys) - 1)], xor length * len_key, through
 * the splitmix64 finaliser; a result of 0 becomes 1 (0 means "no value" to the caller, who zeroes nulls). */
PyObject *native_keyed_hash64(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer keys;
    unsigned long long len_key;
    PyObject *off_obj, *data_obj;
    Py_ssize_t start, n;
    int wide;
    if (!PyArg_ParseTuple(args, "y*KOOnnp", &keys, &len_key, &off_obj, &data_obj, &start, &n, &wide)) return NULL;
    size_t nkeys = (size_t)keys.len / sizeof(uint64_t);
    if (nkeys == 0 || (nkeys & (nkeys - 1)) != 0 || (size_t)keys.len % sizeof(uint64_t) != 0) {
        PyBuffer_Release(&keys);
        PyErr_SetString(PyExc_ValueError, "keys must be a power-of-two count of uint64");
        return NULL;
    }
    Column c;
    if (column_open(&c, off_obj, data_obj, start, n, wide) < 0) {
        PyBuffer_Release(&keys);
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(uint64_t));
    if (out != NULL) {
        uint64_t *dst = (uint64_t *)PyBytes_AS_STRING(out);
        const uint64_t *k = (const uint64_t *)keys.buf;
        const size_t mask = nkeys - 1;
        const unsigned char *src = c.have_data ? (const unsigned char *)c.data.buf : (const unsigned char *)"";
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t a = column_offset(&c, i), b = column_offset(&c, i + 1);
            uint64_t sum = 0;
            const unsigned char *p = src + a;
            size_t len = (size_t)(b - a);
            for (size_t j = 0; j < len; j++) sum += ((uint64_t)p[j] + 1u) * k[j & mask];
            uint64_t h = sum ^ ((uint64_t)len * (uint64_t)len_key);
            h ^= h >> 30;
            h *= 0xBF58476D1CE4E5B9ULL;
            h ^= h >> 27;
            h *= 0x94D049BB133111EBULL;
            h ^= h >> 31;
            dst[i] = h ? h : 1;
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&keys);
    column_close(&c);
    return out;
}
