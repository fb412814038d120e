/*
 * Smoke test of the omnifuse C ABI, as a server linking libomnifuse would use it.
 *
 *   smoke IMAGE.png AUDIO.wav JOBS_PER_THREAD [MODEL_DIR]
 *
 * Opens the built-in model (or the model directory given), answers four requests synchronously (printing each result's
 * JSON and its heads' f32 vectors as bit patterns, for the Rust side to compare with an
 * in-process run), then submits JOBS_PER_THREAD jobs from each of 8 threads (half with a
 * completion callback, half polled, the rest waited on) and checks every asynchronous
 * result is bit-identical to the synchronous one of the same request. Also checks errors
 * (NULL handles, bad bytes, an unsupported precision), cancellation, and the host kernels
 * (GEMM f32/f16/i8, fused attention) against plain loops. Prints "SMOKE OK" and exits 0
 * when everything held; otherwise prints "FAIL: ..." lines and exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "omnifuse.h"

#define THREADS 8
#define REQUESTS 4

static int failures = 0;

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            printf("FAIL: %s:%d: ", __FILE__, __LINE__);                                      \
            printf(__VA_ARGS__);                                                              \
            printf(" (last error: %s)\n", omnifuse_last_error());                             \
            failures++;                                                                       \
        }                                                                                     \
    } while (0)

#define OK(call) CHECK((call) == OMNIFUSE_STATUS_OK, "%s", #call)

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* ---- requests ---------------------------------------------------------------------- */

static unsigned char *image_bytes, *audio_bytes;
static size_t image_len, audio_len;
static omnifuse_request *requests[REQUESTS];

static void build_requests(void) {
    static const char *params = "{\"max_tokens\":4}";
    for (int i = 0; i < REQUESTS; i++) OK(omnifuse_request_create(&requests[i]));
    /* 0: text */
    const char *t0 = "a calm sea at dawn";
    OK(omnifuse_request_add_text(requests[0], t0, strlen(t0)));
    /* 1: text + PNG */
    const char *t1 = "what is in the picture?";
    OK(omnifuse_request_add_text(requests[1], t1, strlen(t1)));
    OK(omnifuse_request_add_image(requests[1], image_bytes, image_len));
    /* 2: WAV + decoded pixels */
    unsigned char pixels[30 * 40 * 3];
    for (int i = 0; i < 30 * 40 * 3; i++) pixels[i] = (unsigned char)(i * 7 % 251);
    OK(omnifuse_request_add_audio(requests[2], audio_bytes, audio_len));
    OK(omnifuse_request_add_pixels_u8(requests[2], pixels, 30, 40));
    /* 3: PCM + text */
    float tone[9000];
    for (int i = 0; i < 9000; i++) tone[i] = sinf((float)i * 0.07f) * 0.3f;
    OK(omnifuse_request_add_pcm_f32(requests[3], tone, 9000, 16000));
    const char *t3 = "声音";
    OK(omnifuse_request_add_text(requests[3], t3, strlen(t3)));
    for (int i = 0; i < REQUESTS; i++) OK(omnifuse_request_set_parameters_json(requests[i], params));
}

/* ---- results ----------------------------------------------------------------------- */

/* Every head's f32 vector (and for retrieval, each input's) of a result, concatenated. */
typedef struct {
    float *data;
    size_t len;
} vec_t;

static vec_t head_vectors(const omnifuse_result *r) {
    vec_t v = {NULL, 0};
    size_t heads = 0;
    OK(omnifuse_result_head_count(r, &heads));
    for (size_t h = 0; h < heads; h++) {
        const char *name;
        int32_t kind;
        OK(omnifuse_result_head_name(r, h, &name, &kind));
        for (size_t input = 0;; input++) {
            const float *d;
            size_t n;
            omnifuse_status s = input == 0 ? omnifuse_result_head_f32(r, name, &d, &n)
                                           : omnifuse_result_head_input_f32(r, name, input - 1, &d, &n);
            if (s == OMNIFUSE_STATUS_NOT_FOUND) break;
            CHECK(s == OMNIFUSE_STATUS_OK, "head %s output", name);
            if (s != OMNIFUSE_STATUS_OK) break;
            v.data = realloc(v.data, (v.len + n) * sizeof(float));
            memcpy(v.data + v.len, d, n * sizeof(float));
            v.len += n;
            if (kind != OMNIFUSE_HEAD_RETRIEVAL) break;
        }
    }
    return v;
}

