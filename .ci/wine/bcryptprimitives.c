/* bcryptprimitives.dll for wine 8 (Debian bookworm's), which has none: Rust's std on Windows
 * imports ProcessPrng from it for its random bytes (HashMap seeds), so no Rust test program
 * starts without it. Forwards to advapi32's RtlGenRandom (SystemFunction036). Test-only: CI
 * builds it with MinGW and puts it in the wine prefix's system32 (.ci/windows.sh). */
#include <windows.h>

BOOLEAN NTAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, n)) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
