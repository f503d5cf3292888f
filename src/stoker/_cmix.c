/* splitmix64 over arrays: stoker.seeding's per-sample keys and draws in one pass each.
 *
 * The numpy version of each function takes a dozen whole-array passes (shift, xor, multiply,
 * cast...), ~1 us apiece on a 256-sample batch, and a batch of the seed's pipeline draws a key,
 * two crop offsets and a flip. Here each is one loop. The arithmetic is the numpy code's,
 * operation for operation (unsigned 64-bit wrapping; int64 products wrap the same way), so the
 * results are bit-identical; a test holds the two to that.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define GOLDEN 0x9E3779B97F4A7C15ULL

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* in_obj: a C-contiguous buffer of `in_size`-byte items; out_obj: a writable one of as many
 * `out_size`-byte items. Returns the item count, or -1 with an exception set. */
static Py_ssize_t get_pair(PyObject *in_obj, Py_buffer *in, Py_ssize_t in_size, PyObject *out_obj,
                           Py_buffer *out, Py_ssize_t out_size) {
    if (PyObject_GetBuffer(in_obj, in, PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (PyObject_GetBuffer(out_obj, out, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(in);
        return -1;
    }
    const Py_ssize_t n = in->len / in_size;
    if (in->len % in_size || out->len != n * out_size) {
        PyBuffer_Release(in);
        PyBuffer_Release(out);
        PyErr_SetString(PyExc_ValueError, "_cmix: input and output sizes do not match");
        return -1;
    }
    return n;
}

/* keys(indices: int64[n], base: uint64, out: uint64[n]): mix64((index + GOLDEN) ^ base). */
static PyObject *keys(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *in_obj, *out_obj;
    unsigned long long base;
    if (!PyArg_ParseTuple(args, "OKO", &in_obj, &base, &out_obj)) return NULL;
    Py_buffer in, out;
    const Py_ssize_t n = get_pair(in_obj, &in, 8, out_obj, &out, 8);
    if (n < 0) return NULL;
    const int64_t *index = in.buf;
    uint64_t *key = out.buf;
    for (Py_ssize_t i = 0; i < n; i++) key[i] = mix64(((uint64_t)index[i] + GOLDEN) ^ base);
    PyBuffer_Release(&in);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

/* uniform(keys: uint64[n], stream_mix: uint64, out: float64[n]): floats in [0, 1). */
static PyObject *uniform(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *in_obj, *out_obj;
    unsigned long long stream_mix;
    if (!PyArg_ParseTuple(args, "OKO", &in_obj, &stream_mix, &out_obj)) return NULL;
    Py_buffer in, out;
    const Py_ssize_t n = get_pair(in_obj, &in, 8, out_obj, &out, 8);
    if (n < 0) return NULL;
    const uint64_t *key = in.buf;
    double *value = out.buf;
    for (Py_ssize_t i = 0; i < n; i++)
        value[i] = (double)(mix64(key[i] ^ stream_mix) >> 11) * (1.0 / 9007199254740992.0);
    PyBuffer_Release(&in);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

/* integers(keys: uint64[n], stream_mix: uint64, low: int64, span: int64, out: int64[n]):
 * low + ((top 32 bits) * span >> 32), the multiply-shift of seeding.integers. */
static PyObject *integers(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *in_obj, *out_obj;
    unsigned long long stream_mix;
    long long low, span;
    if (!PyArg_ParseTuple(args, "OKLLO", &in_obj, &stream_mix, &low, &span, &out_obj))
        return NULL;
    Py_buffer in, out;
    const Py_ssize_t n = get_pair(in_obj, &in, 8, out_obj, &out, 8);
    if (n < 0) return NULL;
    const uint64_t *key = in.buf;
    int64_t *value = out.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint64_t top = mix64(key[i] ^ stream_mix) >> 32;
        const int64_t product = (int64_t)(top * (uint64_t)span); /* numpy's int64 wraps too */
        value[i] = (int64_t)((uint64_t)low + (uint64_t)(product >> 32));
    }
    PyBuffer_Release(&in);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"keys", keys, METH_VARARGS, "Per-sample keys: mix64((index + golden) ^ base)."},
    {"uniform", uniform, METH_VARARGS, "One float in [0, 1) per key, for a mixed stream id."},
    {"integers", integers, METH_VARARGS, "One integer in [low, low + span) per key."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cmix",
                                    "splitmix64 over arrays, for stoker.seeding.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__cmix(void) { return PyModule_Create(&module); }