static void print_result(const char *label, const omnifuse_result *r) {
    const char *json;
    size_t len;
    OK(omnifuse_result_json(r, &json, &len));
    printf("JSON %s %zu\n", label, len);
    fwrite(json, 1, len, stdout);
    printf("\n");
    size_t heads = 0;
    OK(omnifuse_result_head_count(r, &heads));
    for (size_t h = 0; h < heads; h++) {
        const char *name;
        int32_t kind;
        OK(omnifuse_result_head_name(r, h, &name, &kind));
        const float *d;
        size_t n;
        OK(omnifuse_result_head_f32(r, name, &d, &n));
        printf("F32 %s %s", label, name);
        for (size_t i = 0; i < n; i++) {
            uint32_t bits;
            memcpy(&bits, &d[i], 4);
            printf(" %08x", bits);
        }
        printf("\n");
        if (kind == OMNIFUSE_HEAD_GENERATION) {
            const int32_t *tokens;
            size_t nt;
            const char *text;
            OK(omnifuse_result_head_tokens(r, name, &tokens, &nt));
            OK(omnifuse_result_head_text(r, name, &text, NULL));
            CHECK(nt == n, "one log-probability per token: %zu tokens, %zu log-probabilities", nt, n);
        }
    }
}

static vec_t expected[REQUESTS];

/* ---- asynchronous submissions ------------------------------------------------------ */

static omnifuse_engine *engine;
static int jobs_per_thread = 4;
static atomic_int callbacks_called;
static atomic_int async_mismatches;
static atomic_int async_done;

typedef struct {
    atomic_int calls;
    atomic_int status;
} cb_state_t;

static void on_done(omnifuse_job *job, omnifuse_status status, void *user_data) {
    cb_state_t *st = user_data;
    atomic_fetch_add(&st->calls, 1);
    atomic_store(&st->status, status);
    atomic_fetch_add(&callbacks_called, 1);
    /* The job's calls work inside its own callback. */
    if (omnifuse_job_poll(job) != status) {
        printf("FAIL: poll inside the callback disagrees with the callback's status\n");
        failures++;
    }
}

/* A batch computes the same values as a lone request up to float summation order (a GEMM of
 * more rows may take another kernel), so results are compared within 1e-4 absolute plus 1e-4
 * relative; the lengths (tokens generated, inputs embedded) must match exactly. */
static void compare_with_sync(const omnifuse_result *r, int which) {
    vec_t v = head_vectors(r);
    int same = v.len == expected[which].len;
    for (size_t i = 0; same && i < v.len; i++) {
        float a = v.data[i], b = expected[which].data[i];
        same = fabsf(a - b) <= 1e-4f + 1e-4f * fabsf(b);
    }
    if (!same) atomic_fetch_add(&async_mismatches, 1);
    free(v.data);
}

