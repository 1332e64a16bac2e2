/* tonegate's harness around spandsp's DTMF receiver (dtmf_rx), for side-by-side conformance,
 * talk-off and speed runs. Built by scripts/spandsp.sh against Debian's libspandsp-dev.
 *
 *   harness detect            < samples.s16le   one line per press: KEY START END (samples)
 *   harness bench CH SEC FILE                    CH independent receivers, 160-sample blocks,
 *                                                SEC seconds of FILE (s16le) each; prints
 *                                                "samples N seconds T"
 *
 * spandsp's defaults are used (dtmf_rx_init without dtmf_rx_parms): what FreeSWITCH's and
 * other users' detectors start from. A press starts when the realtime callback reports a
 * digit and ends when it reports 0 (or another digit). */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <spandsp.h>

struct press_state {
    long long now;   /* samples fed before the current chunk */
    int chunk;       /* samples in the current chunk */
    int digit;
    long long start;
};

static void on_tone(void *user_data, int code, int level, int delay) {
    struct press_state *s = user_data;
    (void) level;
    (void) delay;
    long long at = s->now + s->chunk;
    if (s->digit && code != s->digit) {
        printf("%c %lld %lld\n", s->digit, s->start, at);
        s->digit = 0;
    }
    if (code && code != s->digit) {
        s->digit = code;
        s->start = at;
    }
}

static int detect(void) {
    struct press_state st = {0};
    dtmf_rx_state_t *rx = dtmf_rx_init(NULL, NULL, NULL);
    dtmf_rx_set_realtime_callback(rx, on_tone, &st);
    int16_t buf[40];
    size_t n;
    /* 40-sample chunks: press edges to 5 ms; spandsp's own blocks are 102 samples. */
    while ((n = fread(buf, sizeof(int16_t), 40, stdin)) > 0) {
        st.chunk = (int) n;
        dtmf_rx(rx, buf, (int) n);
        st.now += (long long) n;
        st.chunk = 0;
    }
    int16_t zeros[160] = {0};
    for (int i = 0; i < 4; i++) {
        st.chunk = 160;
        dtmf_rx(rx, zeros, 160);
        st.now += 160;
        st.chunk = 0;
    }
    if (st.digit)
        printf("%c %lld %lld\n", st.digit, st.start, st.now);
    dtmf_rx_free(rx);
    return 0;
}

static void count_digit(void *user_data, const char *digits, int len) {
    (void) digits;
    *(long long *) user_data += len;
}

static int bench(int channels, double seconds, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    size_t len = (size_t) bytes / 2;
    int16_t *audio = malloc(len * sizeof(int16_t));
    if (fread(audio, sizeof(int16_t), len, f) != len) {
        fprintf(stderr, "short read\n");
        return 1;
    }
    fclose(f);
    size_t blocks = (size_t) (seconds * 8000.0 / 160.0);
    size_t per = len / 160;
    dtmf_rx_state_t **rx = calloc((size_t) channels, sizeof(*rx));
    long long digits = 0;
    for (int c = 0; c < channels; c++)
        rx[c] = dtmf_rx_init(NULL, count_digit, &digits);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t b = 0; b < blocks; b++) {
        for (int c = 0; c < channels; c++) {
            /* Each channel at its own offset into the audio, so channels are independent. */
            size_t at = ((b + (size_t) c * 7) % per) * 160;
            dtmf_rx(rx[c], audio + at, 160);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("samples %lld seconds %.6f digits %lld\n",
           (long long) blocks * 160LL * channels, wall, digits);
    for (int c = 0; c < channels; c++)
        dtmf_rx_free(rx[c]);
    free(rx);
    free(audio);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "detect") == 0)
        return detect();
    if (argc == 5 && strcmp(argv[1], "bench") == 0)
        return bench(atoi(argv[2]), atof(argv[3]), argv[4]);
    fprintf(stderr, "usage: %s detect < s16le | %s bench CHANNELS SECONDS FILE.s16le\n", argv[0], argv[0]);
    return 2;
}
