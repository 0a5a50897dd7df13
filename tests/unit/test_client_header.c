/* net/client.h is the one header an application includes (docs/client.md):
 * this file includes nothing else of synod's, so it stops building if the
 * header ever needs another to declare what its calls return. */
#include "net/client.h"
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

static void test_client_header_alone_declares_calls_and_codes(void **state)
{
    (void)state;
    int (*put)(sy_client *, const void *, size_t, const void *, size_t, int) = sy_client_put;
    assert_non_null(put);
    const int codes[] = { SY_OK, SY_ENOTFOUND, SY_ECASFAIL, SY_ETIMEOUT, SY_EUNAUTH,
                          SY_EMEMBERSHIP };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        assert_true(strlen(sy_strerror(codes[i])) > 0);
    assert_string_equal(sy_strerror(SY_OK), "success");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_header_alone_declares_calls_and_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
