/* Decode one rectangle of a JPEG with libjpeg-turbo, as RGB uint8, with the GIL released.
 *
 * Why: a RandomResizedCrop keeps on average about half of a photo (scale uniform in
 * 0.08..1), yet a full decode pays the inverse DCT, upsampling and colour conversion of every
 * pixel. libjpeg-turbo can skip whole rows above the window (entropy decoding only:
 * jpeg_skip_scanlines), leave out columns beside it (jpeg_crop_scanline) and stop after its
 * last row, so only the window's pixels are reconstructed. The pixels are those of a full
 * decode: same library, accurate integer IDCT and fancy upsampling as Pillow and simplejpeg
 * use, and the window is widened by one iMCU on every side before it is handed to libjpeg, so
 * the upsampling of the window's border rows and columns sees the same neighbours as in a full
 * decode (tests/datasets/test_crop_decode.py compares them pixel for pixel).
 *
 * Invariants:
 * - Every libjpeg error and every warning (corrupt data, premature end) ends the call with a
 *   ValueError carrying libjpeg's message; nothing partial is returned. Python falls back to
 *   the full decode, whose errors name the file.
 * - The output buffer is written only inside its bounds: height * width * 3 bytes, checked
 *   against the buffer's length before any decoding (tools/asan_fuzz.py fuzzes this).
 * - Colour spaces libjpeg cannot turn into RGB (CMYK, YCCK) are refused, never guessed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#if !defined(LIBJPEG_TURBO_VERSION_NUMBER) || LIBJPEG_TURBO_VERSION_NUMBER < 1005000
#error "needs libjpeg-turbo >= 1.5 (jpeg_skip_scanlines, jpeg_crop_scanline), not plain libjpeg"
#endif

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf escape;
    char message[JMSG_LENGTH_MAX];
} ErrorTrap;

static void trap_error(j_common_ptr cinfo) {
    ErrorTrap *trap = (ErrorTrap *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, trap->message);
    longjmp(trap->escape, 1);
}

/* A warning is a damaged stream whose pixels libjpeg would invent: treated as an error. */
static void trap_message(j_common_ptr cinfo, int level) {
    if (level < 0) trap_error(cinfo);
}

static void set_traps(struct jpeg_decompress_struct *cinfo, ErrorTrap *trap) {
    cinfo->err = jpeg_std_error(&trap->base);
    trap->base.error_exit = trap_error;
    trap->base.emit_message = trap_message;
    trap->message[0] = '\0';
}

static const char *color_space_name(J_COLOR_SPACE space) {
    switch (space) {
        case JCS_GRAYSCALE: return "Gray";
        case JCS_RGB: return "RGB";
        case JCS_YCbCr: return "YCbCr";
        case JCS_CMYK: return "CMYK";
        case JCS_YCCK: return "YCCK";
        default: return "unknown";
    }
}

/* header(data) -> (height, width, colour space name) */
static PyObject *header(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*", &data)) return NULL;
    struct jpeg_decompress_struct cinfo;
    ErrorTrap trap;
    set_traps(&cinfo, &trap);
    jpeg_create_decompress(&cinfo);
    long height = 0, width = 0;
    const char *space = "unknown";
    int failed = 0;
    if (setjmp(trap.escape)) {
        failed = 1;
    } else {
        jpeg_mem_src(&cinfo, (const unsigned char *)data.buf, (unsigned long)data.len);
        jpeg_read_header(&cinfo, TRUE);
        height = (long)cinfo.image_height;
        width = (long)cinfo.image_width;
        space = color_space_name(cinfo.jpeg_color_space);
    }
    jpeg_destroy_decompress(&cinfo);
    PyBuffer_Release(&data);
    if (failed) {
        PyErr_Format(PyExc_ValueError, "JPEG header: %s", trap.message);
        return NULL;
    }
    return Py_BuildValue("lls", height, width, space);
}

#define ROWS_PER_READ 16

typedef struct {
    const unsigned char *data;
    unsigned long size;
    unsigned char *out;
    size_t out_len;
    JDIMENSION top, left, height, width; /* the window, in image pixels */
    /* 0: copy the window's rows; else out gets the means of its box_y×box_x boxes, and the
     * window is the image less its last height % box_y rows and width % box_x columns */
    JDIMENSION box_y, box_x;
    char message[JMSG_LENGTH_MAX];
} Region;

/* One decoded row added to the column sums: a plain loop the compiler vectorises, so the
 * boxes cost ~1 ns a pixel on top of the decode (summing each box directly was ~0.3 ms a
 * 375×500 photo, as much as OpenCV's INTER_AREA of the decoded image). */
static void add_row(uint32_t *restrict column_sums, const unsigned char *restrict row, size_t n) {
    for (size_t i = 0; i < n; i++) column_sums[i] += row[i];
}

