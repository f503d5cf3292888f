/* The seed's CIFAR train pipeline in one pass: crop (constant padding), flip, uint8 -> float,
 * scale, normalise; NHWC uint8 in, NCHW float32 out.
 *
 * Each of the 256 possible uint8 values is converted once per channel with the same float32
 * operations, in the same order, as the unfused transforms (convert, multiply by the scale,
 * subtract the mean, divide by the std); elements are then looked up, so results are
 * bit-identical to the unfused transforms. Compile without floating-point contraction
 * (-ffp-contract=off): a fused multiply-add would round the table differently.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static int get_buffer(PyObject *obj, Py_buffer *view, int writable, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0) {
        PyErr_Format(PyExc_TypeError, "_cfused: %s must be a C-contiguous buffer", what);
        return -1;
    }
    return 0;
}

/* crop_flip_normalize(src, src_n, rows, n, h, w, c, tops, lefts, flips, pad_top, pad_left,
 *                     out_h, out_w, fill, scale, mean, std, out)
 * src: uint8 (src_n, h, w, c); rows: int64 (n,), which images of src form the batch (empty:
 * the first n, in order) — the dataset's gather, done here instead of in a separate copy;
 * tops/lefts: int64 (n,) in padded coordinates; flips: uint8 (n,);
 * fill: uint8 (c,); mean/std: float32 (c,) or empty for no normalisation; out: float32
 * (n, c, out_h, out_w). */
