/*
 * JPEG decoding with libjpeg(-turbo), set up as Pillow's ImagingJpegDecode
 * (src/libImaging/JpegDecode.c) sets it up when open_clip loads an image: library defaults
 * (islow IDCT, fancy upsampling, the colour space libjpeg infers from the markers), no
 * scaling, no draft mode; output colour space by Pillow mode (L: grayscale, RGB: RGB, CMYK:
 * CMYK, which Pillow then reads as "CMYK;I", i.e. inverted; the caller inverts).
 *
 * libjpeg reports fatal errors through error_exit, which must not return: here it longjmps
 * back to mc_jpeg_decode, which returns a status and the message. Warnings are ignored as
 * Pillow ignores them (its output_message is a no-op), except "Premature end of JPEG file"
 * before the last scanline: Pillow's suspending source runs out of data there and
 * ImageFile.load raises "image file is truncated", so that is an error here too. Running out
 * of data while finishing (a missing EOI after a complete baseline image) is accepted, as
 * Pillow accepts it.
 */

#include <limits.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

/* Status codes, mirrored in preprocess/decode.rs. */
#define MC_OK 0
#define MC_TRUNCATED 1
#define MC_INVALID 2
#define MC_MISMATCH 3
#define MC_LIMIT 4

typedef struct {
  struct jpeg_error_mgr pub;
  jmp_buf jb;
  int status;
  int finishing;
  char *msg;
  size_t msg_len;
} mc_error_mgr;

static void mc_set_msg(mc_error_mgr *e, j_common_ptr cinfo) {
  char buf[JMSG_LENGTH_MAX];
  buf[0] = 0;
  e->pub.format_message(cinfo, buf);
  if (e->msg && e->msg_len) {
    snprintf(e->msg, e->msg_len, "%s", buf);
  }
}

static void mc_error_exit(j_common_ptr cinfo) {
  mc_error_mgr *e = (mc_error_mgr *)cinfo->err;
  int code = e->pub.msg_code;
  e->status = (code == JERR_OUT_OF_MEMORY || code == JERR_NO_BACKING_STORE) ? MC_LIMIT : MC_INVALID;
  mc_set_msg(e, cinfo);
  longjmp(e->jb, 1);
}

static void mc_emit_message(j_common_ptr cinfo, int msg_level) {
  mc_error_mgr *e = (mc_error_mgr *)cinfo->err;
  if (msg_level < 0) {
    e->pub.num_warnings++;
    if (e->pub.msg_code == JWRN_JPEG_EOF && !e->finishing) {
      e->status = MC_TRUNCATED;
      mc_set_msg(e, cinfo);
      longjmp(e->jb, 1);
    }
  }
}

static void mc_output_message(j_common_ptr cinfo) { (void)cinfo; }

/* Progressive files are decoded scan by scan in jpeg_start_decompress; a file made of
 * thousands of tiny scans would keep a backend busy for minutes, so the scan count is
 * bounded (real encoders write about 10). */
#define MC_MAX_SCANS 1000

typedef struct {
  struct jpeg_progress_mgr pub;
  mc_error_mgr *err;
} mc_progress_mgr;

static void mc_progress(j_common_ptr cinfo) {
  j_decompress_ptr d = (j_decompress_ptr)cinfo;
  mc_progress_mgr *p = (mc_progress_mgr *)cinfo->progress;
  if (d->input_scan_number > MC_MAX_SCANS) {
    p->err->status = MC_LIMIT;
    if (p->err->msg && p->err->msg_len) {
      snprintf(p->err->msg, p->err->msg_len, "more than %d progressive scans", MC_MAX_SCANS);
    }
    longjmp(p->err->jb, 1);
  }
}

/* The libjpeg version the library was built with (LIBJPEG_TURBO_VERSION_NUMBER when it is
 * libjpeg-turbo, else 0), for diagnostics. */
int mc_jpeg_turbo_version(void) {
#ifdef LIBJPEG_TURBO_VERSION_NUMBER
  return LIBJPEG_TURBO_VERSION_NUMBER;
#else
  return 0;
#endif
}

