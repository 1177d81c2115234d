#ifndef QKDNET_CSQLITE_SHIM_H
#define QKDNET_CSQLITE_SHIM_H
#include <sqlite3.h>
#endif