/* The box means of one row of boxes, from its column sums, rounded as OpenCV's integer-factor
 * INTER_AREA rounds them, so that the result equals cv2.resize of the decoded image bit for bit
 * (tested): the 2×2 vector path's (sum + 2) >> 2, else resizeAreaFast_'s
 * saturate_cast<uchar>(sum * (1.f / area)) in float32, ties to even. */
static void write_means(unsigned char *out, const uint32_t *column_sums, JDIMENSION boxes,
                        JDIMENSION box_y, JDIMENSION box_x) {
    const float scale = 1.f / (float)(box_y * box_x);
    const int two_by_two = box_y == 2 && box_x == 2;
    for (JDIMENSION b = 0; b < boxes; b++) {
        for (int c = 0; c < 3; c++) {
            uint32_t sum = 0;
            const uint32_t *column = column_sums + (size_t)b * box_x * 3 + c;
            for (JDIMENSION k = 0; k < box_x; k++) sum += column[3 * k];
            long mean = two_by_two ? (long)((sum + 2) >> 2) : lrintf((float)sum * scale);
            out[3 * b + c] = (unsigned char)(mean > 255 ? 255 : mean);
        }
    }
}

/* Decodes region->window into region->out (height rows of width * 3 bytes), or its box means.
 * 0 on success. Runs without the GIL: touches no Python object. */
static int decode_region(Region *region) {
    struct jpeg_decompress_struct cinfo;
    ErrorTrap trap;
    /* volatile: assigned after setjmp and read after a longjmp back to it */
    unsigned char *volatile rows = NULL;
    uint32_t *volatile sums = NULL;
    volatile int status = 0;
    set_traps(&cinfo, &trap);
    jpeg_create_decompress(&cinfo);
    if (setjmp(trap.escape)) {
        status = 1;
        memcpy(region->message, trap.message, sizeof region->message);
        goto done;
    }
    jpeg_mem_src(&cinfo, region->data, region->size);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK ||
        cinfo.num_components == 2 || cinfo.num_components > 4) {
        status = 2;
        snprintf(region->message, sizeof region->message, "colour space %s has no RGB here",
                 color_space_name(cinfo.jpeg_color_space));
        goto done;
    }
    if (region->box_y > 0) { /* whole boxes, from the top left corner */
        region->top = region->left = 0;
        region->height = cinfo.image_height / region->box_y * region->box_y;
        region->width = cinfo.image_width / region->box_x * region->box_x;
    }
    size_t expected = region->box_y > 0 ? (size_t)(region->height / region->box_y) *
                                              (region->width / region->box_x) * 3
                                        : (size_t)region->height * region->width * 3;
    if (region->out_len != expected) {
        status = 2;
        snprintf(region->message, sizeof region->message,
                 "the output holds %zu bytes where this image needs %zu", region->out_len,
                 expected);
        goto done;
    }
    if ((unsigned long)region->top + region->height > cinfo.image_height ||
        (unsigned long)region->left + region->width > cinfo.image_width || region->height == 0 ||
        region->width == 0) {
        status = 2;
        snprintf(region->message, sizeof region->message,
                 "window (top %u, left %u, height %u, width %u) is not inside the %ux%u image",
                 region->top, region->left, region->height, region->width, cinfo.image_height,
                 cinfo.image_width);
        goto done;
    }
    cinfo.out_color_space = JCS_RGB;
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&cinfo);
    /* One iMCU of margin (8 << max sampling factor pixels) on each side of the window. */
    JDIMENSION margin_x = (JDIMENSION)(8 * cinfo.max_h_samp_factor);
    JDIMENSION margin_y = (JDIMENSION)(8 * cinfo.max_v_samp_factor);
    JDIMENSION x0 = region->left > margin_x ? region->left - margin_x : 0;
    JDIMENSION x1 = region->left + region->width + margin_x;
    if (x1 > cinfo.output_width) x1 = cinfo.output_width;
    JDIMENSION x_offset = x0, x_width = x1 - x0;
    if (x_width < cinfo.output_width) jpeg_crop_scanline(&cinfo, &x_offset, &x_width);
    else x_offset = 0;
    /* After the crop libjpeg's rows start at x_offset (≤ x0) and are output_width wide.
     * Rows are read a batch at a time: one row per call cost ~8% more on 375×500 photos. */
    size_t row_bytes = (size_t)cinfo.output_width * 3;
    rows = malloc(row_bytes * ROWS_PER_READ);
    if (rows == NULL) {
        status = 3;
        snprintf(region->message, sizeof region->message, "out of memory");
        goto done;
    }
    JDIMENSION boxes = region->box_x > 0 ? region->width / region->box_x : 0;
    if (region->box_y > 0) {
        sums = calloc((size_t)region->width * 3, sizeof(uint32_t));
        if (sums == NULL) {
            status = 3;
            snprintf(region->message, sizeof region->message, "out of memory");
            goto done;
        }
    }
    JSAMPROW targets[ROWS_PER_READ];
    for (int i = 0; i < ROWS_PER_READ; i++) targets[i] = rows + (size_t)i * row_bytes;
    JDIMENSION y0 = region->top > margin_y ? region->top - margin_y : 0;
    if (y0 > 0) jpeg_skip_scanlines(&cinfo, y0);
    JDIMENSION end = region->top + region->height;
    size_t out_stride = (size_t)region->width * 3;
    size_t column = (size_t)(region->left - x_offset) * 3;
    while (cinfo.output_scanline < end) {
        JDIMENSION first = cinfo.output_scanline;
        JDIMENSION wanted = end - first < ROWS_PER_READ ? end - first : ROWS_PER_READ;
        JDIMENSION got = jpeg_read_scanlines(&cinfo, targets, wanted);
        if (got == 0) {
            status = 1;
            snprintf(region->message, sizeof region->message, "no scanline %u", first);
            goto done;
        }
        for (JDIMENSION i = 0; i < got; i++) {
            JDIMENSION y = first + i;
            if (y < region->top) continue;
            if (region->box_y == 0) {
                memcpy(region->out + (size_t)(y - region->top) * out_stride,
                       targets[i] + column, out_stride);
                continue;
            }
            add_row(sums, targets[i] + column, out_stride);
            if ((y - region->top + 1) % region->box_y == 0) { /* a row of boxes is complete */
                size_t box_row = (y - region->top) / region->box_y;
                write_means(region->out + box_row * boxes * 3, sums, boxes, region->box_y,
                            region->box_x);
                memset(sums, 0, out_stride * sizeof(uint32_t));
            }
        }
    }
    jpeg_abort_decompress(&cinfo); /* the rows below the window are never decoded */
