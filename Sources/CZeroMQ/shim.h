#ifndef QKDNET_CZEROMQ_SHIM_H
#define QKDNET_CZEROMQ_SHIM_H
#include <zmq.h>
#endif