static void *submitter(void *arg) {
    int t = (int)(intptr_t)arg;
    omnifuse_job **jobs = calloc((size_t)jobs_per_thread, sizeof(*jobs));
    cb_state_t *states = calloc((size_t)jobs_per_thread, sizeof(*states));
    for (int j = 0; j < jobs_per_thread; j++) {
        int which = (t + j) % REQUESTS;
        int with_callback = j % 2 == 0;
        omnifuse_status s = omnifuse_submit(engine, requests[which], with_callback ? on_done : NULL,
                                            &states[j], &jobs[j]);
        CHECK(s == OMNIFUSE_STATUS_OK, "submit from thread %d", t);
    }
    for (int j = 0; j < jobs_per_thread; j++) {
        if (!jobs[j]) continue;
        int which = (t + j) % REQUESTS;
        omnifuse_status s;
        if (j % 3 == 0) {
            while ((s = omnifuse_job_poll(jobs[j])) == OMNIFUSE_STATUS_PENDING) {
                struct timespec ts = {0, 200000};
                nanosleep(&ts, NULL);
            }
        } else {
            s = omnifuse_job_wait(jobs[j], -1);
        }
        CHECK(s == OMNIFUSE_STATUS_OK, "job %d of thread %d ended with %s", j, t, omnifuse_status_name(s));
        omnifuse_result *r = NULL;
        s = omnifuse_job_take_result(jobs[j], &r);
        CHECK(s == OMNIFUSE_STATUS_OK, "take_result");
        if (r) {
            compare_with_sync(r, which);
            omnifuse_result *again = NULL;
            CHECK(omnifuse_job_take_result(jobs[j], &again) == OMNIFUSE_STATUS_INVALID_ARGUMENT,
                  "a result is taken once");
            OK(omnifuse_result_destroy(r));
        }
        OK(omnifuse_job_destroy(jobs[j]));
        if (j % 2 == 0)
            CHECK(atomic_load(&states[j].calls) == 1, "callback of job %d called %d times", j,
                  atomic_load(&states[j].calls));
        atomic_fetch_add(&async_done, 1);
    }
    free(jobs);
    free(states);
    return NULL;
}

/* ---- errors and cancellation ------------------------------------------------------- */

static void check_errors(void) {
    omnifuse_result *r = NULL;
    CHECK(omnifuse_infer(NULL, requests[0], &r) == OMNIFUSE_STATUS_INVALID_ARGUMENT, "NULL engine");
    CHECK(strstr(omnifuse_last_error(), "engine is NULL") != NULL, "message names the argument: %s",
          omnifuse_last_error());
    CHECK(omnifuse_infer(engine, NULL, &r) == OMNIFUSE_STATUS_INVALID_ARGUMENT, "NULL request");
    CHECK(omnifuse_infer(engine, requests[0], NULL) == OMNIFUSE_STATUS_INVALID_ARGUMENT, "NULL out");
    CHECK(omnifuse_request_add_text(requests[0], NULL, 3) == OMNIFUSE_STATUS_INVALID_ARGUMENT, "NULL text");

    omnifuse_request *bad;
    OK(omnifuse_request_create(&bad));
    const unsigned char junk[] = {0x47, 0x49, 0x46, 0x38, 0x39, 0x61};
    CHECK(omnifuse_request_add_image(bad, junk, sizeof junk) == OMNIFUSE_STATUS_BAD_INPUT, "GIF bytes");
    CHECK(strstr(omnifuse_last_error(), "47 49 46") != NULL, "message shows the bytes: %s", omnifuse_last_error());
    CHECK(omnifuse_request_add_audio(bad, image_bytes, image_len) == OMNIFUSE_STATUS_BAD_INPUT, "PNG as audio");
    CHECK(omnifuse_infer(engine, bad, &r) == OMNIFUSE_STATUS_BAD_INPUT, "empty request");
    CHECK(strstr(omnifuse_last_error(), "at least one input") != NULL, "%s", omnifuse_last_error());
    CHECK(omnifuse_request_set_parameters_json(bad, "{\"task_type\":\"juggling\"}") == OMNIFUSE_STATUS_OK, "set_parameters_json");
    OK(omnifuse_request_add_text(bad, "x", 1));
    CHECK(omnifuse_infer(engine, bad, &r) == OMNIFUSE_STATUS_BAD_INPUT, "unknown task");
    CHECK(strstr(omnifuse_last_error(), "juggling") != NULL, "%s", omnifuse_last_error());
    OK(omnifuse_request_destroy(bad));
    CHECK(omnifuse_request_from_json("{\"inputs\":[]}", &bad) == OMNIFUSE_STATUS_BAD_INPUT, "empty inputs");

    omnifuse_engine_options o;
    OK(omnifuse_engine_options_init(&o));
    o.precision = "fp8";
    omnifuse_engine *e = NULL;
    CHECK(omnifuse_engine_create(&o, &e) == OMNIFUSE_STATUS_UNSUPPORTED, "fp8 refused");
    CHECK(strstr(omnifuse_last_error(), "\"fp8\"") != NULL, "%s", omnifuse_last_error());
    CHECK(omnifuse_engine_create_json("{\"backend\":\"tpu\"}", &e) == OMNIFUSE_STATUS_INVALID_ARGUMENT,
          "unknown device");
    CHECK(strstr(omnifuse_last_error(), "tpu") != NULL, "%s", omnifuse_last_error());
    CHECK(omnifuse_engine_destroy(NULL) == OMNIFUSE_STATUS_OK, "destroying NULL is a no-op");
    CHECK(strcmp(omnifuse_status_name(OMNIFUSE_STATUS_PANIC), "OMNIFUSE_STATUS_PANIC") == 0, "status names");
}

