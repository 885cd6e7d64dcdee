/* critest's nonewprivs image, made here: installed setuid root, it prints
 * the effective uid it runs with (0 unless no_new_privs kept the caller's). */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("Effective uid: %d\n", geteuid());
    return 0;
}
