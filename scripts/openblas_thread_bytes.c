/* Does OpenBLAS's threaded sgemm give the bytes of its single-threaded one?
 *
 *   cc -O2 scripts/openblas_thread_bytes.c -lopenblas -o openblas_thread_bytes
 *   OPENBLAS_CORETYPE=SKYLAKEX ./openblas_thread_bytes          # or HASWELL; default shapes
 *   ./openblas_thread_bytes 2048 256 1024  20 144 1155           # M N K triples
 *
 * For each M×N×K it computes C = A·Bᵀ (row-major, as the engine's linear layers do) with one and
 * with two OpenBLAS threads and prints how many of C's M·N values differ in any bit. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void openblas_set_num_threads(int);
extern char *openblas_get_corename(void);

static long differing(int m, int n, int k) {
    float *a = malloc(sizeof(float) * (size_t)m * k), *b = malloc(sizeof(float) * (size_t)n * k);
    float *one = malloc(sizeof(float) * (size_t)m * n), *two = malloc(sizeof(float) * (size_t)m * n);
    srand(1);
    for (long i = 0; i < (long)m * k; i++) a[i] = rand() / (float)RAND_MAX - 0.5f;
    for (long i = 0; i < (long)n * k; i++) b[i] = rand() / (float)RAND_MAX - 0.5f;
    openblas_set_num_threads(1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, a, k, b, k, 0, one, n);
    openblas_set_num_threads(2);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, a, k, b, k, 0, two, n);
    long count = 0;
    for (long i = 0; i < (long)m * n; i++) count += memcmp(one + i, two + i, sizeof(float)) != 0;
    free(a); free(b); free(one); free(two);
    return count;
}

int main(int argc, char **argv) {
    static const int defaults[][3] = {{2048, 256, 1024}, {2048, 2048, 256}, {2048, 128, 512}, {4096, 64, 256},
                                      {20, 144, 512}, {20, 144, 770}, {20, 144, 1024}, {20, 144, 1155}, {20, 144, 1536}};
    printf("OpenBLAS core: %s\n", openblas_get_corename());
    if (argc > 1) {
        if ((argc - 1) % 3 != 0) { fprintf(stderr, "expected M N K triples, got %d numbers\n", argc - 1); return 2; }
        for (int i = 1; i < argc; i += 3) {
            int m = atoi(argv[i]), n = atoi(argv[i + 1]), k = atoi(argv[i + 2]);
            if (m <= 0 || n <= 0 || k <= 0) { fprintf(stderr, "M, N and K must be positive: %s %s %s\n", argv[i], argv[i + 1], argv[i + 2]); return 2; }
            printf("%dx%dx%d: %ld of %ld differ\n", m, n, k, differing(m, n, k), (long)m * n);
        }
        return 0;
    }
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        int m = defaults[i][0], n = defaults[i][1], k = defaults[i][2];
        printf("%dx%dx%d: %ld of %ld differ\n", m, n, k, differing(m, n, k), (long)m * n);
    }
    return 0;
}