static void check_cancel(void) {
    /* Queue several jobs back to back and cancel the last: it is either still queued
       (cancelled, callback called with CANCELLED) or already running (too late). */
    enum { N = 6 };
    omnifuse_job *jobs[N];
    cb_state_t states[N];
    memset(states, 0, sizeof states);
    for (int i = 0; i < N; i++) OK(omnifuse_submit(engine, requests[i % REQUESTS], on_done, &states[i], &jobs[i]));
    omnifuse_status c = omnifuse_job_cancel(jobs[N - 1]);
    CHECK(c == OMNIFUSE_STATUS_OK || c == OMNIFUSE_STATUS_TOO_LATE, "cancel gave %s", omnifuse_status_name(c));
    for (int i = 0; i < N; i++) {
        omnifuse_status s = omnifuse_job_wait(jobs[i], -1);
        if (i == N - 1 && c == OMNIFUSE_STATUS_OK) {
            CHECK(s == OMNIFUSE_STATUS_CANCELLED, "a cancelled job ends cancelled, got %s", omnifuse_status_name(s));
            omnifuse_result *r = NULL;
            CHECK(omnifuse_job_take_result(jobs[i], &r) == OMNIFUSE_STATUS_CANCELLED, "no result");
        } else {
            CHECK(s == OMNIFUSE_STATUS_OK, "job %d: %s", i, omnifuse_status_name(s));
        }
        OK(omnifuse_job_destroy(jobs[i]));
        CHECK(atomic_load(&states[i].calls) == 1, "callback of job %d called once", i);
    }
    printf("CANCEL %s\n", c == OMNIFUSE_STATUS_OK ? "cancelled" : "too-late");
}

/* ---- kernels ----------------------------------------------------------------------- */

static uint16_t f16_bits(float x) { /* exact for the small integers used here */
    if (x == 0.0f) return 0;
    uint32_t b;
    memcpy(&b, &x, 4);
    uint32_t sign = (b >> 16) & 0x8000u, exp = ((b >> 23) & 0xffu) - 127 + 15, man = (b >> 13) & 0x3ffu;
    return (uint16_t)(sign | (exp << 10) | man);
}

