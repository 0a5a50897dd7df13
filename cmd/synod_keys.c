/* synod-keys: key and cluster manifest generation. Logic in keys/. */
#include "keys/keys.h"

int main(int argc, char **argv)
{
    return sy_keys_main(argc, argv);
}