/*
 * Decodes `data` into `out` (width * height * components bytes, rows top to bottom).
 * width, height and components are what the caller read from the frame header; libjpeg's
 * own reading must agree (else MC_MISMATCH). `max_memory` bounds libjpeg's working memory
 * (its whole-image coefficient buffer for progressive files). On failure `msg` holds
 * libjpeg's message.
 */
int mc_jpeg_decode(const unsigned char *data, size_t len, uint32_t width, uint32_t height,
                   int components, unsigned char *out, size_t out_len, long max_memory,
                   char *msg, size_t msg_len) {
  struct jpeg_decompress_struct cinfo;
  mc_error_mgr err;
  mc_progress_mgr progress;
  /* volatile: modified between setjmp and longjmp. */
  volatile int created = 0;

  if (msg && msg_len) msg[0] = 0;
  if (len == 0 || len > (size_t)ULONG_MAX) {
    if (msg && msg_len) snprintf(msg, msg_len, "input size out of range");
    return MC_INVALID;
  }
  if (components != 1 && components != 3 && components != 4) {
    if (msg && msg_len) snprintf(msg, msg_len, "%d components", components);
    return MC_INVALID;
  }
  if ((size_t)width * (size_t)height * (size_t)components != out_len) {
    if (msg && msg_len) snprintf(msg, msg_len, "output buffer size mismatch");
    return MC_MISMATCH;
  }

  memset(&cinfo, 0, sizeof cinfo);
  memset(&err, 0, sizeof err);
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = mc_error_exit;
  err.pub.emit_message = mc_emit_message;
  err.pub.output_message = mc_output_message;
  err.status = MC_OK;
  err.msg = msg;
  err.msg_len = msg_len;

  if (setjmp(err.jb)) {
    if (created) jpeg_destroy_decompress(&cinfo);
    return err.status == MC_OK ? MC_INVALID : err.status;
  }

  jpeg_create_decompress(&cinfo);
  created = 1;
  if (max_memory > 0) cinfo.mem->max_memory_to_use = max_memory;
  memset(&progress, 0, sizeof progress);
  progress.pub.progress_monitor = mc_progress;
  progress.err = &err;
  cinfo.progress = &progress.pub;

  jpeg_mem_src(&cinfo, data, (unsigned long)len);
  /* Pillow loops while the header read returns tables only; with require_image TRUE libjpeg
   * does the same (and errors if the stream ends first). */
  jpeg_read_header(&cinfo, TRUE);

  if (cinfo.image_width != width || cinfo.image_height != height ||
      cinfo.num_components != components) {
    if (msg && msg_len)
      snprintf(msg, msg_len, "libjpeg reads %u x %u with %d components, the header parser %u x %u with %d",
               (unsigned)cinfo.image_width, (unsigned)cinfo.image_height, cinfo.num_components,
               (unsigned)width, (unsigned)height, components);
    jpeg_destroy_decompress(&cinfo);
    return MC_MISMATCH;
  }
  cinfo.out_color_space = components == 1 ? JCS_GRAYSCALE : components == 3 ? JCS_RGB : JCS_CMYK;

  jpeg_start_decompress(&cinfo);
  if (cinfo.output_width != width || cinfo.output_height != height ||
      cinfo.output_components != components) {
    if (msg && msg_len) snprintf(msg, msg_len, "unexpected output geometry");
    jpeg_destroy_decompress(&cinfo);
    return MC_MISMATCH;
  }
  {
    size_t stride = (size_t)width * (size_t)components;
    while (cinfo.output_scanline < cinfo.output_height) {
      JSAMPROW row = out + (size_t)cinfo.output_scanline * stride;
      if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) {
        /* Cannot happen with a non-suspending source; treated as running out of data. */
        if (msg && msg_len) snprintf(msg, msg_len, "no scanline returned");
        jpeg_destroy_decompress(&cinfo);
        return MC_TRUNCATED;
      }
    }
  }
  err.finishing = 1;
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return MC_OK;
}