static void check_kernels(void) {
    enum { M = 5, N = 7, K = 3, LDA = 4, LDB = 9, LDC = 8 };
    float a[M * LDA], b[K * LDB], c[M * LDC], want[M * N];
    int8_t a8[M * LDA], b8[K * LDB];
    int32_t c32[M * LDC];
    uint16_t a16[M * LDA], b16[K * LDB], c16[M * LDC];
    for (int i = 0; i < M * LDA; i++) a[i] = (float)(i % 5) - 2.0f;
    for (int i = 0; i < K * LDB; i++) b[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < M * LDA; i++) a8[i] = (int8_t)a[i], a16[i] = f16_bits(a[i]);
    for (int i = 0; i < K * LDB; i++) b8[i] = (int8_t)b[i], b16[i] = f16_bits(b[i]);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float s = 0;
            for (int k = 0; k < K; k++) s += a[i * LDA + k] * b[k * LDB + j];
            want[i * N + j] = s;
        }
    for (int i = 0; i < M * LDC; i++) c[i] = -99.0f, c32[i] = -99, c16[i] = 0x7e00;
    OK(omnifuse_gemm_f32(M, N, K, a, LDA, b, LDB, c, LDC));
    OK(omnifuse_gemm_i8(M, N, K, a8, LDA, b8, LDB, c32, LDC));
    OK(omnifuse_gemm_f16(M, N, K, a16, LDA, b16, LDB, c16, LDC));
    int bad = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < LDC; j++) {
            if (j < N) {
                float w = want[i * N + j];
                int h16 = w == 0.0f ? (c16[i * LDC + j] & 0x7fff) != 0 : c16[i * LDC + j] != f16_bits(w);
                bad += c[i * LDC + j] != w || c32[i * LDC + j] != (int32_t)w || h16;
            } else {
                bad += c[i * LDC + j] != -99.0f || c32[i * LDC + j] != -99; /* padding untouched */
            }
        }
    CHECK(bad == 0, "gemm: %d elements differ from the plain loop", bad);
    CHECK(omnifuse_gemm_f32(M, N, K, a, 2, b, LDB, c, LDC) == OMNIFUSE_STATUS_INVALID_ARGUMENT, "lda < K");
    CHECK(omnifuse_gemm_f32(M, N, K, a, LDA, b, LDB, a, LDC) == OMNIFUSE_STATUS_INVALID_ARGUMENT, "C overlaps A");

    /* Attention: two sequences (3 and 2 tokens), 2 heads of width 4, full mask. */
    enum { T = 5, H = 2, D = 4 };
    float q[T * H * D], k[T * H * D], v[T * H * D], o[T * H * D];
    for (int i = 0; i < T * H * D; i++) {
        q[i] = sinf((float)i * 0.37f);
        k[i] = cosf((float)i * 0.21f);
        v[i] = (float)(i % 9) * 0.1f;
    }
    int32_t cu[3] = {0, 3, 5};
    omnifuse_attention_params p = {.batch = 2, .total_q = T, .total_k = T, .heads = H, .kv_heads = H,
                                   .head_dim = D, .modalities = 1, .mask = OMNIFUSE_MASK_FULL, .scale = 0.0f};
    OK(omnifuse_attention_f32(&p, q, k, v, cu, cu, NULL, NULL, NULL, NULL, o));
    double worst = 0;
    for (int s = 0; s < 2; s++)
        for (int i = cu[s]; i < cu[s + 1]; i++)
            for (int h = 0; h < H; h++) {
                double w[8], mx = -1e30, sum = 0;
                for (int j = cu[s]; j < cu[s + 1]; j++) {
                    double dot = 0;
                    for (int d = 0; d < D; d++) dot += (double)q[(i * H + h) * D + d] * k[(j * H + h) * D + d];
                    w[j] = dot / sqrt((double)D);
                    if (w[j] > mx) mx = w[j];
                }
                for (int j = cu[s]; j < cu[s + 1]; j++) sum += (w[j] = exp(w[j] - mx));
                for (int d = 0; d < D; d++) {
                    double acc = 0;
                    for (int j = cu[s]; j < cu[s + 1]; j++) acc += w[j] / sum * v[(j * H + h) * D + d];
                    double diff = fabs(acc - o[(i * H + h) * D + d]);
                    if (diff > worst) worst = diff;
                }
            }
    CHECK(worst < 1e-5, "attention differs from the plain loop by %g", worst);
    p.mask = 42;
    CHECK(omnifuse_attention_f32(&p, q, k, v, cu, cu, NULL, NULL, NULL, NULL, o) == OMNIFUSE_STATUS_INVALID_ARGUMENT,
          "unknown mask");
}

