#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

/*
 * probe: libpng reports errors with longjmp, which must never cross Swift frames.
 * These helpers keep every setjmp/longjmp inside C: they return 0 on success and a
 * non-zero code with a message in `err` otherwise.
 *
 * Decoding semantics (chosen to match Pillow's open().convert("RGB")):
 *   palette -> RGB (tRNS ignored), gray -> RGB (replicated), alpha stripped (not composited),
 *   sub-8-bit gray expanded, 16-bit samples scaled to 8 bits with png_set_scale_16
 *   ((v * 255 + 32895) >> 16), interlacing handled, no gamma conversion.
 */

typedef struct {
    const unsigned char *data;
    size_t size;
    size_t pos;
    char *err;
    size_t errlen;
} probe_png_io;

static void probe_png_error_fn(png_structp png, png_const_charp msg) {
    probe_png_io *io = (probe_png_io *)png_get_error_ptr(png);
    if (io && io->err && io->errlen > 0) {
        strncpy(io->err, msg ? msg : "libpng error", io->errlen - 1);
        io->err[io->errlen - 1] = 0;
    }
    png_longjmp(png, 1);
}

static void probe_png_warning_fn(png_structp png, png_const_charp msg) {
    (void)png; (void)msg;
}

static void probe_png_read_fn(png_structp png, png_bytep out, size_t len) {
    probe_png_io *io = (probe_png_io *)png_get_io_ptr(png);
    if (io->size - io->pos < len) {
        png_error(png, "truncated PNG data (file ends early)");
        return;
    }
    memcpy(out, io->data + io->pos, len);
    io->pos += len;
}

/* Decodes to 8-bit RGB into `out` (width*height*3 bytes, sized from probe_png_header). */
static inline int probe_png_decode_rgb8(const unsigned char *data, size_t size,
                                        unsigned char *out, unsigned int width, unsigned int height,
                                        char *err, size_t errlen) {
    probe_png_io io = {data, size, 0, err, errlen};
    png_bytep *volatile rows = NULL;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &io, probe_png_error_fn, probe_png_warning_fn);
    if (!png) { strncpy(err, "out of memory", errlen - 1); return 1; }
    png_infop info = png_create_info_struct(png);
    if (!info) { png_destroy_read_struct(&png, NULL, NULL); strncpy(err, "out of memory", errlen - 1); return 1; }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(rows);
        return 1;
    }
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_set_read_fn(png, &io, probe_png_read_fn);
    png_read_info(png, info);
    if (png_get_image_width(png, info) != width || png_get_image_height(png, info) != height) {
        png_error(png, "PNG dimensions changed between header and decode");
    }
    int colorType = png_get_color_type(png, info);
    int bitDepth = png_get_bit_depth(png, info);
    if (colorType == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (colorType == PNG_COLOR_TYPE_GRAY && bitDepth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (bitDepth == 16) png_set_scale_16(png);
    /* png_set_palette_to_rgb also turns tRNS into alpha: strip any alpha, whatever its origin. */
    if ((colorType & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
    if (colorType == PNG_COLOR_TYPE_GRAY || colorType == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)width * 3) {
        png_error(png, "unexpected PNG row layout after conversion");
    }
    rows = (png_bytep *)malloc(sizeof(png_bytep) * (size_t)height);
    if (!rows) png_error(png, "out of memory");
    for (unsigned int y = 0; y < height; y++) rows[y] = out + (size_t)y * width * 3;
    png_read_image(png, rows);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    return 0;
}