static PyObject *crop_flip_normalize(PyObject *self, PyObject *args) {
    PyObject *src_o, *rows_o, *tops_o, *lefts_o, *flips_o, *fill_o, *mean_o, *std_o, *out_o;
    Py_ssize_t src_n, n, h, w, c, pad_top, pad_left, oh, ow;
    float scale;
    if (!PyArg_ParseTuple(args, "OnOnnnnOOOnnnnOfOOO", &src_o, &src_n, &rows_o, &n, &h, &w, &c,
                          &tops_o, &lefts_o, &flips_o, &pad_top, &pad_left, &oh, &ow, &fill_o,
                          &scale, &mean_o, &std_o, &out_o))
        return NULL;
    Py_buffer src, rows_b, tops, lefts, flips, fill, mean, std, out;
    if (get_buffer(src_o, &src, 0, "src") < 0) return NULL;
    if (get_buffer(rows_o, &rows_b, 0, "rows") < 0) {
        PyBuffer_Release(&src);
        return NULL;
    }
    if (get_buffer(tops_o, &tops, 0, "tops") < 0) goto fail_src;
    if (get_buffer(lefts_o, &lefts, 0, "lefts") < 0) goto fail_tops;
    if (get_buffer(flips_o, &flips, 0, "flips") < 0) goto fail_lefts;
    if (get_buffer(fill_o, &fill, 0, "fill") < 0) goto fail_flips;
    if (get_buffer(mean_o, &mean, 0, "mean") < 0) goto fail_fill;
    if (get_buffer(std_o, &std, 0, "std") < 0) goto fail_mean;
    if (get_buffer(out_o, &out, 1, "out") < 0) goto fail_std;
    if (src.len < src_n * h * w * c || (rows_b.len && rows_b.len < n * 8) ||
        (!rows_b.len && n > src_n) || tops.len < n * 8 || lefts.len < n * 8 || flips.len < n ||
        fill.len < c || out.len < (Py_ssize_t)(n * c * oh * ow * sizeof(float)) ||
        (mean.len && (mean.len < (Py_ssize_t)(c * sizeof(float)) || std.len < mean.len))) {
        PyErr_SetString(PyExc_ValueError, "_cfused: a buffer is smaller than its shape says");
        goto fail_out;
    }
    if (c > 16) {
        PyErr_SetString(PyExc_ValueError, "_cfused: at most 16 channels");
        goto fail_out;
    }
    const int64_t *rows = rows_b.len ? (const int64_t *)rows_b.buf : NULL;
    for (Py_ssize_t s = 0; rows && s < n; s++) {
        if (rows[s] < 0 || rows[s] >= src_n) {
            PyErr_Format(PyExc_IndexError, "_cfused: row %lld out of range for %zd images",
                         (long long)rows[s], src_n);
            goto fail_out;
        }
    }
    {
        const uint8_t *x = (const uint8_t *)src.buf;
        const int64_t *top = (const int64_t *)tops.buf, *left = (const int64_t *)lefts.buf;
        const uint8_t *flip = (const uint8_t *)flips.buf, *fv = (const uint8_t *)fill.buf;
        const float *m = (const float *)mean.buf, *sd = (const float *)std.buf;
        const int norm = mean.len > 0;
        float *y = (float *)out.buf;
        /* Every uint8 value's result, per channel, computed once with the unfused operations:
         * a lookup then gives each element bit-identically, with no per-element arithmetic. */
        float table[16][256];
        float fill_value[16];
        for (Py_ssize_t k = 0; k < c; k++) {
            for (int u = 0; u < 256; u++) {
                float v = (float)u * scale;
                table[k][u] = norm ? (v - m[k]) / sd[k] : v;
            }
            fill_value[k] = table[k][fv[k]];
        }
        Py_BEGIN_ALLOW_THREADS
        const Py_ssize_t image_bytes = h * w * c;
        for (Py_ssize_t s = 0; s < n; s++) {
            if (rows && s + 1 < n) {
                /* Images are picked at random from the dataset: ask for the next one now, so
                 * its cache lines arrive while this one is converted. */
                const char *next = (const char *)(x + rows[s + 1] * image_bytes);
                for (Py_ssize_t b = 0; b < image_bytes; b += 64) __builtin_prefetch(next + b);
            }
            const Py_ssize_t base = left[s] - pad_left; /* source column of output column 0 */
            Py_ssize_t j_lo, j_hi;                      /* output columns inside the image */
            if (flip[s]) {
                j_lo = base + ow - w > 0 ? base + ow - w : 0;
                j_hi = base + ow < ow ? base + ow : ow;
            } else {
                j_lo = -base > 0 ? -base : 0;
                j_hi = w - base < ow ? w - base : ow;
            }
            if (j_hi < j_lo) j_hi = j_lo;
            for (Py_ssize_t i = 0; i < oh; i++) {
                const Py_ssize_t sy = top[s] + i - pad_top;
                float *dst[16]; /* this output row, one per channel */
                for (Py_ssize_t k = 0; k < c; k++) dst[k] = y + ((s * c + k) * oh + i) * ow;
                if (sy < 0 || sy >= h) {
                    for (Py_ssize_t k = 0; k < c; k++)
                        for (Py_ssize_t j = 0; j < ow; j++) dst[k][j] = fill_value[k];
                    continue;
                }
                for (Py_ssize_t k = 0; k < c; k++) {
                    for (Py_ssize_t j = 0; j < j_lo; j++) dst[k][j] = fill_value[k];
                    for (Py_ssize_t j = j_hi; j < ow; j++) dst[k][j] = fill_value[k];
                }
                const Py_ssize_t image = rows ? (Py_ssize_t)rows[s] : s;
                const uint8_t *line = x + (image * h + sy) * w * c;
                if (c == 3) {
                    float *r0 = dst[0], *r1 = dst[1], *r2 = dst[2];
                    const float *t0 = table[0], *t1 = table[1], *t2 = table[2];
                    if (flip[s]) {
                        const uint8_t *px = line + (base + ow - 1 - j_lo) * 3;
                        for (Py_ssize_t j = j_lo; j < j_hi; j++, px -= 3) {
                            r0[j] = t0[px[0]]; r1[j] = t1[px[1]]; r2[j] = t2[px[2]];
                        }
                    } else {
                        const uint8_t *px = line + (base + j_lo) * 3;
                        for (Py_ssize_t j = j_lo; j < j_hi; j++, px += 3) {
                            r0[j] = t0[px[0]]; r1[j] = t1[px[1]]; r2[j] = t2[px[2]];
                        }
                    }
                } else {
                    for (Py_ssize_t j = j_lo; j < j_hi; j++) {
                        const Py_ssize_t sx = flip[s] ? base + ow - 1 - j : base + j;
                        const uint8_t *px = line + sx * c;
                        for (Py_ssize_t k = 0; k < c; k++) dst[k][j] = table[k][px[k]];
                    }
                }
            }
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&out); PyBuffer_Release(&std); PyBuffer_Release(&mean);
    PyBuffer_Release(&fill); PyBuffer_Release(&flips); PyBuffer_Release(&lefts);
    PyBuffer_Release(&tops); PyBuffer_Release(&rows_b); PyBuffer_Release(&src);
    Py_RETURN_NONE;
fail_out: PyBuffer_Release(&out);
fail_std: PyBuffer_Release(&std);
fail_mean: PyBuffer_Release(&mean);
fail_fill: PyBuffer_Release(&fill);
fail_flips: PyBuffer_Release(&flips);
fail_lefts: PyBuffer_Release(&lefts);
fail_tops: PyBuffer_Release(&tops);
fail_src: PyBuffer_Release(&rows_b); PyBuffer_Release(&src);
    return NULL;
}

static PyMethodDef methods[] = {
    {"crop_flip_normalize", crop_flip_normalize, METH_VARARGS,
     "One pass of crop, flip, convert, scale and normalise over a uint8 NHWC batch."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cfused",
                                    "The fused CIFAR pipeline kernel.", -1, methods};

PyMODINIT_FUNC PyInit__cfused(void) { return PyModule_Create(&module); }