/* ---- main -------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s IMAGE.png AUDIO.wav JOBS_PER_THREAD [MODEL_DIR]\n", argv[0]);
        return 2;
    }
    image_bytes = read_file(argv[1], &image_len);
    audio_bytes = read_file(argv[2], &audio_len);
    jobs_per_thread = atoi(argv[3]);
    if (!image_bytes || !audio_bytes || jobs_per_thread < 1) {
        fprintf(stderr, "cannot read the inputs\n");
        return 2;
    }

    uint32_t major = 0, minor = 0;
    OK(omnifuse_abi_version(&major, &minor));
    CHECK(major == OMNIFUSE_ABI_MAJOR && minor + 1 > OMNIFUSE_ABI_MINOR, "ABI %u.%u", major, minor);
    printf("VERSION %s ABI %u.%u\n", omnifuse_version(), major, minor);
    const char *backends;
    OK(omnifuse_backends_json(&backends));
    CHECK(strstr(backends, "\"family\":\"cpu\"") != NULL, "backends: %s", backends);
    char *devices = NULL;
    OK(omnifuse_devices_json(&devices));
    CHECK(devices && strstr(devices, "\"name\":\"cpu\"") != NULL, "devices: %s", devices ? devices : "");
    OK(omnifuse_string_free(devices));

    omnifuse_engine_options options;
    OK(omnifuse_engine_options_init(&options));
    options.max_batch = 8;
    if (argc == 5) options.model_dir = argv[4];
    OK(omnifuse_engine_create(&options, &engine));
    if (!engine) return 1;
    const char *info;
    OK(omnifuse_engine_info_json(engine, &info, NULL));
    printf("ENGINE %s\n", info);
    size_t heads = 0;
    OK(omnifuse_engine_head_count(engine, &heads));
    for (size_t h = 0; h < heads; h++) {
        const char *name;
        int32_t kind;
        size_t len;
        OK(omnifuse_engine_head_info(engine, h, &name, &kind, &len));
        printf("HEAD %s %d %zu\n", name, kind, len);
    }

    build_requests();

    /* Synchronous: each request alone. */
    for (int i = 0; i < REQUESTS; i++) {
        omnifuse_result *r = NULL;
        omnifuse_status s = omnifuse_infer(engine, requests[i], &r);
        CHECK(s == OMNIFUSE_STATUS_OK, "infer request %d", i);
        if (!r) return 1;
        char label[16];
        snprintf(label, sizeof label, "sync%d", i);
        print_result(label, r);
        expected[i] = head_vectors(r);
        OK(omnifuse_result_destroy(r));
    }

    /* Asynchronous: 8 threads at once, sharing the engine's batches. */
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) pthread_create(&threads[t], NULL, submitter, (void *)(intptr_t)t);
    for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
    printf("ASYNC jobs %d callbacks %d mismatches %d\n", atomic_load(&async_done), atomic_load(&callbacks_called),
           atomic_load(&async_mismatches));
    CHECK(atomic_load(&async_done) == THREADS * jobs_per_thread, "every job ended");
    CHECK(atomic_load(&async_mismatches) == 0, "asynchronous results equal the synchronous ones (within 1e-4)");

    check_errors();
    check_cancel();
    check_kernels();

    for (int i = 0; i < REQUESTS; i++) {
        OK(omnifuse_request_destroy(requests[i]));
        free(expected[i].data);
    }
    OK(omnifuse_engine_destroy(engine));
    free(image_bytes);
    free(audio_bytes);
    if (failures) {
        printf("SMOKE FAILED: %d checks\n", failures);
        return 1;
    }
    printf("SMOKE OK\n");
    return 0;
}