done:
    jpeg_destroy_decompress(&cinfo);
    free(rows);
    free(sums);
    return status;
}

static PyObject *run_region(Py_buffer *data, Py_buffer *out, Region *region) {
    PyObject *result = NULL;
    if (!PyBuffer_IsContiguous(out, 'C')) {
        PyErr_SetString(PyExc_ValueError, "the output must be a C-contiguous buffer");
        goto release;
    }
    region->data = (const unsigned char *)data->buf;
    region->size = (unsigned long)data->len;
    region->out = (unsigned char *)out->buf;
    region->out_len = (size_t)out->len;
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = decode_region(region);
    Py_END_ALLOW_THREADS
    if (status == 3) PyErr_NoMemory();
    else if (status != 0) PyErr_Format(PyExc_ValueError, "JPEG: %s", region->message);
    else result = Py_NewRef(Py_None);
release:
    PyBuffer_Release(data);
    PyBuffer_Release(out);
    return result;
}

/* decode_into(data, out, top, left, height, width): the window into out (writable, C order,
 * height * width * 3 bytes). Raises ValueError on a damaged file or a window outside it. */
static PyObject *decode_into(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data, out;
    Region region = {0};
    if (!PyArg_ParseTuple(args, "y*w*IIII", &data, &out, &region.top, &region.left,
                          &region.height, &region.width))
        return NULL;
    return run_region(&data, &out, &region);
}

/* box_means_into(data, out, box_y, box_x): the means of the image's whole box_y×box_x boxes
 * into out ((height // box_y) * (width // box_x) * 3 bytes), equal to OpenCV's INTER_AREA of
 * the decoded image cut to whole boxes; the full image is never held in memory. */
static PyObject *box_means_into(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data, out;
    Region region = {0};
    if (!PyArg_ParseTuple(args, "y*w*II", &data, &out, &region.box_y, &region.box_x))
        return NULL;
    if (region.box_y == 0 || region.box_x == 0) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&out);
        PyErr_SetString(PyExc_ValueError, "box_means_into: boxes of at least 1×1 pixel");
        return NULL;
    }
    return run_region(&data, &out, &region);
}

static PyMethodDef methods[] = {
    {"header", header, METH_VARARGS, "header(data) -> (height, width, colour space name)"},
    {"decode_into", decode_into, METH_VARARGS,
     "decode_into(data, out, top, left, height, width): that window of the JPEG as RGB into out"},
    {"box_means_into", box_means_into, METH_VARARGS,
     "box_means_into(data, out, box_y, box_x): the means of whole box_y×box_x boxes into out"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cjpeg",
    "One window of a JPEG decoded with libjpeg-turbo (rows above skipped, below never read).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cjpeg(void) { return PyModule_Create(&module); }
