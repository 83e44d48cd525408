#include <cblas.h>

/* OpenBLAS's thread spin time as read from OPENBLAS_THREAD_TIMEOUT when the library loaded
   (0 when unset); exported by libopenblas but not declared in cblas.h. */
int openblas_thread_timeout(void);
