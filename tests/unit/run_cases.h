/* main() of a suite that ctest runs one case per process (CMakeLists.txt:
 * SY_CASE_SUITES). NNG 1.5.2's reaper thread can wedge for good when a
 * socket closes (upstream #1543: a task prepared but not started); every
 * later close in that process then waits for ever, so a case that merely
 * follows the one that wedged it would fail. A process per case keeps
 * each case's verdict its own. Without an argument every case runs. */
#ifndef SY_TEST_RUN_CASES_H
#define SY_TEST_RUN_CASES_H

#include <stdio.h>
#include <string.h>

static inline int sy_run_cases(const char *suite, const struct CMUnitTest *tests, size_t n,
                               int argc, char **argv)
{
    if (argc < 2)
        return _cmocka_run_group_tests(suite, tests, n, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        if (strcmp(tests[i].name, argv[1]) == 0)
            return _cmocka_run_group_tests(suite, &tests[i], 1, NULL, NULL);
    fprintf(stderr, "%s: no test case named '%s'\n", suite, argv[1]);
    return 2;
}

#endif
